package assigner

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/ironlb/ironlb/internal/allocator"
	"github.com/ironlb/ironlb/internal/kube"
	"github.com/ironlb/ironlb/internal/sourceranges"
)

// Every annotation the controller reads survives the cache transforms.
func TestLeanKeepsReadAnnotations(t *testing.T) {
	for _, a := range slices.Concat(annotationIPs, annotationPool, annotationSharing, []string{sourceranges.Annotation}) {
		if !kube.ReadAnnotation(a) {
			t.Errorf("the caches drop annotation %s, which the controller reads", a)
		}
	}
}

// The cache transforms (kube.CacheOptions) keep everything the controller
// reads: each of its readers gives the same from a transformed object as
// from the object the API server sent.
func TestLeanObjectsReadAlike(t *testing.T) {
	opts := cmp.Options{cmpopts.EquateComparable(netip.Addr{}), cmpopts.EquateEmpty()}
	class := Class{Name: "ironlb.io/lb"}
	nsLabels := map[string]string{"team": "a"}
	for _, svc := range controllerServices() {
		lean := kube.LeanService(svc.DeepCopy())
		if class.Handles(lean) != class.Handles(svc) {
			t.Errorf("%s: Handles differs from the cache", svc.Name)
		}
		for _, k := range []string{ConditionIPAllocated, ConditionSourceRangesValid} {
			if diff := cmp.Diff(meta.FindStatusCondition(svc.Status.Conditions, k), meta.FindStatusCondition(lean.Status.Conditions, k)); diff != "" {
				t.Errorf("%s: condition %s (-API server +cache):\n%s", svc.Name, k, diff)
			}
		}
		if diff := cmp.Diff(svc.Status.LoadBalancer, lean.Status.LoadBalancer); diff != "" {
			t.Errorf("%s: status.loadBalancer (-API server +cache):\n%s", svc.Name, diff)
		}
		if svc.Spec.Type != lean.Spec.Type || svc.Generation != lean.Generation || svc.ResourceVersion != lean.ResourceVersion ||
			svc.UID != lean.UID || !svc.CreationTimestamp.Equal(&lean.CreationTimestamp) {
			t.Errorf("%s: type, generation, resourceVersion, uid or creation time differ from the cache", svc.Name)
		}
		if !class.Handles(svc) {
			continue // the rest is read of the Services the controller handles
		}
		wantReq, wantErr := requestFor(svc, nsLabels)
		gotReq, gotErr := requestFor(lean, nsLabels)
		if diff := cmp.Diff(wantReq, gotReq, opts); diff != "" {
			t.Errorf("%s: requestFor (-API server +cache):\n%s", svc.Name, diff)
		}
		if diff := cmp.Diff(wantErr, gotErr); diff != "" {
			t.Errorf("%s: requestFor's error (-API server +cache):\n%s", svc.Name, diff)
		}
		if diff := cmp.Diff(sourceRangesCondition(svc), sourceRangesCondition(lean)); diff != "" {
			t.Errorf("%s: sourceRangesCondition (-API server +cache):\n%s", svc.Name, diff)
		}
		res := allocator.Result{IPs: []netip.Addr{netip.MustParseAddr("203.0.113.7")}}
		if diff := cmp.Diff(desiredStatus(svc, res, func(netip.Addr) string { return "p" }), desiredStatus(lean, res, func(netip.Addr) string { return "p" }), cmp.AllowUnexported(desired{})); diff != "" {
			t.Errorf("%s: desiredStatus (-API server +cache):\n%s", svc.Name, diff)
		}
	}

	nodes := []corev1.Node{{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", Annotations: map[string]string{"x": "y"}},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "198.51.100.1"},
			{Type: corev1.NodeExternalIP, Address: "2001:db8::1"}, {Type: corev1.NodeHostName, Address: "n1"}}},
	}}
	var lean []corev1.Node
	for i := range nodes {
		lean = append(lean, *kube.LeanNode(nodes[i].DeepCopy()))
	}
	want, got := forbiddenRanges(nodes, nil, nil), forbiddenRanges(lean, nil, nil)
	if len(want) == 0 || !cmp.Equal(want, got, cmp.AllowUnexported(forbidden{}), opts) {
		t.Errorf("forbiddenRanges: %v from the API server, %v from the cache", want, got)
	}
}

func controllerServices() []*corev1.Service {
	om := func(name string, ann map[string]string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Namespace: "ns", Name: name, UID: "u", ResourceVersion: "9", Generation: 4,
			CreationTimestamp: metav1.Unix(1700000000, 0), Labels: map[string]string{"app": name, "tier": "front"}, Annotations: ann,
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}
	}
	spec := func(mut func(*corev1.ServiceSpec)) corev1.ServiceSpec {
		s := corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeLoadBalancer,
			Ports:                 []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}, {Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53}},
			Selector:              map[string]string{"app": "web"},
			IPFamilies:            []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol},
			IPFamilyPolicy:        ptr.To(corev1.IPFamilyPolicyPreferDualStack),
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
		}
		mut(&s)
		return s
	}
	status := corev1.ServiceStatus{
		LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "203.0.113.7"}, {IP: "2001:db8::7"}}},
		Conditions: []metav1.Condition{{Type: ConditionIPAllocated, Status: metav1.ConditionFalse, Reason: "PoolExhausted", Message: "m", ObservedGeneration: 3},
			{Type: ConditionSourceRangesValid, Status: metav1.ConditionTrue, Reason: ReasonSourceRangesApplied}},
	}
	none := func(*corev1.ServiceSpec) {}
	return []*corev1.Service{
		{ObjectMeta: om("ironlb", map[string]string{"ironlb.io/loadBalancerIPs": "203.0.113.7,2001:db8::7", "ironlb.io/ip-pool": "blue",
			"ironlb.io/allow-shared-ip": "k", corev1.LastAppliedConfigAnnotation: "{}"}), Spec: spec(func(s *corev1.ServiceSpec) {
			s.LoadBalancerSourceRanges = []string{"203.0.113.0/24", "2001:db8::/64"}
		}), Status: status},
		{ObjectMeta: om("metallb", map[string]string{"metallb.io/loadBalancerIPs": "203.0.113.8", "metallb.io/address-pool": "blue",
			"metallb.io/allow-shared-ip": "k", corev1.AnnotationLoadBalancerSourceRangesKey: "203.0.113.0/25"}), Spec: spec(none), Status: status},
		{ObjectMeta: om("universe", map[string]string{"metallb.universe.tf/loadBalancerIPs": "203.0.113.9", "metallb.universe.tf/address-pool": "blue",
			"metallb.universe.tf/allow-shared-ip": "k"}), Spec: spec(none), Status: status},
		{ObjectMeta: om("disagree", map[string]string{"ironlb.io/ip-pool": "blue", "metallb.io/address-pool": "red"}), Spec: spec(none), Status: status},
		{ObjectMeta: om("legacy", nil), Spec: spec(func(s *corev1.ServiceSpec) { s.LoadBalancerIP = "203.0.113.10" }), Status: status},
		{ObjectMeta: om("bad-ranges", map[string]string{corev1.AnnotationLoadBalancerSourceRangesKey: "nonsense"}), Spec: spec(none), Status: status},
		{ObjectMeta: om("other-class", nil), Spec: spec(func(s *corev1.ServiceSpec) { s.LoadBalancerClass = ptr.To("other") }), Status: status},
		{ObjectMeta: om("was-lb", map[string]string{"ironlb.io/ip-pool": "blue"}), Spec: spec(func(s *corev1.ServiceSpec) { s.Type = corev1.ServiceTypeClusterIP }), Status: status},
	}
}
