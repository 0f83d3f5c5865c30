package suite

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/e2e/lab"
	"github.com/ironlb/ironlb/e2e/measure"
	"github.com/ironlb/ironlb/e2e/traffic"
	"github.com/ironlb/ironlb/internal/election"
	"github.com/ironlb/ironlb/internal/testutil"
)

// The sharing scenario: a sharing key (ironlb.io/allow-shared-ip) is a
// name any tenant can copy, so by itself it lets no Service of another
// namespace join an address, learn whose it is, or take it off the air.

// Written as users read them, not taken from ironlb's packages.
const (
	annotationSharing            = "ironlb.io/allow-shared-ip"
	annotationIPs                = "ironlb.io/loadBalancerIPs"
	conditionIPAllocated         = "ironlb.io/IPAllocated"
	reasonAllocated              = "Allocated"
	reasonRequestedIPUnavailable = "RequestedIPUnavailable"
)

// TestSharingAcrossNamespaces: tenant A's Services (IPv4 and IPv6, with
// externalTrafficPolicy Cluster in one subtest and Local in the other)
// share a key and are answered from the LAN client. Tenant B, in another
// namespace, copies the key and the selector and, with no pod of its
// own, asks for A's addresses by name with either policy, and for
// addresses of its own. Asking for A's address is refused with a
// condition and events that name nothing of A; the others get addresses
// that are not A's. Meanwhile the client keeps hearing A's addresses
// from the same node alone, with no probe left unanswered, and A keeps
// serving: checked once the controller has answered B, and again once
// every speaker has announced a Service created after B's (so it has
// planned with B's Services in view).
func TestSharingAcrossNamespaces(t *testing.T) {
	l, c := startLab(t, 3)
	applyExample(t, l)
	nodes := nodeNames(l.Plan)
	// taken holds every address the subtests ask for, so that a later one
	// never waits on an address an earlier one is still releasing.
	taken := map[netip.Addr]bool{}
	for _, tc := range []struct {
		policy corev1.ServiceExternalTrafficPolicy
		// podNodes are where tenant A's pods run: everywhere for Cluster;
		// for Local one node, which alone may announce A's addresses.
		podNodes []string
		addrs    []netip.Addr // A's, one per family
	}{
		{corev1.ServiceExternalTrafficPolicyCluster, nodes, []netip.Addr{lab.PoolAddr(lab.L2PoolNet, 80), lab.PoolAddr(lab.L2PoolNet6, 0x80)}},
		{corev1.ServiceExternalTrafficPolicyLocal, nodes[1:2], []netip.Addr{lab.PoolAddr(lab.L2PoolNet, 81), lab.PoolAddr(lab.L2PoolNet6, 0x81)}},
	} {
		for _, a := range tc.addrs {
			taken[a] = true
		}
		t.Run(string(tc.policy), func(t *testing.T) {
			sharingScenario(t, l, c, tc.policy, tc.podNodes, tc.addrs, taken)
		})
	}
}

// victim is one of tenant A's Services.
type victim struct {
	ns, name string
	addr     netip.Addr
	owner    string // the node answering for addr
}

func (v *victim) key() string { return v.ns + "/" + v.name }

