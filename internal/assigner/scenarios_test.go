package assigner_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/allocator"
	"github.com/ironlb/ironlb/internal/assigner"
	"github.com/ironlb/ironlb/internal/testenv"
	"github.com/ironlb/ironlb/internal/testutil"
)

// scn is one scenario's world: a namespace, and address blocks no other
// scenario uses: v4 is 203.0.113.<8*n>/29 and v6 2001:db8:<n>::/120.
type scn struct {
	t  *testing.T
	ns string
	n  int
	c  client.Client
}

func (s *scn) v4(i int) string { return fmt.Sprintf("203.0.113.%d", 8*s.n+i) }
func (s *scn) v4net() string   { return fmt.Sprintf("203.0.113.%d/29", 8*s.n) }
func (s *scn) v6(i int) string {
	return netip.MustParseAddr(fmt.Sprintf("2001:db8:%x::%x", s.n, i)).String()
}
func (s *scn) v6net() string        { return fmt.Sprintf("2001:db8:%x::/120", s.n) }
func (s *scn) name(n string) string { return fmt.Sprintf("%s-%s", s.ns, n) }

// pool makes a pool only this scenario's namespace may use.
func (s *scn) pool(name string, mutate func(*v1alpha1.IPPool), addrs ...string) *v1alpha1.IPPool {
	p := ippool(s.name(name), addrs...)
	p.Spec.AllocateTo = &v1alpha1.AllocateTo{Namespaces: []string{s.ns}}
	if mutate != nil {
		mutate(p)
	}
	apply(s.t, p)
	return p
}

func (s *scn) svc(name string, mutate ...func(*corev1.Service)) {
	create(s.t, lbService(s.ns, name, mutate...))
}

func annotate(kv ...string) func(*corev1.Service) {
	return func(s *corev1.Service) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		for i := 0; i < len(kv); i += 2 {
			s.Annotations[kv[i]] = kv[i+1]
		}
	}
}

func families(policy corev1.IPFamilyPolicy, fs ...corev1.IPFamily) func(*corev1.Service) {
	return func(s *corev1.Service) { s.Spec.IPFamilyPolicy, s.Spec.IPFamilies = &policy, fs }
}

