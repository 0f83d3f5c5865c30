package speaker

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ktypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/dataplane"
	"github.com/ironlb/ironlb/internal/kube"
	"github.com/ironlb/ironlb/internal/planner"
)

// The cache transforms (kube.CacheOptions) keep everything the speaker
// reads: each of its readers gives the same from a transformed object as
// from the object the API server sent. Every field a reader reads is set
// in one of these objects.
func TestLeanObjectsReadAlike(t *testing.T) {
	cmpOpts := cmp.Options{cmp.Comparer(func(a, b *dataplane.SourceRanges) bool { return a.Equal(b) }), cmpopts.EquateComparable(netip.Addr{})}
	class := config.Class{Name: "ironlb.io/lb"}
	for _, svc := range leanServices() {
		lean := kube.LeanService(svc.DeepCopy())
		// Events name the object.
		if lean.Name != svc.Name || lean.Namespace != svc.Namespace || lean.UID != svc.UID || lean.ResourceVersion != svc.ResourceVersion {
			t.Errorf("%s: the cached Service lost who it is: %+v", svc.Name, lean.ObjectMeta)
		}
		if got, want := class.Handles(lean), class.Handles(svc); got != want {
			t.Errorf("%s: Handles = %v from the cache, %v from the API server", svc.Name, got, want)
		}
		if !class.Handles(svc) {
			continue // serviceFor reads only the Services the speaker handles
		}
		eps := endpointsOf(leanSlices())[svc.Namespace+"/"+svc.Name]
		want, wantErr := serviceFor(svc, eps)
		got, gotErr := serviceFor(lean, eps)
		if diff := cmp.Diff(want, got, cmpOpts); diff != "" || (gotErr == nil) != (wantErr == nil) {
			t.Errorf("%s: serviceFor (-API server +cache):\n%s%v %v", svc.Name, diff, wantErr, gotErr)
		}
	}

	slices := leanSlices()
	var lean []discoveryv1.EndpointSlice
	for i := range slices {
		lean = append(lean, *kube.LeanEndpointSlice(slices[i].DeepCopy()))
	}
	if diff := cmp.Diff(endpointsOf(slices), endpointsOf(lean), cmpOpts); diff != "" {
		t.Errorf("endpointsOf (-API server +cache):\n%s", diff)
	}

	for _, n := range leanNodes() {
		l := kube.LeanNode(n.DeepCopy())
		if diff := cmp.Diff(nodeFor(n), nodeFor(l)); diff != "" {
			t.Errorf("%s: nodeFor (-API server +cache):\n%s", n.Name, diff)
		}
		if diff := cmp.Diff(internalIPs(n), internalIPs(l), cmpOpts); diff != "" {
			t.Errorf("%s: internalIPs (-API server +cache):\n%s", n.Name, diff)
		}
		if internalIPv4(n) != internalIPv4(l) || nodeReady(n) != nodeReady(l) || n.UID != l.UID || n.Name != l.Name {
			t.Errorf("%s: internalIPv4, nodeReady, uid or name differ from the cache", n.Name)
		}
		if nodeChanged(n, l) || readyChanged(n, l) {
			t.Errorf("%s: the cached Node reads as a change of the Node", n.Name)
		}
	}
}