func sharingScenario(t *testing.T, l *lab.Lab, c client.Client, policy corev1.ServiceExternalTrafficPolicy, podNodes []string, addrs []netip.Addr, taken map[netip.Addr]bool) {
	ctx := context.Background()
	suffix := strings.ToLower(string(policy))
	nsA, nsB := "tenant-a-"+suffix, "tenant-b-"+suffix
	key := "tenant-a-storefront-key"
	selector := map[string]string{"app": "storefront"}
	// secrets are what B must never read about A.
	secrets := []string{nsA, "tenant-a", "storefront", key}
	tenantNamespace(t, c, nsA)
	tenantNamespace(t, c, nsB)
	pods := tenantPods(t, c, nsA, "storefront", podNodes...)
	nodes := nodeNames(l.Plan)

	// Tenant A: one Service per family under one key, answered from the
	// LAN by A's pods.
	var victims []*victim
	for _, a := range addrs {
		v := &victim{ns: nsA, name: "storefront-" + family(a), addr: a}
		lbService(t, c, v.name, a, func(s *corev1.Service) {
			s.Namespace = nsA
			s.Annotations[annotationSharing] = key
			s.Spec.Selector = selector
			s.Spec.ExternalTrafficPolicy = policy
		})
		victims = append(victims, v)
	}
	want := map[netip.Addr]string{}
	for _, v := range victims {
		owner, err := measure.Owner(ctx, l, v.addr)
		if err != nil {
			t.Fatal(err)
		}
		if policy == corev1.ServiceExternalTrafficPolicyLocal && owner != podNodes[0] {
			t.Fatalf("%s announced by %s, want %s, the node of A's only pod", v.addr, owner, podNodes[0])
		}
		v.owner, want[v.addr] = owner, owner
	}
	probers := startProbers(t, l, addrs)
	waitOwners(t, l, c, probers, marks(probers), want, nodes)
	for _, v := range victims {
		expectSpread(t, l.Plan.Client.NetNS, netip.AddrPortFrom(v.addr, 80), 20*len(pods), slices.Sorted(maps.Keys(pods)), victimAnswer(l, pods, v, policy))
	}
	since, t0 := marks(probers), time.Now()

	// Tenant B copies the key and the selector, and has no pods. It asks
	// for A's address by name, with either policy, on ports A does not
	// use (so that only the namespace stands in the way), and for an
	// address of its own under the same key.
	type intruder struct {
		name   string
		victim *victim
	}
	var intruders []intruder
	var lookalikes []string
	for _, v := range victims {
		for i, p := range []corev1.ServiceExternalTrafficPolicy{corev1.ServiceExternalTrafficPolicyCluster, corev1.ServiceExternalTrafficPolicyLocal} {
			name := "intruder-" + strings.ToLower(string(p)) + "-" + family(v.addr)
			createTenantService(t, c, nsB, name, v.addr, 443+int32(i)*8000, func(s *corev1.Service) {
				s.Annotations = map[string]string{annotationSharing: key, annotationIPs: v.addr.String()}
				s.Spec.Selector = selector
				s.Spec.ExternalTrafficPolicy = p
			})
			intruders = append(intruders, intruder{name, v})
		}
		name := "lookalike-" + family(v.addr)
		createTenantService(t, c, nsB, name, v.addr, 443, func(s *corev1.Service) {
			s.Annotations = map[string]string{annotationSharing: key}
			s.Spec.Selector = selector
			s.Spec.ExternalTrafficPolicy = policy
		})
		lookalikes = append(lookalikes, name)
	}

	// The controller's answers: refused, without a word about A; or an
	// address that is not A's.
	refusal := func(v *victim) string { return v.addr.String() + " is in use by a Service of another namespace" }
	for _, in := range intruders {
		svc, cond := waitAnswer(t, c, nsB, in.name)
		if cond.Status != metav1.ConditionFalse || cond.Reason != reasonRequestedIPUnavailable || !strings.HasPrefix(cond.Message, refusal(in.victim)) {
			t.Errorf("%s/%s, asking for A's %s: condition %s %s: %q; want False %s, beginning %q", nsB, in.name, in.victim.addr, cond.Status, cond.Reason, cond.Message, reasonRequestedIPUnavailable, refusal(in.victim))
		}
		if len(svc.Status.LoadBalancer.Ingress) != 0 {
			t.Errorf("%s/%s, asking for A's %s, shows %+v", nsB, in.name, in.victim.addr, svc.Status.LoadBalancer.Ingress)
		}
		mustNotName(t, fmt.Sprintf("the condition of %s/%s", nsB, in.name), cond.Message, secrets)
	}
	for i, name := range lookalikes {
		svc, cond := waitAnswer(t, c, nsB, name)
		if cond.Status != metav1.ConditionTrue || cond.Reason != reasonAllocated {
			t.Errorf("%s/%s: condition %s %s: %q; want True %s", nsB, name, cond.Status, cond.Reason, cond.Message, reasonAllocated)
		}
		mustNotName(t, fmt.Sprintf("the condition of %s/%s", nsB, name), cond.Message, secrets)
		in := svc.Status.LoadBalancer.Ingress
		var got netip.Addr
		if len(in) == 1 {
			got, _ = netip.ParseAddr(in[0].IP)
		}
		if !got.IsValid() || got == victims[i].addr || got.Is4() != victims[i].addr.Is4() {
			t.Errorf("%s/%s, under A's key, shows %+v; want an address of its own, not %s", nsB, name, in, victims[i].addr)
		}
	}
	checkVictims(t, l, c, "once the controller answered tenant B", probers, victims, pods, policy)

	// Proof that every speaker has planned with B's Services in view: a
	// Service created after them, on an address each node ranks first
	// for, announced by each node.
	markers := markerAddrs(t, c, nodes, taken)
	for _, node := range nodes {
		lbService(t, c, "marker-"+node, markers[node], func(s *corev1.Service) { s.Namespace = nsB })
	}
	for _, node := range nodes {
		a := markers[node]
		testutil.Eventually(t, fmt.Sprintf("%s to announce %s (marker-%s, created after B's Services)", node, a, node), func() (bool, string) {
			by, err := announcedBy(c, a)
			return err == nil && slices.Equal(by, []string{node}), fmt.Sprintf("announced by %v (%v)", by, err)
		})
	}
	checkVictims(t, l, c, "once every speaker announced a Service created after B's", probers, victims, pods, policy)

	// Throughout: from before B's first Service until now, every probe of
	// A's addresses was answered, by its owner alone.
	for _, v := range victims {
		ps := probers[v.addr].ProbesSince(since[v.addr])
		reportFaults(t, l, "tenant B's Services", v.addr, ps, t0, v.owner)
		if n := silentProbes(ps); n > 0 {
			t.Errorf("%s: %d of %d probes since tenant B's first Service went unanswered; answers: %s", v.addr, n, len(ps), timeline(l, ps))
		}
		t.Logf("%s: %d probes since tenant B's first Service, answered by %s alone: %s", v.addr, len(ps), v.owner, timeline(l, ps))
	}

	// The events B can read say nothing of A either.
	testutil.Eventually(t, "a Warning event "+reasonRequestedIPUnavailable+" on each of B's refused Services", func() (bool, string) {
		var list corev1.EventList
		if err := c.List(ctx, &list, client.InNamespace(nsB)); err != nil {
			return false, err.Error()
		}
		var missing []string
		for _, in := range intruders {
			if !slices.ContainsFunc(list.Items, func(e corev1.Event) bool {
				return e.InvolvedObject.Name == in.name && e.Type == corev1.EventTypeWarning && e.Reason == reasonRequestedIPUnavailable && strings.HasPrefix(e.Message, refusal(in.victim))
			}) {
				missing = append(missing, in.name)
			}
		}
		return len(missing) == 0, fmt.Sprintf("no such event yet on %v", missing)
	})
	var list corev1.EventList
	if err := c.List(ctx, &list, client.InNamespace(nsB)); err != nil {
		t.Fatal(err)
	}
	for _, e := range list.Items {
		mustNotName(t, fmt.Sprintf("event %s %s on %s/%s", e.Type, e.Reason, nsB, e.InvolvedObject.Name), e.Message, secrets)
	}
}

