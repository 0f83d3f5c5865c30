package assigner_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/assigner"
	"github.com/ironlb/ironlb/internal/testenv"
	"github.com/ironlb/ironlb/internal/testutil"
)

func ipv6Only(s *corev1.Service) {
	single := corev1.IPFamilyPolicySingleStack
	s.Spec.IPFamilyPolicy, s.Spec.IPFamilies = &single, []corev1.IPFamily{corev1.IPv6Protocol}
}

// nsPool is an IPv6 pool only one namespace may use.
func nsPool(name, ns, cidr string) *v1alpha1.IPPool {
	p := ippool(name, cidr)
	p.Spec.AllocateTo = &v1alpha1.AllocateTo{Namespaces: []string{ns}}
	return p
}

// allocatedIPs waits until every named Service shows one address with
// reason Allocated, and returns the addresses by name.
func allocatedIPs(t *testing.T, ns string, names []string) map[string]string {
	t.Helper()
	c := testenv.Get(t).Client
	out := map[string]string{}
	testutil.Eventually(t, fmt.Sprintf("%d Services to be allocated", len(names)), func() (bool, string) {
		var list corev1.ServiceList
		if err := c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		clear(out)
		for _, s := range list.Items {
			cond := meta.FindStatusCondition(s.Status.Conditions, assigner.ConditionIPAllocated)
			if cond != nil && cond.Reason == assigner.ReasonAllocated && len(s.Status.LoadBalancer.Ingress) == 1 {
				out[s.Name] = s.Status.LoadBalancer.Ingress[0].IP
			}
		}
		missing := 0
		for _, n := range names {
			if _, ok := out[n]; !ok {
				missing++
			}
		}
		return missing == 0, fmt.Sprintf("%d of %d not allocated yet", missing, len(names))
	})
	return out
}

// TestRestartKeepsEveryAddress: 200 Services, holes punched by deleting a
// third of them, then the controller stops; while it is down 20 more
// Services arrive. The new controller must give every old Service its old
// address and the new ones addresses nobody had.
func TestRestartKeepsEveryAddress(t *testing.T) {
	ns := namespace(t, nil)
	apply(t, nsPool(ns+"-p", ns, "2001:db8:e001::/120"))
	first := start(t, nil)
	var names []string
	for i := range 200 {
		name := fmt.Sprintf("s%03d", i)
		create(t, lbService(ns, name, ipv6Only))
		names = append(names, name)
	}
	allocatedIPs(t, ns, names)
	c := testenv.Get(t).Client
	var kept []string
	for i, n := range names {
		if i%3 == 0 {
			if err := c.Delete(context.Background(), lbService(ns, n)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		kept = append(kept, n)
	}
	// Wait until the deletions are processed, then take the picture.
	waitPoolCounts6(t, ns+"-p", int64(len(kept)))
	before := allocatedIPs(t, ns, kept)
	first.stop(t)

	var added []string
	for i := range 20 {
		name := fmt.Sprintf("new%02d", i)
		create(t, lbService(ns, name, ipv6Only))
		added = append(added, name)
	}
	start(t, nil)
	after := allocatedIPs(t, ns, append(slices.Clone(kept), added...))
	for _, n := range kept {
		if after[n] != before[n] {
			t.Errorf("Service %s had %s before the restart and %s after", n, before[n], after[n])
		}
	}
	seen := map[string]string{}
	for n, ip := range after {
		if other, dup := seen[ip]; dup {
			t.Errorf("Services %s and %s both show %s", n, other, ip)
		}
		seen[ip] = n
	}
	waitPoolCounts6(t, ns+"-p", int64(len(kept)+len(added)))
}

func waitPoolCounts6(t *testing.T, pool string, assigned int64) {
	t.Helper()
	testutil.Eventually(t, fmt.Sprintf("IPPool %s to count %d IPv6 addresses assigned", pool, assigned), func() (bool, string) {
		var p v1alpha1.IPPool
		if err := testenv.Get(t).Client.Get(context.Background(), client.ObjectKey{Name: pool}, &p); err != nil {
			return false, err.Error()
		}
		return p.Status.IPv6 != nil && p.Status.IPv6.Assigned == assigned, fmt.Sprintf("%+v", p.Status.IPv6)
	})
}

// TestConflictingStatusAtStart: two Services show the same address in their
// status when the controller starts (a restored backup, a hand edit). The
// older keeps it, the other gets a new one, and both are told.
func TestConflictingStatusAtStart(t *testing.T) {
	ns := namespace(t, nil)
	apply(t, nsPool(ns+"-p", ns, "2001:db8:e002::/120"))
	c := testenv.Get(t).Client
	ip := "2001:db8:e002::7"
	for _, name := range []string{"a-older", "b-newer"} {
		svc := lbService(ns, name, ipv6Only)
		create(t, svc)
		svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}}
		if err := c.Status().Update(context.Background(), svc); err != nil {
			t.Fatal(err)
		}
	}
	start(t, nil)
	waitIPs(t, ns, "a-older", ip)
	svc := waitCondition(t, ns, "b-newer", assigner.ReasonAllocated)
	if got := ingressIPs(svc); len(got) != 1 || got[0] == ip || !strings.HasPrefix(got[0], "2001:db8:e002::") {
		t.Errorf("b-newer shows %v, want one other address of the pool", got)
	}
	waitEvent(t, ns, "b-newer", assigner.ReasonIPConflict, "held by Service "+ns+"/a-older")
	waitEvent(t, ns, "a-older", assigner.ReasonIPConflict, "also claimed "+ip)
}

