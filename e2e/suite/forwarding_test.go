package suite

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/e2e/lab"
	"github.com/ironlb/ironlb/e2e/measure"
	"github.com/ironlb/ironlb/e2e/traffic"
	"github.com/ironlb/ironlb/internal/testutil"
)

// The forwarding scenarios: traffic to a LoadBalancer address reaches the
// Service's pods through the speakers' nftables rules, from the client
// on the LAN (layer 2) and from the remote client behind the FRR router
// (BGP), in both families.

// askTimeout bounds one request; the lab answers in milliseconds.
const askTimeout = 5 * time.Second

// podsOn creates a pod labelled app=<app> on each node given, named
// <app>-<node>, and returns each pod's node.
func podsOn(t *testing.T, c client.Client, app string, nodes ...string) map[string]string {
	t.Helper()
	ctx := context.Background()
	testutil.Eventually(t, "the default ServiceAccount", func() (bool, string) {
		var sa corev1.ServiceAccount
		err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "default"}, &sa)
		return err == nil, fmt.Sprint(err)
	})
	no := false
	out := map[string]string{}
	for _, node := range nodes {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: app + "-" + node, Labels: map[string]string{"app": app}},
			Spec: corev1.PodSpec{NodeName: node, AutomountServiceAccountToken: &no, Containers: []corev1.Container{{Name: app, Image: "none"}}}}
		if err := c.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		out[pod.Name] = node
	}
	return out
}

// endpoints returns the pods of a Service's EndpointSlices of one family,
// ready and not.
func endpoints(c client.Client, svc string, family netip.Addr) (ready, notReady []string) {
	typ := discoveryv1.AddressTypeIPv4
	if family.Is6() {
		typ = discoveryv1.AddressTypeIPv6
	}
	var list discoveryv1.EndpointSliceList
	_ = c.List(context.Background(), &list, client.InNamespace("default"), client.MatchingLabels{discoveryv1.LabelServiceName: svc})
	for _, s := range list.Items {
		if s.AddressType != typ {
			continue
		}
		for _, e := range s.Endpoints {
			if e.TargetRef == nil {
				continue
			}
			if e.Conditions.Ready == nil || *e.Conditions.Ready {
				ready = append(ready, e.TargetRef.Name)
			} else {
				notReady = append(notReady, e.TargetRef.Name)
			}
		}
	}
	slices.Sort(ready)
	slices.Sort(notReady)
	return ready, notReady
}

// expectReady waits until the Service's EndpointSlices of addr's family
// list exactly these pods as ready.
func expectReady(t *testing.T, c client.Client, svc string, addr netip.Addr, pods ...string) {
	t.Helper()
	slices.Sort(pods)
	testutil.Eventually(t, fmt.Sprintf("%s's ready endpoints (%s) to be %v", svc, addr, pods), func() (bool, string) {
		r, nr := endpoints(c, svc, addr)
		return slices.Equal(r, pods), fmt.Sprintf("ready %v, not ready %v", r, nr)
	})
}