// checkVictims checks, at one moment, that each of A's addresses is
// answered by its owner alone (the next probes), announced by it alone
// for A's Service alone, and serves A's pods to the LAN client.
func checkVictims(t *testing.T, l *lab.Lab, c client.Client, when string, probers map[netip.Addr]*traffic.Prober, victims []*victim, pods map[string]string, policy corev1.ServiceExternalTrafficPolicy) {
	t.Helper()
	var list v1alpha1.NodeAnnouncementList
	if err := c.List(context.Background(), &list); err != nil {
		t.Fatal(err)
	}
	for _, v := range victims {
		if err := probers[v.addr].Err(); err != nil {
			t.Fatalf("prober of %s: %v", v.addr, err)
		}
		// The next 30 probes (300 ms), judged as the whole record is
		// at the end: every one answered, by the owner alone.
		pr, mark, at := probers[v.addr], probers[v.addr].Len(), time.Now()
		testutil.Eventually(t, fmt.Sprintf("30 more probes of %s", v.addr), func() (bool, string) {
			return pr.Len() >= mark+30, fmt.Sprintf("%d probes", pr.Len()-mark)
		})
		ps := pr.ProbesSince(mark)
		reportFaults(t, l, when, v.addr, ps, at, v.owner)
		if n := silentProbes(ps); n > 0 {
			t.Errorf("%s: %d of %d probes of %s went unanswered: %s", when, n, len(ps), v.addr, timeline(l, ps))
		}
		var by []string
		for _, na := range list.Items {
			for _, a := range na.Status.Layer2 {
				if a.Address != v.addr.String() {
					continue
				}
				by = append(by, na.Name)
				if !slices.Equal(a.Services, []string{v.key()}) {
					t.Errorf("%s: %s's NodeAnnouncement lists %s for %v, want %s alone", when, na.Name, v.addr, a.Services, v.key())
				}
			}
		}
		if !slices.Equal(by, []string{v.owner}) {
			t.Errorf("%s: %s announced by %v, want %s alone", when, v.addr, by, v.owner)
		}
		target := netip.AddrPortFrom(v.addr, 80)
		as, err := batch(l.Plan.Client.NetNS, target, 10)
		if err != nil {
			t.Errorf("%s: %v", when, err)
		}
		check := victimAnswer(l, pods, v, policy)
		for _, a := range as {
			if err := check(a); err != nil {
				t.Errorf("%s: %s answered a request to %s: %v", when, a.Pod, target, err)
			}
		}
	}
}