// TestTwoReplicas: with leader election only the replica holding the Lease
// writes; when it stops, the other takes over and serves new Services
// without moving old ones.
func TestTwoReplicas(t *testing.T) {
	ns := namespace(t, nil)
	apply(t, nsPool(ns+"-p", ns, "2001:db8:e003::/120"))
	le := func(o *assigner.RunOptions) {
		o.LeaderElect, o.LeaseNamespace, o.LeaseName = true, ns, "ironlb-controller-test"
		o.LeaseDuration, o.RenewDeadline, o.RetryPeriod = 4*time.Second, 3*time.Second, 200*time.Millisecond
	}
	a := start(t, le)
	testutil.Eventually(t, "replica a to lead", func() (bool, string) {
		return acquired(a), "not yet"
	})
	b := start(t, le)
	create(t, lbService(ns, "one", ipv6Only))
	one := waitCondition(t, ns, "one", assigner.ReasonAllocated)
	// b has had the whole allocation's time to act; it must not have.
	if logs := b.logs.String(); acquired(b) || strings.Contains(logs, "service status") {
		t.Fatalf("the follower acted while a led:\n%s", logs)
	}
	// The leader logs its write after the API server has it, so the log
	// line may trail the condition the test saw.
	testutil.Eventually(t, "the leader's log of its write", func() (bool, string) {
		return strings.Contains(a.logs.String(), "service status"), a.logs.String()
	})

	a.stop(t) // a graceful stop gives the Lease up
	testutil.Eventually(t, "replica b to lead", func() (bool, string) {
		return acquired(b), "not yet"
	})
	create(t, lbService(ns, "two", ipv6Only))
	two := waitCondition(t, ns, "two", assigner.ReasonAllocated)
	if got := ingressIPs(getService(t, ns, "one")); !slices.Equal(got, ingressIPs(one)) {
		t.Errorf("one moved from %v to %v on failover", ingressIPs(one), got)
	}
	if ingressIPs(two)[0] == ingressIPs(one)[0] {
		t.Errorf("two got one's address %v", ingressIPs(two))
	}
	if !strings.Contains(b.logs.String(), "service status") {
		t.Errorf("b did not write after taking over:\n%s", b.logs.String())
	}
}