func leanServices() []*corev1.Service {
	om := func(name string, ann map[string]string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Namespace: "ns", Name: name, UID: ktypes.UID("u-" + name), ResourceVersion: "7", Generation: 2, Annotations: ann,
			Labels: map[string]string{"app": name}, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}
	}
	spec := func(mut func(*corev1.ServiceSpec)) corev1.ServiceSpec {
		s := corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeLoadBalancer,
			Ports:                 []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, NodePort: 30080}, {Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53, NodePort: 30053}},
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
			SessionAffinity:       corev1.ServiceAffinityClientIP,
			SessionAffinityConfig: &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](99)}},
		}
		mut(&s)
		return s
	}
	st := corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "203.0.113.7"}, {IP: "2001:db8::7"}}}}
	return []*corev1.Service{
		{ObjectMeta: om("web", nil), Spec: spec(func(s *corev1.ServiceSpec) { s.LoadBalancerSourceRanges = []string{"203.0.113.0/25", "2001:db8::/64"} }), Status: st},
		{ObjectMeta: om("annotated", map[string]string{corev1.AnnotationLoadBalancerSourceRangesKey: "203.0.113.128/25", corev1.LastAppliedConfigAnnotation: "{}"}),
			Spec: spec(func(*corev1.ServiceSpec) {}), Status: st},
		{ObjectMeta: om("bad-ranges", map[string]string{corev1.AnnotationLoadBalancerSourceRangesKey: "nonsense"}), Spec: spec(func(*corev1.ServiceSpec) {}), Status: st},
		{ObjectMeta: om("classed", nil), Spec: spec(func(s *corev1.ServiceSpec) { s.LoadBalancerClass = ptr.To("other") }), Status: st},
		{ObjectMeta: om("cluster", nil), Spec: spec(func(s *corev1.ServiceSpec) { s.Type = corev1.ServiceTypeClusterIP }), Status: st},
	}
}

func leanSlices() []discoveryv1.EndpointSlice {
	es := func(name, svc string, family discoveryv1.AddressType, addrs ...string) discoveryv1.EndpointSlice {
		s := discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: "ns", Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svc, discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io"}},
			AddressType: family,
			Ports: []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To[int32](8080), AppProtocol: ptr.To("http")},
				{Name: ptr.To("dns"), Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To[int32](5353)}},
		}
		for i, a := range addrs {
			s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
				Addresses:  []string{a},
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(i%3 == 0), Serving: ptr.To(i%3 != 2), Terminating: ptr.To(i%3 == 2)},
				NodeName:   ptr.To([]string{"n1", "n2"}[i%2]), Zone: ptr.To("z"), Hostname: ptr.To("h"),
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "p"},
			})
		}
		return s
	}
	return []discoveryv1.EndpointSlice{
		es("web-4", "web", discoveryv1.AddressTypeIPv4, "203.0.113.20", "203.0.113.21", "203.0.113.22", "203.0.113.23"),
		es("web-6", "web", discoveryv1.AddressTypeIPv6, "2001:db8::20", "2001:db8::21", "2001:db8::22"),
		es("annotated-4", "annotated", discoveryv1.AddressTypeIPv4, "203.0.113.30"),
		{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "unknown-conditions", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
			AddressType: discoveryv1.AddressTypeIPv4, Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"203.0.113.40"}}}},
		es("fqdn", "web", discoveryv1.AddressTypeFQDN, "web.example"),
	}
}

func leanNodes() []*corev1.Node {
	n := func(name string, ready, netDown corev1.ConditionStatus, addrs ...corev1.NodeAddress) *corev1.Node {
		return &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, UID: ktypes.UID("u-" + name), Labels: map[string]string{planner.ExcludeLabel: "", "zone": "a"},
				Annotations: map[string]string{"node.alpha.kubernetes.io/ttl": "0"}},
			Spec: corev1.NodeSpec{Unschedulable: true, Taints: []corev1.Taint{{Key: "k", Effect: corev1.TaintEffectNoExecute}}},
			Status: corev1.NodeStatus{Addresses: addrs, Conditions: []corev1.NodeCondition{
				{Type: corev1.NodeReady, Status: ready, Reason: "r"}, {Type: corev1.NodeNetworkUnavailable, Status: netDown, Reason: "r"},
			}},
		}
	}
	return []*corev1.Node{
		n("n1", corev1.ConditionTrue, corev1.ConditionFalse, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "2001:db8::1"},
			corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "198.51.100.1"}, corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "198.51.100.9"}),
		n("n2", corev1.ConditionUnknown, corev1.ConditionTrue, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "198.51.100.2"}),
		n("n3", corev1.ConditionFalse, corev1.ConditionFalse),
	}
}
