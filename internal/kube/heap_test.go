package kube

import (
	"encoding/json"
	"fmt"
	"runtime"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/scheme"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// BenchmarkCacheHeap measures the heap an informer store of 10,000
// LoadBalancer Services and their EndpointSlices holds, decoded from the
// JSON an API server sends (with the managedFields and annotations that
// kubectl apply, the EndpointSlice controller and ironlb's status writes
// leave) and stored as the informer stores them: untransformed, with
// managedFields stripped only (the speaker before the lean transforms),
// and with CacheOptions' transforms. Run it once per case:
//
//	go test -run '^$' -bench CacheHeap -benchtime 1x ./internal/kube/
func BenchmarkCacheHeap(b *testing.B) {
	const services = 10000
	variants := []struct {
		name          string
		svc, slice    toolscache.TransformFunc
		managedFields bool
	}{
		{"none", nil, nil, true},
		{"strip-managedFields", StripManagedFields, StripManagedFields, false},
		{"lean", transform(LeanService), transform(LeanEndpointSlice), false},
	}
	for _, endpoints := range []int{1, 10} {
		for _, v := range variants {
			b.Run(fmt.Sprintf("endpoints=%d/%s", endpoints, v.name), func(b *testing.B) {
				var svcHeap, sliceHeap uint64
				for b.Loop() {
					svcHeap = storeHeap(b, services, v.svc, func(i int) []byte { return serviceJSON(b, i) })
					sliceHeap = storeHeap(b, services, v.slice, func(i int) []byte { return sliceJSON(b, i, endpoints) })
				}
				b.ReportMetric(float64(svcHeap)/(1<<20), "svc-MiB")
				b.ReportMetric(float64(sliceHeap)/(1<<20), "slice-MiB")
				b.ReportMetric(float64(svcHeap+sliceHeap)/(1<<20), "MiB")
			})
		}
	}
}

// storeHeap decodes n objects into an informer store through transform
// (none when nil) and returns how much the heap grew while it holds them.
func storeHeap(b *testing.B, n int, transform toolscache.TransformFunc, encoded func(int) []byte) uint64 {
	b.Helper()
	decoder := serializer.NewCodecFactory(scheme.Scheme).UniversalDeserializer()
	store := toolscache.NewStore(toolscache.MetaNamespaceKeyFunc)
	before := heap()
	for i := range n {
		obj, _, err := decoder.Decode(encoded(i), nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		var kept any = obj
		if transform != nil {
			if kept, err = transform(obj); err != nil {
				b.Fatal(err)
			}
		}
		if err := store.Add(kept); err != nil {
			b.Fatal(err)
		}
	}
	after := heap()
	runtime.KeepAlive(store)
	return after - before
}

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func mustJSON(b *testing.B, v any) []byte {
	out, err := json.Marshal(v)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// fieldsV1 is a managedFields entry of manager for fields.
func fieldsV1(manager string, op metav1.ManagedFieldsOperationType, sub, fields string) metav1.ManagedFieldsEntry {
	return metav1.ManagedFieldsEntry{Manager: manager, Operation: op, APIVersion: "v1", Time: ptr.To(metav1.Unix(1767225600, 0)),
		FieldsType: "FieldsV1", Subresource: sub, FieldsV1: &metav1.FieldsV1{Raw: []byte(fields)}}
}

// serviceJSON is the i-th Service as the API server sends it: applied
// with kubectl, its addresses written by ironlb.
func serviceJSON(b *testing.B, i int) []byte {
	name := fmt.Sprintf("svc-%05d", i)
	ip := fmt.Sprintf("2001:db8:1::%x", i+1)
	spec := corev1.ServiceSpec{
		Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": name},
		Ports:     []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intOrString(8080)}},
		ClusterIP: fmt.Sprintf("fd00:198:18::%x", i+1), ClusterIPs: []string{fmt.Sprintf("fd00:198:18::%x", i+1)},
		IPFamilies: []corev1.IPFamily{corev1.IPv6Protocol}, IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicySingleStack),
		ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster, InternalTrafficPolicy: ptr.To(corev1.ServiceInternalTrafficPolicyCluster),
		SessionAffinity: corev1.ServiceAffinityNone, AllocateLoadBalancerNodePorts: ptr.To(false),
	}
	applied := mustJSON(b, map[string]any{"apiVersion": "v1", "kind": "Service",
		"metadata": map[string]any{"name": name, "namespace": "scale", "labels": map[string]string{"app": name, "scale-test": "true"}},
		"spec": map[string]any{"type": "LoadBalancer", "selector": spec.Selector, "allocateLoadBalancerNodePorts": false, "ipFamilies": []string{"IPv6"},
			"ports": []map[string]any{{"name": "http", "port": 80, "targetPort": 8080}}}})
	svc := &corev1.Service{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "scale", UID: types.UID(fmt.Sprintf("6f1c0a3e-0000-4000-8000-%012d", i)),
			ResourceVersion: fmt.Sprint(100000 + i), CreationTimestamp: metav1.Unix(1767225600, 0),
			Labels:      map[string]string{"app": name, "scale-test": "true"},
			Annotations: map[string]string{corev1.LastAppliedConfigAnnotation: string(applied) + "\n"},
			ManagedFields: []metav1.ManagedFieldsEntry{
				fieldsV1("kubectl-client-side-apply", metav1.ManagedFieldsOperationUpdate, "",
					`{"f:metadata":{"f:annotations":{".":{},"f:kubectl.kubernetes.io/last-applied-configuration":{}},"f:labels":{".":{},"f:app":{},"f:scale-test":{}}},"f:spec":{"f:allocateLoadBalancerNodePorts":{},"f:externalTrafficPolicy":{},"f:internalTrafficPolicy":{},"f:ipFamilies":{},"f:ipFamilyPolicy":{},"f:ports":{".":{},"k:{\"port\":80,\"protocol\":\"TCP\"}":{".":{},"f:name":{},"f:port":{},"f:protocol":{},"f:targetPort":{}}},"f:selector":{},"f:sessionAffinity":{},"f:type":{}}}`),
				fieldsV1("ironlb-controller", metav1.ManagedFieldsOperationUpdate, "status",
					`{"f:status":{"f:conditions":{".":{},"k:{\"type\":\"ironlb.io/IPAllocated\"}":{".":{},"f:lastTransitionTime":{},"f:message":{},"f:observedGeneration":{},"f:reason":{},"f:status":{},"f:type":{}}},"f:loadBalancer":{"f:ingress":{}}}}`),
			},
		},
		Spec: spec,
		Status: corev1.ServiceStatus{
			LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: ip, IPMode: ptr.To(corev1.LoadBalancerIPModeVIP)}}},
			Conditions: []metav1.Condition{{Type: "ironlb.io/IPAllocated", Status: metav1.ConditionTrue, ObservedGeneration: 1,
				LastTransitionTime: metav1.Unix(1767225601, 0), Reason: "Allocated", Message: ip + ` from IPPool "scale"`}},
		},
	}
	return mustJSON(b, svc)
}