// TestScenarios runs the controller's behaviours one by one against one
// controller and the real API server.
func TestScenarios(t *testing.T) {
	start(t, nil)
	other, ours := "example.com/other", "ironlb.io/lb"
	scenarios := []struct {
		name string
		run  func(s *scn)
	}{
		{"avoidBuggyIPs skips .0", func(s *scn) {
			s.pool("p", func(p *v1alpha1.IPPool) { p.Spec.AvoidBuggyIPs = true }, s.v4net())
			s.svc("a")
			waitIPs(s.t, s.ns, "a", s.v4(1))
		}},
		{"auto-assign writes ingress with ipMode VIP and an Allocated condition", func(s *scn) {
			s.pool("p", nil, s.v4net())
			s.svc("a")
			svc := waitIPs(s.t, s.ns, "a", s.v4(0))
			if m := svc.Status.LoadBalancer.Ingress[0].IPMode; m == nil || *m != corev1.LoadBalancerIPModeVIP {
				s.t.Errorf("ipMode = %v, want VIP", m)
			}
			waitCondition(s.t, s.ns, "a", assigner.ReasonAllocated) // and no event: nothing needs a person
		}},
		{"our loadBalancerClass is served", func(s *scn) {
			s.pool("p", nil, s.v4net())
			s.svc("a", func(x *corev1.Service) { x.Spec.LoadBalancerClass = &ours })
			waitIPs(s.t, s.ns, "a", s.v4(0))
		}},
		{"another class and other types are never touched", func(s *scn) {
			s.pool("p", nil, s.v4net())
			s.svc("other", func(x *corev1.Service) { x.Spec.LoadBalancerClass = &other })
			create(s.t, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: "cip"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}})
			s.svc("marker") // served after the others were seen
			waitIPs(s.t, s.ns, "marker", s.v4(0))
			for _, n := range []string{"other", "cip"} {
				if svc := getService(s.t, s.ns, n); len(svc.Status.LoadBalancer.Ingress) > 0 || len(svc.Status.Conditions) > 0 {
					s.t.Errorf("Service %s was written: %+v", n, svc.Status)
				}
			}
		}},
		{"requested address by annotation, with both MetalLB spellings and the deprecated field", func(s *scn) {
			s.pool("p", nil, s.v4net())
			s.svc("a", annotate("ironlb.io/loadBalancerIPs", s.v4(1)))
			s.svc("b", annotate("metallb.io/loadBalancerIPs", s.v4(2)))
			s.svc("c", annotate("metallb.universe.tf/loadBalancerIPs", s.v4(3)))
			s.svc("d", func(x *corev1.Service) { x.Spec.LoadBalancerIP = s.v4(4) })
			waitIPs(s.t, s.ns, "a", s.v4(1))
			waitIPs(s.t, s.ns, "b", s.v4(2))
			waitIPs(s.t, s.ns, "c", s.v4(3))
			waitIPs(s.t, s.ns, "d", s.v4(4))
		}},
		{"requested address outside every pool", func(s *scn) {
			s.pool("p", nil, s.v4net())
			s.svc("a", annotate("ironlb.io/loadBalancerIPs", "198.51.100.77"))
			svc := waitCondition(s.t, s.ns, "a", string(allocator.ReasonRequestedIPNotInAnyPool))
			if len(svc.Status.LoadBalancer.Ingress) != 0 {
				s.t.Errorf("got an address anyway: %v", ingressIPs(svc))
			}
			waitEvent(s.t, s.ns, "a", string(allocator.ReasonRequestedIPNotInAnyPool), "198.51.100.77 is not in any IPPool")
		}},
		{"requested address in use", func(s *scn) {
			s.pool("p", nil, s.v4net())
			s.svc("a", annotate("ironlb.io/loadBalancerIPs", s.v4(3)))
			waitIPs(s.t, s.ns, "a", s.v4(3))
			s.svc("b", annotate("ironlb.io/loadBalancerIPs", s.v4(3)))
			waitCondition(s.t, s.ns, "b", string(allocator.ReasonRequestedIPUnavailable))
		}},
		{"malformed annotation is an invalid request, logged and evented", func(s *scn) {
			s.pool("p", nil, s.v4net())
			s.svc("a", annotate("ironlb.io/loadBalancerIPs", "203.0.113.300"))
			waitCondition(s.t, s.ns, "a", string(allocator.ReasonInvalidRequest))
			waitEvent(s.t, s.ns, "a", string(allocator.ReasonInvalidRequest), "is not an IP address")
			s.svc("b") // others are not disturbed
			waitIPs(s.t, s.ns, "b", s.v4(0))
		}},
		{"an invalid edit keeps the address the Service has", func(s *scn) {
			s.pool("p", nil, s.v4net())
			s.svc("a")
			svc := waitIPs(s.t, s.ns, "a", s.v4(0))
			svc.Annotations = map[string]string{"ironlb.io/ip-pool": "x", "metallb.io/address-pool": "y"}
			if err := s.c.Update(context.Background(), svc); err != nil {
				s.t.Fatal(err)
			}
			svc = waitCondition(s.t, s.ns, "a", string(allocator.ReasonInvalidRequest))
			if got := ingressIPs(svc); !slices.Equal(got, []string{s.v4(0)}) {
				s.t.Errorf("ingress = %v, want the address kept", got)
			}
		}},
		{"pool pinned by annotation and by the MetalLB alias", func(s *scn) {
			s.pool("first", nil, s.v4(0)+"-"+s.v4(3))
			s.pool("second", nil, s.v4(4)+"-"+s.v4(7))
			s.svc("a", annotate("ironlb.io/ip-pool", s.name("second")))
			s.svc("b", annotate("metallb.io/address-pool", s.name("second")))
			waitIPs(s.t, s.ns, "a", s.v4(4))
			waitIPs(s.t, s.ns, "b", s.v4(5))
		}},
		{"unknown pool", func(s *scn) {
			s.pool("p", nil, s.v4net())
			s.svc("a", annotate("ironlb.io/ip-pool", "no-such-pool"))
			waitCondition(s.t, s.ns, "a", string(allocator.ReasonUnknownPool))
		}},
		{"autoAssign false pools are used only by name", func(s *scn) {
			s.pool("manual", func(p *v1alpha1.IPPool) { f := false; p.Spec.AutoAssign = &f }, s.v4net())
			s.svc("a")
			waitCondition(s.t, s.ns, "a", string(allocator.ReasonNoMatchingPool))
			s.svc("b", annotate("ironlb.io/ip-pool", s.name("manual")))
			waitIPs(s.t, s.ns, "b", s.v4(0))
		}},
		{"priority orders the pools", func(s *scn) {
			one := int32(1)
			s.pool("late", nil, s.v4(0)+"-"+s.v4(3))
			s.pool("early", func(p *v1alpha1.IPPool) { p.Spec.AllocateTo.Priority = &one }, s.v4(4)+"-"+s.v4(7))
			s.svc("a")
			waitIPs(s.t, s.ns, "a", s.v4(4))
		}},
		{"namespaceSelector: a Service gets its address once its namespace is labelled", func(s *scn) {
			s.pool("p", func(p *v1alpha1.IPPool) {
				p.Spec.AllocateTo = &v1alpha1.AllocateTo{NamespaceSelector: &v1alpha1.Selector{MatchLabels: map[string]v1alpha1.LabelValue{"ironlb-test": v1alpha1.LabelValue(s.ns)}}}
			}, s.v4net())
			s.svc("a")
			waitCondition(s.t, s.ns, "a", string(allocator.ReasonNoMatchingPool))
			var ns corev1.Namespace
			if err := s.c.Get(context.Background(), client.ObjectKey{Name: s.ns}, &ns); err != nil {
				s.t.Fatal(err)
			}
			ns.Labels = map[string]string{"ironlb-test": s.ns}
			if err := s.c.Update(context.Background(), &ns); err != nil {
				s.t.Fatal(err)
			}
			waitIPs(s.t, s.ns, "a", s.v4(0))
		}},
		{"serviceSelector", func(s *scn) {
			s.pool("p", func(p *v1alpha1.IPPool) {
				p.Spec.AllocateTo.ServiceSelector = &v1alpha1.Selector{MatchLabels: map[string]v1alpha1.LabelValue{"exposure": "internet"}}
			}, s.v4net())
			s.svc("plain")
			s.svc("public", func(x *corev1.Service) { x.Labels = map[string]string{"exposure": "internet"} })
			waitIPs(s.t, s.ns, "public", s.v4(0))
			waitCondition(s.t, s.ns, "plain", string(allocator.ReasonNoMatchingPool))
		}},
		{"sharing: same key and other ports share; the same port does not", func(s *scn) {
			s.pool("p", nil, s.v4net())
			key := annotate("ironlb.io/allow-shared-ip", "web")
			s.svc("http", key)
			waitIPs(s.t, s.ns, "http", s.v4(0))
			s.svc("dns", key, func(x *corev1.Service) { x.Spec.Ports[0].Port, x.Spec.Ports[0].Protocol = 53, corev1.ProtocolUDP })
			waitIPs(s.t, s.ns, "dns", s.v4(0))
			s.svc("http2", key)
			waitIPs(s.t, s.ns, "http2", s.v4(1))
			s.svc("clash", key, annotate("ironlb.io/loadBalancerIPs", s.v4(0)))
			waitCondition(s.t, s.ns, "clash", string(allocator.ReasonSharingConflict))
		}},
		{"sharing with externalTrafficPolicy Local needs the same pods", func(s *scn) {
			s.pool("p", nil, s.v4net())
			local := func(x *corev1.Service) { x.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal }
			s.svc("a", annotate("metallb.universe.tf/allow-shared-ip", "k"), local)
			waitIPs(s.t, s.ns, "a", s.v4(0))
			s.svc("b", annotate("metallb.universe.tf/allow-shared-ip", "k", "ironlb.io/loadBalancerIPs", s.v4(0)), local,
				func(x *corev1.Service) { x.Spec.Ports[0].Port = 443 })
			waitCondition(s.t, s.ns, "b", string(allocator.ReasonSharingConflict))
			s.svc("c", annotate("metallb.universe.tf/allow-shared-ip", "k"), local, func(x *corev1.Service) {
				x.Spec.Ports[0].Port = 8443
				x.Spec.Selector = map[string]string{"app": "a"}
			})
			waitIPs(s.t, s.ns, "c", s.v4(0))
		}},
		{"RequireDualStack gets both families", func(s *scn) {
			s.pool("p", nil, s.v4net(), s.v6net())
			s.svc("a", families(corev1.IPFamilyPolicyRequireDualStack, corev1.IPv6Protocol, corev1.IPv4Protocol))
			waitIPs(s.t, s.ns, "a", s.v6(0), s.v4(0))
		}},
		{"RequireDualStack on IPv4-only pools gets nothing; PreferDualStack takes IPv4", func(s *scn) {
			s.pool("p", nil, s.v4net())
			s.svc("req", families(corev1.IPFamilyPolicyRequireDualStack, corev1.IPv4Protocol, corev1.IPv6Protocol))
			svc := waitCondition(s.t, s.ns, "req", string(allocator.ReasonNoMatchingPool))
			if len(svc.Status.LoadBalancer.Ingress) > 0 {
				s.t.Errorf("RequireDualStack got %v", ingressIPs(svc))
			}
			s.svc("pref", families(corev1.IPFamilyPolicyPreferDualStack, corev1.IPv4Protocol, corev1.IPv6Protocol))
			waitIPs(s.t, s.ns, "pref", s.v4(0))
		}},
		{"IPv6 single-stack", func(s *scn) {
			s.pool("p", nil, s.v6net())
			s.svc("a", families(corev1.IPFamilyPolicySingleStack, corev1.IPv6Protocol))
			waitIPs(s.t, s.ns, "a", s.v6(0))
		}},
		{"exhausted pool, then enlarged: the pending Service gets its address", func(s *scn) {
			p := s.pool("p", nil, s.v4(0))
			s.svc("a")
			waitIPs(s.t, s.ns, "a", s.v4(0))
			s.svc("b")
			waitCondition(s.t, s.ns, "b", string(allocator.ReasonPoolExhausted))
			waitEvent(s.t, s.ns, "b", string(allocator.ReasonPoolExhausted), "no IPv4 address left")
			if err := s.c.Get(context.Background(), client.ObjectKeyFromObject(p), p); err != nil {
				s.t.Fatal(err)
			}
			p.Spec.Addresses = []v1alpha1.AddressRange{v1alpha1.AddressRange(s.v4(0) + "-" + s.v4(1))}
			if err := s.c.Update(context.Background(), p); err != nil {
				s.t.Fatal(err)
			}
			waitIPs(s.t, s.ns, "b", s.v4(1))
			waitCondition(s.t, s.ns, "b", assigner.ReasonAllocated)
		}},
		{"deletion releases; pool status counts follow", func(s *scn) {
			p := s.pool("p", nil, s.v4net())
			s.svc("a")
			s.svc("b")
			waitIPs(s.t, s.ns, "b", s.v4(1))
			waitPoolCounts(s.t, p.Name, 8, 2)
			if err := s.c.Delete(context.Background(), lbService(s.ns, "a")); err != nil {
				s.t.Fatal(err)
			}
			waitPoolCounts(s.t, p.Name, 8, 1)
		}},
		{"a Service that stops being a LoadBalancer loses its address and ironlb's status", func(s *scn) {
			p := s.pool("p", nil, s.v4net())
			s.svc("a")
			svc := waitIPs(s.t, s.ns, "a", s.v4(0))
			svc.Spec.Type = corev1.ServiceTypeClusterIP
			svc.Spec.AllocateLoadBalancerNodePorts = nil
			if err := s.c.Update(context.Background(), svc); err != nil {
				s.t.Fatal(err)
			}
			testutil.Eventually(s.t, "status to be cleared", func() (bool, string) {
				svc := getService(s.t, s.ns, "a")
				return len(svc.Status.LoadBalancer.Ingress) == 0 && meta.FindStatusCondition(svc.Status.Conditions, assigner.ConditionIPAllocated) == nil, fmt.Sprintf("%+v", svc.Status)
			})
			waitPoolCounts(s.t, p.Name, 8, 0)
		}},
		{"a pool edit that does not affect a Service does not write to it", func(s *scn) {
			p := s.pool("p", nil, s.v4net())
			s.svc("a")
			waitCondition(s.t, s.ns, "a", assigner.ReasonAllocated)
			before := getService(s.t, s.ns, "a").ResourceVersion
			if err := s.c.Get(context.Background(), client.ObjectKeyFromObject(p), p); err != nil {
				s.t.Fatal(err)
			}
			p.Spec.AvoidBuggyIPs = true // generation changes; a's address .0 is not affected? it is buggy, but kept
			p.Labels = map[string]string{"edited": "yes"}
			if err := s.c.Update(context.Background(), p); err != nil {
				s.t.Fatal(err)
			}
			// A later Service shows the edit was processed.
			s.svc("b")
			waitIPs(s.t, s.ns, "b", s.v4(1))
			if after := getService(s.t, s.ns, "a").ResourceVersion; after != before {
				s.t.Errorf("Service a was written (resourceVersion %s → %s): %+v", before, after, getService(s.t, s.ns, "a").Status)
			}
		}},
		{"a pool that goes away: the Service keeps its address and is told", func(s *scn) {
			p := s.pool("p", nil, s.v4net())
			s.svc("a")
			waitIPs(s.t, s.ns, "a", s.v4(0))
			if err := s.c.Delete(context.Background(), p); err != nil {
				s.t.Fatal(err)
			}
			svc := waitCondition(s.t, s.ns, "a", assigner.ReasonAddressOutsidePools)
			if got := ingressIPs(svc); !slices.Equal(got, []string{s.v4(0)}) {
				s.t.Errorf("ingress = %v, want the address kept", got)
			}
			waitEvent(s.t, s.ns, "a", assigner.ReasonAddressOutsidePools, "no longer in any IPPool")
			// Asking for another pool is the explicit action that moves it.
			s.pool("new", nil, s.v4(4)+"-"+s.v4(7))
			svc = getService(s.t, s.ns, "a")
			svc.Annotations = map[string]string{"ironlb.io/ip-pool": s.name("new")}
			if err := s.c.Update(context.Background(), svc); err != nil {
				s.t.Fatal(err)
			}
			waitIPs(s.t, s.ns, "a", s.v4(4))
		}},
		{"an invalid pool is reported on the pool and disturbs nobody", func(s *scn) {
			s.pool("p", nil, s.v4net())
			s.svc("a")
			waitIPs(s.t, s.ns, "a", s.v4(0))
			// Created within the same second as p, perhaps: ties between
			// creation times go by name, and "q-…" sorts after "p".
			bad := s.pool("q-overlap", nil, s.v4(4)+"-"+s.v4(6))
			waitPoolValid(s.t, bad.Name, metav1.ConditionFalse, "overlaps")
			waitPoolValid(s.t, s.name("p"), metav1.ConditionTrue, "in use")
			s.svc("b")
			waitIPs(s.t, s.ns, "b", s.v4(1))
			waitCondition(s.t, s.ns, "a", assigner.ReasonAllocated)
			// A Service asking for the invalid pool is told why it is invalid.
			s.svc("c", annotate("ironlb.io/ip-pool", bad.Name))
			waitCondition(s.t, s.ns, "c", assigner.ReasonInvalidPool)
			waitEvent(s.t, s.ns, "c", assigner.ReasonInvalidPool, "overlaps")
		}},
		{"advertisement naming a missing pool gets Valid=False", func(s *scn) {
			adv := &v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: s.name("l2")}, Spec: v1alpha1.L2AdvertisementSpec{IPPools: []string{"missing-" + s.ns}}}
			apply(s.t, adv)
			testutil.Eventually(s.t, "L2Advertisement Valid=False", func() (bool, string) {
				if err := s.c.Get(context.Background(), client.ObjectKeyFromObject(adv), adv); err != nil {
					return false, err.Error()
				}
				c := meta.FindStatusCondition(adv.Status.Conditions, assigner.ConditionValid)
				return c != nil && c.Status == metav1.ConditionFalse, fmt.Sprintf("%+v", c)
			})
		}},
	}
	if len(scenarios) > 32 {
		t.Fatal("more scenarios than /29 blocks in 203.0.113.0/24")
	}
	for i, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			sc.run(&scn{t: t, ns: namespace(t, nil), n: i, c: testenv.Get(t).Client})
		})
	}
}

func waitPoolCounts(t testing.TB, pool string, total, assigned int64) {
	t.Helper()
	testutil.Eventually(t, fmt.Sprintf("IPPool %s to count %d/%d", pool, assigned, total), func() (bool, string) {
		var p v1alpha1.IPPool
		if err := testenv.Get(t).Client.Get(context.Background(), client.ObjectKey{Name: pool}, &p); err != nil {
			return false, err.Error()
		}
		c := p.Status.IPv4
		return c != nil && c.Total == total && c.Assigned == assigned && c.Available == total-assigned, fmt.Sprintf("%+v", c)
	})
}

func waitPoolValid(t testing.TB, pool string, status metav1.ConditionStatus, contains string) {
	t.Helper()
	testutil.Eventually(t, fmt.Sprintf("IPPool %s Valid=%s", pool, status), func() (bool, string) {
		var p v1alpha1.IPPool
		if err := testenv.Get(t).Client.Get(context.Background(), client.ObjectKey{Name: pool}, &p); err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(p.Status.Conditions, assigner.ConditionValid)
		return c != nil && c.Status == status && strings.Contains(c.Message, contains), fmt.Sprintf("%+v", c)
	})
}
