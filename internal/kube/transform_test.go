package kube

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/ironlb/ironlb/config/v1alpha1"
)

var (
	created = metav1.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	managed = []metav1.ManagedFieldsEntry{{Manager: "kubectl-client-side-apply", Operation: metav1.ManagedFieldsOperationUpdate,
		FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{"f:type":{}}}`)}}}
)

// meta is the metadata of a busy object: everything ironlb reads and
// plenty it does not.
func meta(ns, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: name, Namespace: ns, UID: "uid-1", ResourceVersion: "42", Generation: 3,
		CreationTimestamp: created, GenerateName: "gen-",
		Labels: map[string]string{"app": "web", discoveryv1.LabelServiceName: "web"},
		Annotations: map[string]string{
			corev1.LastAppliedConfigAnnotation:           `{"a very long":"copy of the object"}`,
			"ironlb.io/ip-pool":                          "blue",
			"metallb.io/allow-shared-ip":                 "k",
			"metallb.universe.tf/loadBalancerIPs":        "203.0.113.7",
			corev1.AnnotationLoadBalancerSourceRangesKey: "203.0.113.0/24",
			"example.com/other":                          "x",
		},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: "web", UID: "o"}},
		Finalizers:      []string{"example.com/f"},
		ManagedFields:   managed,
	}
}

// readOnly are meta's annotations that ironlb reads.
var readOnly = map[string]string{
	"ironlb.io/ip-pool":                          "blue",
	"metallb.io/allow-shared-ip":                 "k",
	"metallb.universe.tf/loadBalancerIPs":        "203.0.113.7",
	corev1.AnnotationLoadBalancerSourceRangesKey: "203.0.113.0/24",
}

func lbSpec() corev1.ServiceSpec {
	return corev1.ServiceSpec{
		Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: ptr.To("ironlb.io/lb"),
		Ports:     []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, NodePort: 30080}},
		Selector:  map[string]string{"app": "web"},
		ClusterIP: "198.18.0.10", ClusterIPs: []string{"198.18.0.10"},
		IPFamilies:            []corev1.IPFamily{corev1.IPv4Protocol},
		IPFamilyPolicy:        ptr.To(corev1.IPFamilyPolicySingleStack),
		ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
		SessionAffinity:       corev1.ServiceAffinityClientIP,
		SessionAffinityConfig: &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](60)}},
		LoadBalancerIP:        "203.0.113.7", LoadBalancerSourceRanges: []string{"203.0.113.0/25"},
		HealthCheckNodePort: 31000,
	}
}

func status() corev1.ServiceStatus {
	return corev1.ServiceStatus{
		LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "203.0.113.7", IPMode: ptr.To(corev1.LoadBalancerIPModeVIP)}}},
		Conditions:   []metav1.Condition{{Type: "ironlb.io/IPAllocated", Status: metav1.ConditionTrue, Reason: "Allocated", ObservedGeneration: 3}},
	}
}

func TestLeanService(t *testing.T) {
	lbMeta := meta("ns", "web")
	lbMeta.ManagedFields, lbMeta.Annotations = nil, readOnly
	for _, tc := range []struct {
		name    string
		in, out *corev1.Service
	}{{
		name: "a LoadBalancer keeps spec, status, labels and the annotations ironlb reads",
		in:   &corev1.Service{ObjectMeta: meta("ns", "web"), Spec: lbSpec(), Status: status()},
		out:  &corev1.Service{ObjectMeta: lbMeta, Spec: lbSpec(), Status: status()},
	}, {
		name: "a LoadBalancer with no annotation ironlb reads has none",
		in: &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Annotations: map[string]string{"example.com/x": "y"}, ManagedFields: managed},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}},
		out: &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}},
	}, {
		name: "a ClusterIP Service keeps who it is, its type and its status",
		in: func() *corev1.Service {
			spec := lbSpec()
			spec.Type = corev1.ServiceTypeClusterIP
			return &corev1.Service{ObjectMeta: meta("ns", "web"), Spec: spec, Status: status()}
		}(),
		out: &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "uid-1", ResourceVersion: "42", Generation: 3, CreationTimestamp: created},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP}, Status: status()},
	}, {
		name: "a NodePort Service likewise",
		in:   &corev1.Service{ObjectMeta: meta("ns", "np"), Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: lbSpec().Ports}},
		out: &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "np", Namespace: "ns", UID: "uid-1", ResourceVersion: "42", Generation: 3, CreationTimestamp: created},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			checkTransform(t, LeanService, tc.in, tc.out)
		})
	}
}

func TestLeanEndpointSlice(t *testing.T) {
	full := func() *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{
			ObjectMeta:  meta("ns", "web-abcde"),
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To[int32](8080), AppProtocol: ptr.To("http")}},
			Endpoints: []discoveryv1.Endpoint{{
				Addresses:  []string{"203.0.113.20"},
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
				Hostname:   ptr.To("web-0"), NodeName: ptr.To("n1"), Zone: ptr.To("z"),
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: "web-0", UID: "p"},
				Hints:     &discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: "z"}}},
			}, {
				Addresses:  []string{"203.0.113.21"},
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false), Terminating: ptr.To(true)},
			}},
		}
	}
	want := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "web-abcde", Namespace: "ns", UID: "uid-1", ResourceVersion: "42", Generation: 3, CreationTimestamp: created,
			Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To[int32](8080)}},
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{"203.0.113.20"},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
			NodeName:   ptr.To("n1"),
		}, {
			Addresses:  []string{"203.0.113.21"},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false), Terminating: ptr.To(true)},
		}},
	}
	checkTransform(t, LeanEndpointSlice, full(), want)

	orphan := full()
	delete(orphan.Labels, discoveryv1.LabelServiceName)
	orphan.Endpoints, orphan.Ports = nil, nil
	want.Labels, want.Endpoints, want.Ports = nil, nil, nil
	checkTransform(t, LeanEndpointSlice, orphan, want)
}

func TestLeanNode(t *testing.T) {
	in := &corev1.Node{
		ObjectMeta: meta("", "n1"),
		Spec: corev1.NodeSpec{PodCIDR: "10.0.0.0/24", Unschedulable: true, ProviderID: "x",
			Taints: []corev1.Taint{{Key: "k", Effect: corev1.TaintEffectNoSchedule}}},
		Status: corev1.NodeStatus{
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "198.51.100.1"}, {Type: corev1.NodeHostName, Address: "n1"}},
			Conditions: []corev1.NodeCondition{
				{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "ok", LastHeartbeatTime: created},
				{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionFalse, Reason: "RouteCreated"},
			},
			Images:   []corev1.ContainerImage{{Names: []string{"registry.example/very/long/image@sha256:0123"}, SizeBytes: 1}},
			NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.37.1"},
			Capacity: corev1.ResourceList{},
		},
	}
	want := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "uid-1", ResourceVersion: "42", Generation: 3, CreationTimestamp: created,
			Labels: map[string]string{"app": "web", discoveryv1.LabelServiceName: "web"}, Annotations: readOnly},
		Status: corev1.NodeStatus{
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "198.51.100.1"}, {Type: corev1.NodeHostName, Address: "n1"}},
			Conditions: []corev1.NodeCondition{
				{Type: corev1.NodeReady, Status: corev1.ConditionTrue},
				{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionFalse},
			},
		},
	}
	checkTransform(t, LeanNode, in, want)
}

// checkTransform checks that f turns in into want, leaves in as it was,
// and gives the same again when applied to its own result; and that the
// cache's transform for the kind does the same.
func checkTransform[T any](t *testing.T, f func(*T) *T, in, want *T) {
	t.Helper()
	before := deepCopy(in)
	got := f(in)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("transform (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(before, in); diff != "" {
		t.Errorf("transform changed its argument (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(got, f(deepCopy(got))); diff != "" {
		t.Errorf("transform applied twice differs (-once +twice):\n%s", diff)
	}
	var cached any
	for obj, by := range CacheOptions().ByObject {
		if _, ok := any(obj).(*T); ok {
			var err error
			if cached, err = by.Transform(deepCopy(in)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if diff := cmp.Diff(any(want), cached); diff != "" {
		t.Errorf("CacheOptions' transform (-want +got):\n%s", diff)
	}
}

func deepCopy[T any](in *T) *T {
	var out any = any(in).(runtime.Object).DeepCopyObject()
	return out.(*T)
}

func TestReadAnnotation(t *testing.T) {
	for key, want := range map[string]bool{
		"ironlb.io/loadBalancerIPs":                    true,
		"ironlb.io/ip-pool":                            true,
		"ironlb.io/allow-shared-ip":                    true,
		"metallb.io/loadBalancerIPs":                   true,
		"metallb.io/address-pool":                      true,
		"metallb.universe.tf/allow-shared-ip":          true,
		corev1.AnnotationLoadBalancerSourceRangesKey:   true,
		corev1.LastAppliedConfigAnnotation:             false,
		"service.beta.kubernetes.io/aws-load-balancer": false,
		"example.ironlb.io/x":                          false,
		"ironlb.io":                                    false,
		"":                                             false,
	} {
		if got := ReadAnnotation(key); got != want {
			t.Errorf("ReadAnnotation(%q) = %v, want %v", key, got, want)
		}
	}
}

// Other kinds, and tombstones, only lose their managedFields.
func TestDefaultTransform(t *testing.T) {
	pool := &v1alpha1.IPPool{ObjectMeta: meta("", "blue")}
	got, err := CacheOptions().DefaultTransform(pool)
	if err != nil {
		t.Fatal(err)
	}
	want := &v1alpha1.IPPool{ObjectMeta: meta("", "blue")}
	want.ManagedFields = nil
	if diff := cmp.Diff(any(want), got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	tomb := toolscache.DeletedFinalStateUnknown{Key: "ns/web", Obj: &corev1.Service{}}
	for obj, by := range CacheOptions().ByObject {
		got, err := by.Transform(tomb)
		if err != nil || !cmp.Equal(any(tomb), got) {
			t.Errorf("%T's transform of a tombstone: %v, %v", obj, got, err)
		}
	}
}
