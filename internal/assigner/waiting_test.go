package assigner_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ironlb/ironlb/internal/allocator"
	"github.com/ironlb/ironlb/internal/testenv"
	"github.com/ironlb/ironlb/internal/testutil"
)

// TestWaitingServicesServed: a pool of two addresses and four Services
// pinned to it; the last two wait (PoolExhausted), zeta before alpha. When
// the first Service is deleted, the one waiting longest (zeta, though
// alpha sorts first by name) gets its address at once; when the second
// turns into a ClusterIP Service, alpha gets that one. Each time the
// controller says it served a waiting Service (not a periodic resync,
// which does not come for hours); the delays are logged.
func TestWaitingServicesServed(t *testing.T) {
	r := start(t, nil)
	c := testenv.Get(t).Client
	ctx := context.Background()
	ns := namespace(t, nil)
	first, second := "2001:db8:e007::", "2001:db8:e007::1"
	apply(t, nsPool(ns+"-p", ns, first+"-"+second))
	pinned := func(s *corev1.Service) {
		ipv6Only(s)
		s.Annotations = map[string]string{"ironlb.io/ip-pool": ns + "-p"}
	}
	create(t, lbService(ns, "a", pinned))
	waitIPs(t, ns, "a", first)
	create(t, lbService(ns, "b", pinned))
	waitIPs(t, ns, "b", second)
	create(t, lbService(ns, "zeta", pinned))
	waitCondition(t, ns, "zeta", string(allocator.ReasonPoolExhausted))
	create(t, lbService(ns, "alpha", pinned))
	waitCondition(t, ns, "alpha", string(allocator.ReasonPoolExhausted))

	served := func(name string) func() (bool, string) {
		return func() (bool, string) {
			return strings.Contains(r.logs.String(), `"a waiting Service is served by an address another gave up" service=`+ns+"/"+name), "the controller has not said so"
		}
	}

	began := time.Now()
	if err := c.Delete(ctx, getService(t, ns, "a")); err != nil {
		t.Fatal(err)
	}
	waitIPs(t, ns, "zeta", first)
	t.Logf("deletion: the longest waiting Service had the freed address %s later", time.Since(began))
	testutil.Eventually(t, "the controller to serve zeta from the waiting list", served("zeta"))
	waitCondition(t, ns, "alpha", string(allocator.ReasonPoolExhausted))

	began = time.Now()
	b := getService(t, ns, "b")
	b.Spec.Type = corev1.ServiceTypeClusterIP
	b.Spec.AllocateLoadBalancerNodePorts = nil
	if err := c.Update(ctx, b); err != nil {
		t.Fatal(err)
	}
	waitIPs(t, ns, "alpha", second)
	t.Logf("type change: the waiting Service had the freed address %s later", time.Since(began))
	testutil.Eventually(t, "the controller to serve alpha from the waiting list", served("alpha"))
	waitIPs(t, ns, "b")
}