// TestRequireClass: with --require-class, Services without a class are
// left alone.
func TestRequireClass(t *testing.T) {
	ns := namespace(t, nil)
	apply(t, nsPool(ns+"-p", ns, "2001:db8:e004::/120"))
	start(t, func(o *assigner.RunOptions) { o.Class.Require = true })
	ours := "ironlb.io/lb"
	create(t, lbService(ns, "classless", ipv6Only))
	create(t, lbService(ns, "classy", ipv6Only, func(s *corev1.Service) { s.Spec.LoadBalancerClass = &ours }))
	waitIPs(t, ns, "classy", "2001:db8:e004::")
	if svc := getService(t, ns, "classless"); len(svc.Status.LoadBalancer.Ingress) > 0 || len(svc.Status.Conditions) > 0 {
		t.Errorf("a Service without a class was served: %+v", svc.Status)
	}
}

// TestConfigFile: with --config-file the pools come from the file; no
// IPPool object exists and none is written.
func TestConfigFile(t *testing.T) {
	ns := namespace(t, nil)
	static := staticConfig(t, nsPool("file-pool", ns, "2001:db8:e005::/120"))
	start(t, func(o *assigner.RunOptions) { o.Static = static })
	create(t, lbService(ns, "a", ipv6Only))
	svc := waitCondition(t, ns, "a", assigner.ReasonAllocated)
	if got := ingressIPs(svc); len(got) != 1 || netip.MustParseAddr(got[0]) != netip.MustParseAddr("2001:db8:e005::") {
		t.Errorf("ingress = %v", got)
	}
	if !strings.Contains(meta.FindStatusCondition(svc.Status.Conditions, assigner.ConditionIPAllocated).Message, `IPPool "file-pool"`) {
		t.Errorf("condition does not name the file's pool: %+v", svc.Status.Conditions)
	}
}

func acquired(r *running) bool {
	return strings.Contains(strings.ToLower(r.logs.String()), "successfully acquired lease")
}

// TestCrashedLeaderTakesBackItsLease: a leader that dies without giving
// its Lease up (a crash) and restarts under the same identity (its pod's
// name) leads again at once, while a replica of another pod waits for the
// Lease to expire: here an hour, so only the identity can explain a
// takeover within the test.
func TestCrashedLeaderTakesBackItsLease(t *testing.T) {
	ns := namespace(t, nil)
	apply(t, nsPool(ns+"-p", ns, "2001:db8:e008::/120"))
	le := func(identity string, crash bool) func(*assigner.RunOptions) {
		return func(o *assigner.RunOptions) {
			o.LeaderElect, o.LeaseNamespace, o.LeaseName, o.LeaseIdentity = true, ns, "ironlb-controller-test", identity
			o.LeaseDuration, o.RenewDeadline, o.RetryPeriod = time.Hour, 30*time.Second, 200*time.Millisecond
			if crash {
				assigner.Crash(o)
			}
		}
	}
	a := start(t, le("controller-pod-a", true))
	testutil.Eventually(t, "replica a to lead", func() (bool, string) {
		return acquired(a), "not yet"
	})
	create(t, lbService(ns, "one", ipv6Only))
	one := waitCondition(t, ns, "one", assigner.ReasonAllocated)
	a.stop(t) // crashes: the Lease stays a's for an hour

	b := start(t, le("controller-pod-b", false))
	again := start(t, le("controller-pod-a", false))
	testutil.Eventually(t, "a, restarted in its pod, to lead again", func() (bool, string) {
		return acquired(again), "not yet"
	})
	create(t, lbService(ns, "two", ipv6Only))
	two := waitCondition(t, ns, "two", assigner.ReasonAllocated)
	if ingressIPs(two)[0] == ingressIPs(one)[0] {
		t.Errorf("two got one's address %v", ingressIPs(two))
	}
	if logs := b.logs.String(); acquired(b) || strings.Contains(logs, "service status") {
		t.Fatalf("the replica of another pod took an unexpired Lease:\n%s", logs)
	}
}