// sliceJSON is the EndpointSlice the EndpointSlice controller keeps for
// the i-th Service, with n endpoints.
func sliceJSON(b *testing.B, i, n int) []byte {
	name := fmt.Sprintf("svc-%05d", i)
	slice := &discoveryv1.EndpointSlice{
		TypeMeta: metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
		ObjectMeta: metav1.ObjectMeta{Name: name + "-x7k2p", GenerateName: name + "-", Namespace: "scale",
			UID: types.UID(fmt.Sprintf("0c9e7d1a-0000-4000-8000-%012d", i)), ResourceVersion: fmt.Sprint(200000 + i), Generation: 1,
			CreationTimestamp: metav1.Unix(1767225600, 0),
			Labels: map[string]string{discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io",
				"app": name, "scale-test": "true", "endpointslice.kubernetes.io/skip-mirror": "true"},
			Annotations: map[string]string{"endpoints.kubernetes.io/last-change-trigger-time": "2026-01-01T00:00:01Z"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: name, UID: types.UID(fmt.Sprintf("6f1c0a3e-0000-4000-8000-%012d", i)),
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}},
			ManagedFields: []metav1.ManagedFieldsEntry{fieldsV1("kube-controller-manager", metav1.ManagedFieldsOperationUpdate, "",
				`{"f:addressType":{},"f:endpoints":{},"f:metadata":{"f:annotations":{".":{},"f:endpoints.kubernetes.io/last-change-trigger-time":{}},"f:generateName":{},"f:labels":{".":{},"f:app":{},"f:endpointslice.kubernetes.io/managed-by":{},"f:kubernetes.io/service-name":{},"f:scale-test":{}},"f:ownerReferences":{".":{},"k:{\"uid\":\"6f1c0a3e-0000-4000-8000-000000000000\"}":{}}},"f:ports":{}}`)},
		},
		AddressType: discoveryv1.AddressTypeIPv6,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To[int32](8080)}},
	}
	for e := range n {
		pod := fmt.Sprintf("%s-%d-5d8f9c7b6-q2w%d", name, e, e)
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("2001:db8:2:%x::%x", i, e+1)},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
			NodeName:   ptr.To(fmt.Sprintf("node%d", e%3+1)), Zone: ptr.To("zone-a"),
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "scale", Name: pod,
				UID: types.UID(fmt.Sprintf("a1b2c3d4-%04d-4000-8000-%012d", e, i))},
		})
	}
	return mustJSON(b, slice)
}

func intOrString(i int32) intstr.IntOrString { return intstr.FromInt32(i) }