// batch makes n requests from namespace ns to target, each on a new
// connection, and returns the answers; it stops at the first failure.
func batch(ns string, target netip.AddrPort, n int) ([]lab.Answer, error) {
	var out []lab.Answer
	for range n {
		a, err := traffic.Ask(ns, target, askTimeout)
		if err != nil {
			return out, fmt.Errorf("request %d of %d from %s to %s: %w", len(out)+1, n, ns, target, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// byPod counts answers by pod.
func byPod(as []lab.Answer) map[string]int {
	m := map[string]int{}
	for _, a := range as {
		m[a.Pod]++
	}
	return m
}

// expectSpread waits until a batch of n requests from ns to target is
// answered, every one of them, and by each of pods at least once; check
// judges every answer of every batch and fails the test at once.
func expectSpread(t *testing.T, ns string, target netip.AddrPort, n int, pods []string, check func(lab.Answer) error) []lab.Answer {
	t.Helper()
	var last []lab.Answer
	testutil.Eventually(t, fmt.Sprintf("%d requests from %s to %s answered by each of %v", n, ns, target, pods), func() (bool, string) {
		as, err := batch(ns, target, n)
		for _, a := range as {
			if err := check(a); err != nil {
				t.Fatalf("%s answered a request from %s to %s: %v", a.Pod, ns, target, err)
			}
		}
		last = as
		got := byPod(as)
		return err == nil && len(got) == len(pods) && !slices.ContainsFunc(pods, func(p string) bool { return got[p] == 0 }),
			fmt.Sprintf("answers by pod %v (%v)", got, err)
	})
	t.Logf("%d requests from %s to %s, a new connection each: answered by %v", n, ns, target, byPod(last))
	return last
}

// addrOf is a host's address of addr's family.
func addrOf(h lab.Host, family netip.Addr) netip.Addr {
	if family.Is6() {
		return h.Addr6.Addr()
	}
	return h.Addr.Addr()
}

func nodeNames(p lab.Plan) []string {
	var out []string
	for _, n := range p.Nodes {
		out = append(out, n.Name)
	}
	return out
}

func setReady(t *testing.T, c client.Client, pod string, ready bool) {
	t.Helper()
	var p corev1.Pod
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: pod}, &p); err != nil {
		t.Fatal(err)
	}
	p.Annotations = map[string]string{lab.ReadyAnnotation: fmt.Sprint(ready)}
	if err := c.Update(context.Background(), &p); err != nil {
		t.Fatal(err)
	}
}

// expectRefused checks that a connection to target from ns is refused
// (a TCP reset), not left to time out.
func expectRefused(t *testing.T, ns string, target netip.AddrPort) {
	t.Helper()
	start := time.Now()
	a, err := traffic.Ask(ns, target, askTimeout)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("a request from %s to %s, a port the Service does not expose: %+v, %v after %s; want the connection refused", ns, target, a, err, time.Since(start).Round(time.Millisecond))
	}
}

// TestForwardingLayer2: for IPv4 and IPv6, the LAN client's requests to
// a Cluster Service's layer 2 address, each on a new connection, are
// answered by the pods of every node; the pod on the announcing node
// sees the client's own address, the pods on the other nodes the
// announcing node's (masqueraded, so their answers go back through it);
// a port the Service does not expose is refused. Then a pod turns
// unready: once its EndpointSlice says so, new connections no longer
// reach it, and the other pods still answer.
func TestForwardingLayer2(t *testing.T) {
	l, c := startLab(t, 3)
	ctx := context.Background()
	applyExample(t, l)
	pods := podsOn(t, c, "web", nodeNames(l.Plan)...)
	all := slices.Sorted(maps.Keys(pods))
	targets := []netip.Addr{lab.PoolAddr(lab.L2PoolNet, 70), lab.PoolAddr(lab.L2PoolNet6, 0x70)}
	svcs := []string{"web4", "web6"}
	for i, a := range targets {
		lbService(t, c, svcs[i], a, func(s *corev1.Service) { s.Spec.Selector = map[string]string{"app": "web"} })
	}
	client := l.Plan.Client
	owners := map[netip.Addr]string{}
	for i, a := range targets {
		t.Run(a.String(), func(t *testing.T) {
			expectReady(t, c, svcs[i], a, all...)
			owner, err := measure.Owner(ctx, l, a)
			if err != nil {
				t.Fatal(err)
			}
			owners[a] = owner
			ownerNode, _ := l.Plan.Node(owner)
			expectSpread(t, client.NetNS, netip.AddrPortFrom(a, 80), 60, all, func(ans lab.Answer) error {
				want := addrOf(ownerNode.Host, a) // masqueraded by the announcing node
				if pods[ans.Pod] == owner {
					want = addrOf(client, a) // the client's own
				}
				if ans.Client.Addr() != want {
					return fmt.Errorf("it saw the connection come from %s, want %s (the pod is on %s, %s announces %s)", ans.Client.Addr(), want, pods[ans.Pod], owner, a)
				}
				return nil
			})
			expectRefused(t, client.NetNS, netip.AddrPortFrom(a, 81))
		})
	}
	if t.Failed() {
		return
	}

	// A pod turns unready: new connections stop reaching it once its
	// EndpointSlices say so, in both families.
	out := "web-" + l.Plan.Nodes[1].Name
	rest := slices.DeleteFunc(slices.Clone(all), func(p string) bool { return p == out })
	setReady(t, c, out, false)
	for i, a := range targets {
		testutil.Eventually(t, fmt.Sprintf("%s unready in %s's EndpointSlice", out, svcs[i]), func() (bool, string) {
			r, nr := endpoints(c, svcs[i], a)
			return slices.Equal(r, rest) && slices.Equal(nr, []string{out}), fmt.Sprintf("ready %v, not ready %v", r, nr)
		})
	}
	for _, a := range targets {
		target := netip.AddrPortFrom(a, 80)
		testutil.Eventually(t, fmt.Sprintf("30 requests in a row to %s that %s does not answer", target, out), func() (bool, string) {
			as, err := batch(client.NetNS, target, 30)
			return err == nil && byPod(as)[out] == 0, fmt.Sprintf("answers by pod %v (%v)", byPod(as), err)
		})
		// And it stays out, while the others share the connections.
		expectSpread(t, client.NetNS, target, 60, rest, func(ans lab.Answer) error {
			if ans.Pod == out {
				return fmt.Errorf("a new connection reached the unready pod %s", out)
			}
			return nil
		})
	}
}

// TestForwardingBGP: for IPv4 and IPv6, the remote client behind the
// FRR router reaches a Cluster Service's BGP address: the router spreads
// its connections over every node (ECMP), each node over every pod; a
// pod sees the remote client's own address when the connection entered
// through its node, the entering node's address otherwise. A port the
// Service does not expose is refused.
func TestForwardingBGP(t *testing.T) {
	l, c := startLab(t, 3)
	applyExample(t, l)
	pods := podsOn(t, c, "web", nodeNames(l.Plan)...)
	all := slices.Sorted(maps.Keys(pods))
	targets := []netip.Addr{lab.PoolAddr(lab.BGPPoolNet, 100), lab.PoolAddr(lab.BGPPoolNet6, 0x100)}
	svcs := []string{"web4", "web6"}
	for i, a := range targets {
		lbService(t, c, svcs[i], a, func(s *corev1.Service) { s.Spec.Selector = map[string]string{"app": "web"} })
	}
	remote := l.Plan.Remote
	for i, a := range targets {
		t.Run(a.String(), func(t *testing.T) {
			var hops []netip.Addr
			nodeByAddr := map[netip.Addr]string{}
			for _, n := range l.Plan.Nodes {
				hops = append(hops, addrOf(n.Host, a))
				nodeByAddr[addrOf(n.Host, a)] = n.Name
			}
			expectPaths(t, l, c, netip.PrefixFrom(a, a.BitLen()), hops...)
			expectReady(t, c, svcs[i], a, all...)
			// entered names the node each connection came in through.
			entered := func(ans lab.Answer) (string, error) {
				if ans.Client.Addr() == addrOf(remote, a) {
					return pods[ans.Pod], nil
				}
				node, ok := nodeByAddr[ans.Client.Addr()]
				if !ok || node == pods[ans.Pod] {
					return "", fmt.Errorf("it saw the connection come from %s: want the remote client's %s, or another node's address", ans.Client.Addr(), addrOf(remote, a))
				}
				return node, nil
			}
			check := func(ans lab.Answer) error { _, err := entered(ans); return err }
			testutil.Eventually(t, "connections through every node", func() (bool, string) {
				as := expectSpread(t, remote.NetNS, netip.AddrPortFrom(a, 80), 60, all, check)
				through := map[string]int{}
				for _, ans := range as {
					node, _ := entered(ans)
					through[node]++
				}
				return len(through) == len(l.Plan.Nodes), fmt.Sprintf("entered through %v", through)
			})
			expectRefused(t, remote.NetNS, netip.AddrPortFrom(a, 81))
		})
	}
}

// TestForwardingLocal: with externalTrafficPolicy Local, the Service's
// pod sees the client's own address, in both families, for the LAN
// client (layer 2: the address is announced from the pod's node) and for
// the remote client (BGP: only the pod's node advertises the address).
func TestForwardingLocal(t *testing.T) {
	l, c := startLab(t, 3)
	ctx := context.Background()
	applyExample(t, l)
	node := l.Plan.Nodes[2]
	pods := podsOn(t, c, "solo", node.Name)
	pod := slices.Collect(maps.Keys(pods))[0]
	for _, tt := range []struct {
		addr netip.Addr
		from lab.Host
	}{
		{lab.PoolAddr(lab.L2PoolNet, 71), l.Plan.Client},
		{lab.PoolAddr(lab.L2PoolNet6, 0x71), l.Plan.Client},
		{lab.PoolAddr(lab.BGPPoolNet, 101), l.Plan.Remote},
		{lab.PoolAddr(lab.BGPPoolNet6, 0x101), l.Plan.Remote},
	} {
		t.Run(tt.addr.String(), func(t *testing.T) {
			name := fmt.Sprintf("solo-%d", tt.addr.As16()[15])
			if tt.addr.Is6() {
				name += "-v6"
			}
			lbService(t, c, name, tt.addr, func(s *corev1.Service) {
				s.Spec.Selector = map[string]string{"app": "solo"}
				s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			})
			expectReady(t, c, name, tt.addr, pod)
			if lab.L2PoolNet.Contains(tt.addr) || lab.L2PoolNet6.Contains(tt.addr) {
				owner, err := measure.Owner(ctx, l, tt.addr)
				if err != nil || owner != node.Name {
					t.Fatalf("%s announced by %q (%v), want %s, the node of its only pod", tt.addr, owner, err, node.Name)
				}
			} else {
				expectPaths(t, l, c, netip.PrefixFrom(tt.addr, tt.addr.BitLen()), addrOf(node.Host, tt.addr))
			}
			want := addrOf(tt.from, tt.addr)
			var ans lab.Answer
			testutil.Eventually(t, fmt.Sprintf("an answer from %s to %s", tt.from.NetNS, tt.addr), func() (bool, string) {
				var err error
				ans, err = traffic.Ask(tt.from.NetNS, netip.AddrPortFrom(tt.addr, 80), askTimeout)
				return err == nil, fmt.Sprint(err)
			})
			if ans.Pod != pod || ans.Client.Addr() != want {
				t.Errorf("answer %+v: want %s seeing the client's own address %s", ans, pod, want)
			}
		})
	}
}

// TestForwardingCleanup: a stopped speaker leaves its node's rules in
// place; `speaker --cleanup` in the node's namespace removes both of
// ironlb's tables (and is fine to run again) while the other nodes keep
// theirs and the Service stays reachable through them; a restarted
// speaker writes its tables again and forwards as before.
func TestForwardingCleanup(t *testing.T) {
	l, c := startLab(t, 3)
	ctx := context.Background()
	applyExample(t, l)
	pods := podsOn(t, c, "web", nodeNames(l.Plan)...)
	all := slices.Sorted(maps.Keys(pods))
	addr := lab.PoolAddr(lab.L2PoolNet, 70)
	lbService(t, c, "web", addr, func(s *corev1.Service) { s.Spec.Selector = map[string]string{"app": "web"} })
	expectReady(t, c, "web", addr, all...)
	target := netip.AddrPortFrom(addr, 80)
	ns := l.Plan.Client.NetNS
	anyAnswer := func(ans lab.Answer) error { return nil }
	expectSpread(t, ns, target, 60, all, anyAnswer)
	owner, err := measure.Owner(ctx, l, addr)
	if err != nil {
		t.Fatal(err)
	}
	ours := []string{"ip ironlb", "ip6 ironlb"}
	hasOurs := func(node string) (bool, string) {
		tables, err := l.NFTTables(node)
		return err == nil && !slices.ContainsFunc(ours, func(tb string) bool { return !slices.Contains(tables, tb) }), fmt.Sprintf("%s has tables %v (%v)", node, tables, err)
	}
	for _, n := range l.Plan.Nodes {
		if ok, why := hasOurs(n.Name); !ok {
			t.Fatalf("before the cleanup: %s", why)
		}
	}

	restarted := false
	t.Cleanup(func() {
		if !restarted {
			_ = l.StartSpeaker(owner)
		}
	})
	if err := l.StopSpeaker(owner); err != nil {
		t.Fatal(err)
	}
	if ok, why := hasOurs(owner); !ok {
		t.Errorf("the speaker stopped and took its rules with it: %s", why)
	}
	for range 2 {
		if out, err := l.SpeakerCleanup(owner); err != nil {
			t.Fatal(err)
		} else {
			t.Logf("speaker --cleanup on %s: %s", owner, out)
		}
	}
	tables, err := l.NFTTables(owner)
	if err != nil || slices.ContainsFunc(ours, func(tb string) bool { return slices.Contains(tables, tb) }) {
		t.Errorf("after speaker --cleanup, %s has tables %v (%v); want none of %v", owner, tables, err, ours)
	}
	for _, n := range l.Plan.Nodes {
		if n.Name == owner {
			continue
		}
		if ok, why := hasOurs(n.Name); !ok {
			t.Errorf("cleaning %s touched another node: %s", owner, why)
		}
	}
	// Another node announces the address now, and forwards.
	expectSpread(t, ns, target, 60, all, anyAnswer)

	if err := l.StartSpeaker(owner); err != nil {
		t.Fatal(err)
	}
	restarted = true
	testutil.Eventually(t, "the restarted speaker's tables", func() (bool, string) { return hasOurs(owner) })
	if err := measure.OwnerIs(ctx, l, addr, owner); err != nil {
		t.Fatal(err)
	}
	expectSpread(t, ns, target, 60, all, anyAnswer)
}