// victimAnswer judges an answer through v's address: one of A's pods
// answered, seeing the LAN client's own address, or with Cluster, when
// the pod is on another node, the announcing node's (masqueraded).
func victimAnswer(l *lab.Lab, pods map[string]string, v *victim, policy corev1.ServiceExternalTrafficPolicy) func(lab.Answer) error {
	return func(ans lab.Answer) error {
		node, ok := pods[ans.Pod]
		if !ok {
			return fmt.Errorf("not one of tenant A's pods %v", slices.Sorted(maps.Keys(pods)))
		}
		want := addrOf(l.Plan.Client, v.addr)
		if node != v.owner && policy == corev1.ServiceExternalTrafficPolicyCluster {
			owner, _ := l.Plan.Node(v.owner)
			want = addrOf(owner.Host, v.addr)
		}
		if ans.Client.Addr() != want {
			return fmt.Errorf("it saw the connection come from %s, want %s (the pod is on %s, %s announces %s)", ans.Client.Addr(), want, node, v.owner, v.addr)
		}
		return nil
	}
}

// tenantNamespace creates a namespace and waits for its default
// ServiceAccount, which pods need. When the test ends, even a failed
// one, it deletes the namespace's Services and waits until no speaker
// announces them (a speaker writes events on the Services it withdraws,
// which a terminating namespace refuses), then deletes the namespace and
// waits until it is gone.
func tenantNamespace(t *testing.T, c client.Client, name string) {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		var svcs corev1.ServiceList
		err := c.List(ctx, &svcs, client.InNamespace(name))
		for _, s := range svcs.Items {
			if err == nil {
				err = client.IgnoreNotFound(c.Delete(ctx, &s))
			}
		}
		if err != nil {
			t.Errorf("deleting the Services of namespace %s: %v", name, err)
		}
		deleting := false
		gone := func() (bool, string) {
			if !deleting {
				var list v1alpha1.NodeAnnouncementList
				if err := c.List(ctx, &list); err != nil {
					return false, err.Error()
				}
				for _, na := range list.Items {
					for _, a := range na.Status.Layer2 {
						if slices.ContainsFunc(a.Services, func(k string) bool { return strings.HasPrefix(k, name+"/") }) {
							return false, fmt.Sprintf("%s still announces %s for %v", na.Name, a.Address, a.Services)
						}
					}
				}
				if err := client.IgnoreNotFound(c.Delete(ctx, ns)); err != nil {
					return false, err.Error()
				}
				deleting = true
			}
			err := c.Get(ctx, client.ObjectKeyFromObject(ns), &corev1.Namespace{})
			return apierrors.IsNotFound(err), fmt.Sprintf("namespace %s still there (%v)", name, err)
		}
		testutil.Eventually(t, "namespace "+name+" removed", gone)
	})
	testutil.Eventually(t, "the default ServiceAccount of "+name, func() (bool, string) {
		err := c.Get(ctx, client.ObjectKey{Namespace: name, Name: "default"}, &corev1.ServiceAccount{})
		return err == nil, fmt.Sprint(err)
	})
}

