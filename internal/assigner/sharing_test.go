package assigner_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/allocator"
	"github.com/ironlb/ironlb/internal/assigner"
	"github.com/ironlb/ironlb/internal/testenv"
	"github.com/ironlb/ironlb/internal/testutil"
)

// sharing sets a sharing key and the Service's one port.
func sharing(key string, proto corev1.Protocol, port int32) func(*corev1.Service) {
	return func(s *corev1.Service) {
		ipv6Only(s)
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations["ironlb.io/allow-shared-ip"] = key
		s.Spec.Ports = []corev1.ServicePort{{Name: "p", Protocol: proto, Port: port, TargetPort: intstr.FromInt32(port)}}
	}
}

// twoNamespacePool is an IPv6 pool that Services of both namespaces may use.
func twoNamespacePool(name, cidr string, nsA, nsB string, across bool) *v1alpha1.IPPool {
	p := ippool(name, cidr)
	p.Spec.AllocateTo = &v1alpha1.AllocateTo{Namespaces: []string{nsA, nsB}}
	p.Spec.AllowSharingAcrossNamespaces = across
	return p
}

// noEventNames checks that no event in namespace ns mentions any of the
// words (another tenant's namespace, Service or key).
func noEventNames(t *testing.T, ns string, words ...string) {
	t.Helper()
	var list corev1.EventList
	if err := testenv.Get(t).Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range list.Items {
		for _, w := range words {
			if strings.Contains(e.Message, w) {
				t.Errorf("event %s on %s names %q of another tenant: %s", e.Reason, e.InvolvedObject.Name, w, e.Message)
			}
		}
	}
}

// TestSharingScopedToNamespace: against the real API server, a Service
// of another namespace that copies a sharing key gets its own address;
// asking for the other tenant's address by name is refused with a message
// naming nothing of that tenant; Services of one namespace still share;
// and a pool with spec.allowSharingAcrossNamespaces (which the CRD must
// keep) lets two namespaces share.
func TestSharingScopedToNamespace(t *testing.T) {
	start(t, nil)
	nsA, nsB := namespace(t, nil), namespace(t, nil)
	apply(t, twoNamespacePool(nsA+"-scoped", "2001:db8:e009::/120", nsA, nsB, false))
	key := "tenant-a-secret-key"

	create(t, lbService(nsA, "web", sharing(key, corev1.ProtocolTCP, 80)))
	a := ingressIPs(waitCondition(t, nsA, "web", assigner.ReasonAllocated))[0]

	// The intruder copies the name, the key and the selector, with
	// externalTrafficPolicy Local.
	create(t, lbService(nsB, "web", sharing(key, corev1.ProtocolTCP, 443), func(s *corev1.Service) {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		s.Spec.Selector = map[string]string{"app": "web"}
	}))
	b := waitCondition(t, nsB, "web", assigner.ReasonAllocated)
	if got := ingressIPs(b); len(got) != 1 || got[0] == a {
		t.Errorf("the Service of the other namespace shows %v; want one address other than %s", got, a)
	}

	create(t, lbService(nsB, "byname", sharing(key, corev1.ProtocolTCP, 8443), annotate("ironlb.io/loadBalancerIPs", a)))
	svc := waitCondition(t, nsB, "byname", string(allocator.ReasonRequestedIPUnavailable))
	want := a + " is in use by a Service of another namespace; sharing keys (ironlb.io/allow-shared-ip) match only Services of the same namespace unless the address's IPPool sets spec.allowSharingAcrossNamespaces"
	if got := meta.FindStatusCondition(svc.Status.Conditions, assigner.ConditionIPAllocated).Message; got != want {
		t.Errorf("condition message:\n got %s\nwant %s", got, want)
	}
	waitEvent(t, nsB, "byname", string(allocator.ReasonRequestedIPUnavailable), want)
	noEventNames(t, nsB, nsA)

	create(t, lbService(nsA, "dns", sharing(key, corev1.ProtocolUDP, 53)))
	waitIPs(t, nsA, "dns", a)
	waitIPs(t, nsA, "web", a)

	// A pool that allows sharing across namespaces.
	apply(t, twoNamespacePool(nsA+"-across", "2001:db8:e00a::/120", nsA, nsB, true))
	pin := annotate("ironlb.io/ip-pool", nsA+"-across")
	create(t, lbService(nsA, "api", sharing("open", corev1.ProtocolTCP, 80), pin))
	shared := ingressIPs(waitCondition(t, nsA, "api", assigner.ReasonAllocated))[0]
	create(t, lbService(nsB, "api", sharing("open", corev1.ProtocolTCP, 443), pin))
	waitIPs(t, nsB, "api", shared)
}

// TestLegacySharingAfterUpgrade: two Services of different namespaces
// show one address in their status when the controller starts, shared
// under one key as older versions allowed. Both keep it (an address never
// moves because a rule changed), both are told without naming the other,
// and a third namespace cannot join.
func TestLegacySharingAfterUpgrade(t *testing.T) {
	nsA, nsB, nsC := namespace(t, nil), namespace(t, nil), namespace(t, nil)
	// Named after the third namespace: a pool named after A or B would
	// put that tenant's name into the other's message.
	p := twoNamespacePool(nsC+"-legacy", "2001:db8:e00b::/120", nsA, nsB, false)
	p.Spec.AllocateTo.Namespaces = append(p.Spec.AllocateTo.Namespaces, nsC)
	apply(t, p)
	c := testenv.Get(t).Client
	ip := "2001:db8:e00b::7"
	for _, s := range []*corev1.Service{
		lbService(nsA, "web", sharing("k", corev1.ProtocolTCP, 80)),
		lbService(nsB, "dns", sharing("k", corev1.ProtocolUDP, 53)),
	} {
		create(t, s)
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}}
		if err := c.Status().Update(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	start(t, nil)
	for _, s := range []struct{ ns, name, other string }{{nsA, "web", nsB}, {nsB, "dns", nsA}} {
		svc := waitCondition(t, s.ns, s.name, assigner.ReasonSharedAcrossNamespaces)
		if got := ingressIPs(svc); len(got) != 1 || got[0] != ip {
			t.Errorf("%s/%s shows %v, want %s", s.ns, s.name, got, ip)
		}
		msg := meta.FindStatusCondition(svc.Status.Conditions, assigner.ConditionIPAllocated).Message
		if !strings.HasPrefix(msg, ip+" is also used by a Service of another namespace") || strings.Contains(msg, s.other) {
			t.Errorf("%s/%s condition message: %s", s.ns, s.name, msg)
		}
		waitEvent(t, s.ns, s.name, assigner.ReasonSharedAcrossNamespaces, "is also used by a Service of another namespace")
		noEventNames(t, s.ns, s.other)
	}
	create(t, lbService(nsC, "ntp", sharing("k", corev1.ProtocolUDP, 123)))
	if got := ingressIPs(waitCondition(t, nsC, "ntp", assigner.ReasonAllocated)); len(got) != 1 || got[0] == ip {
		t.Errorf("the third namespace shows %v; want its own address", got)
	}
	testutil.Eventually(t, "the first two to keep the address", func() (bool, string) {
		a, b := ingressIPs(getService(t, nsA, "web")), ingressIPs(getService(t, nsB, "dns"))
		return len(a) == 1 && a[0] == ip && len(b) == 1 && b[0] == ip, strings.Join(append(a, b...), " ")
	})
}