// tenantPods is podsOn in namespace ns: a pod labelled app=<app> on each
// node given, named <app>-<node>; it returns each pod's node.
func tenantPods(t *testing.T, c client.Client, ns, app string, nodes ...string) map[string]string {
	t.Helper()
	no := false
	out := map[string]string{}
	for _, node := range nodes {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: app + "-" + node, Labels: map[string]string{"app": app}},
			Spec: corev1.PodSpec{NodeName: node, AutomountServiceAccountToken: &no, Containers: []corev1.Container{{Name: app, Image: "none"}}}}
		if err := c.Create(context.Background(), pod); err != nil {
			t.Fatal(err)
		}
		out[pod.Name] = node
	}
	return out
}

// createTenantService creates a LoadBalancer Service of addr's family in
// namespace ns, with one TCP port to the lab pods' port.
func createTenantService(t *testing.T, c client.Client, ns, name string, family netip.Addr, port int32, mutate func(*corev1.Service)) {
	t.Helper()
	fam := corev1.IPv4Protocol
	if family.Is6() {
		fam = corev1.IPv6Protocol
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, IPFamilies: []corev1.IPFamily{fam},
			Ports: []corev1.ServicePort{{Port: port, TargetPort: intstr.FromInt32(lab.PodPort)}},
		},
	}
	mutate(svc)
	if err := c.Create(context.Background(), svc); err != nil {
		t.Fatal(err)
	}
}

// waitAnswer waits until the controller has answered the Service (its
// condition ironlb.io/IPAllocated is written for its generation), and
// returns the Service and the condition.
func waitAnswer(t *testing.T, c client.Client, ns, name string) (*corev1.Service, *metav1.Condition) {
	t.Helper()
	var svc corev1.Service
	var cond *metav1.Condition
	testutil.Eventually(t, fmt.Sprintf("%s/%s's condition %s", ns, name, conditionIPAllocated), func() (bool, string) {
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &svc); err != nil {
			return false, err.Error()
		}
		cond = meta.FindStatusCondition(svc.Status.Conditions, conditionIPAllocated)
		return cond != nil && cond.ObservedGeneration == svc.Generation, fmt.Sprintf("%+v", svc.Status)
	})
	return &svc, cond
}

// mustNotName fails the test when text names any of secrets.
func mustNotName(t *testing.T, what, text string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("%s names %q of another tenant: %s", what, s, text)
		}
	}
}

// markerAddrs picks, for each node, a free IPv4 address of the layer 2
// pool that the node ranks first for among all of them (ClaimV2, as in
// TestLayer2Spread), one that no Service shows and taken does not hold;
// it adds them to taken.
func markerAddrs(t *testing.T, c client.Client, nodes []string, taken map[netip.Addr]bool) map[string]netip.Addr {
	t.Helper()
	var svcs corev1.ServiceList
	if err := c.List(context.Background(), &svcs); err != nil {
		t.Fatal(err)
	}
	used := map[netip.Addr]bool{}
	for _, s := range svcs.Items {
		for _, in := range s.Status.LoadBalancer.Ingress {
			if a, err := netip.ParseAddr(in.IP); err == nil {
				used[a] = true
			}
		}
	}
	out := map[string]netip.Addr{}
	for a := lab.L2PoolNet.Addr(); lab.L2PoolNet.Contains(a) && len(out) < len(nodes); a = a.Next() {
		if used[a] || taken[a] {
			continue
		}
		if w := election.Winner(election.ClaimV2, a, nodes); out[w] == (netip.Addr{}) {
			out[w] = a
			taken[a] = true
		}
	}
	if len(out) < len(nodes) {
		t.Fatalf("no free address in %s for each of %v: %v", lab.L2PoolNet, nodes, out)
	}
	return out
}

// silentProbes counts the probes after which no answer at all came
// within measure.AnswerWithin, as a failover trial counts them (lab's
// silent): an answer that a busy machine delays past the next probe is
// no silence, a withdrawn address is. The last probes, whose answers may
// still be on their way, only answer others.
func silentProbes(ps []traffic.Probe) int {
	var at []time.Time
	for _, p := range ps {
		for _, r := range p.Replies {
			at = append(at, r.At)
		}
	}
	slices.SortFunc(at, time.Time.Compare)
	n := 0
	for _, p := range ps[:max(0, len(ps)-10)] {
		i, _ := slices.BinarySearchFunc(at, p.Sent, time.Time.Compare)
		if i == len(at) || at[i].Sub(p.Sent) > measure.AnswerWithin {
			n++
		}
	}
	return n
}

func family(a netip.Addr) string {
	if a.Is6() {
		return "v6"
	}
	return "v4"
}
