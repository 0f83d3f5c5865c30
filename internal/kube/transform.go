package kube

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/internal/sourceranges"
)

// The informer caches hold every Service, EndpointSlice and Node of the
// cluster, and what they hold is most of a speaker's memory at scale.
// The transforms below run as each object enters the cache and keep only
// what ironlb reads of it:
//
//   - every object: no managedFields (nothing in ironlb reads them), and
//     for the three kinds below only the annotations ironlb reads
//     (ReadAnnotation); kubectl's last-applied-configuration, a copy of
//     the whole object, goes;
//   - a Service of type LoadBalancer: all of its spec, status, labels and
//     metadata, which the controller's requests, sharing rules and status
//     writes and the speaker's plan read;
//   - any other Service: who it is (name, namespace, uid, resourceVersion,
//     generation, timestamps), spec.type, which tells that ironlb does not
//     serve it, and its status, from which the controller removes what it
//     wrote when a Service stops being a LoadBalancer;
//   - an EndpointSlice: its Service's name label, addressType, ports
//     (name, protocol, port) and each endpoint's addresses, conditions
//     and nodeName: what forwarding and externalTrafficPolicy Local read;
//   - a Node: its labels (node selectors, the exclusion label), its
//     addresses (the router ID, memberlist's address, the controller's
//     forbidden addresses) and its conditions' types and statuses
//     (NetworkUnavailable for eligibility, Ready for fencing). Spec
//     (taints, unschedulable: neither decides anything in ironlb), images,
//     capacity and node info go.
//
// Each transform is pure, leaves its argument as it was (the result may
// share the parts it keeps) and gives the same result when applied again.
// Whatever reads one of these kinds from a cache must read only what is
// kept; the tests of internal/speaker and internal/assigner check each
// consumer against the untransformed object.

// CacheOptions are the cache options of both binaries: managedFields
// dropped everywhere, Services, EndpointSlices and Nodes cut down.
func CacheOptions() cache.Options {
	return cache.Options{
		DefaultTransform: StripManagedFields,
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Service{}:            {Transform: transform(LeanService)},
			&discoveryv1.EndpointSlice{}: {Transform: transform(LeanEndpointSlice)},
			&corev1.Node{}:               {Transform: transform(LeanNode)},
		},
	}
}

// transform adapts a typed transform to the informer's; anything else
// (a tombstone, say) only loses its managedFields.
func transform[T any](f func(*T) *T) toolscache.TransformFunc {
	return func(in any) (any, error) {
		if o, ok := in.(*T); ok && o != nil {
			return f(o), nil
		}
		return StripManagedFields(in)
	}
}

// StripManagedFields drops an object's managedFields, in place as the
// informer allows (see cache.TransformStripManagedFields).
func StripManagedFields(in any) (any, error) {
	if o, ok := in.(metav1.Object); ok && o.GetManagedFields() != nil {
		o.SetManagedFields(nil)
	}
	return in, nil
}

// annotationPrefixes are the annotation domains ironlb reads: its own and
// MetalLB's two, honoured as aliases.
var annotationPrefixes = []string{"ironlb.io/", "metallb.io/", "metallb.universe.tf/"}

// ReadAnnotation tells whether ironlb reads an annotation, and so whether
// the caches keep it: those of annotationPrefixes, and the older way to
// give a Service's source ranges.
func ReadAnnotation(key string) bool {
	if key == sourceranges.Annotation {
		return true
	}
	for _, p := range annotationPrefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// readAnnotations keeps the annotations ironlb reads; nil when none.
func readAnnotations(in map[string]string) map[string]string {
	var out map[string]string
	for k, v := range in {
		if !ReadAnnotation(k) {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = v
	}
	return out
}

// identity is who an object is: enough to key it, to record an event on
// it and to patch it with an optimistic lock.
func identity(m *metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
		Generation: m.Generation, CreationTimestamp: m.CreationTimestamp, DeletionTimestamp: m.DeletionTimestamp,
	}
}

// LeanService keeps what ironlb reads of a Service (see above).
func LeanService(in *corev1.Service) *corev1.Service {
	out := &corev1.Service{TypeMeta: in.TypeMeta, Status: in.Status}
	if in.Spec.Type != corev1.ServiceTypeLoadBalancer {
		out.ObjectMeta = identity(&in.ObjectMeta)
		out.Spec.Type = in.Spec.Type
		return out
	}
	out.ObjectMeta = in.ObjectMeta
	out.ManagedFields = nil
	out.Annotations = readAnnotations(in.Annotations)
	out.Spec = in.Spec
	return out
}

// LeanEndpointSlice keeps what ironlb reads of an EndpointSlice (see
// above).
func LeanEndpointSlice(in *discoveryv1.EndpointSlice) *discoveryv1.EndpointSlice {
	out := &discoveryv1.EndpointSlice{TypeMeta: in.TypeMeta, ObjectMeta: identity(&in.ObjectMeta), AddressType: in.AddressType}
	if name, ok := in.Labels[discoveryv1.LabelServiceName]; ok {
		out.Labels = map[string]string{discoveryv1.LabelServiceName: name}
	}
	if in.Ports != nil {
		out.Ports = make([]discoveryv1.EndpointPort, len(in.Ports))
		for i, p := range in.Ports {
			out.Ports[i] = discoveryv1.EndpointPort{Name: p.Name, Protocol: p.Protocol, Port: p.Port}
		}
	}
	if in.Endpoints != nil {
		out.Endpoints = make([]discoveryv1.Endpoint, len(in.Endpoints))
		for i, e := range in.Endpoints {
			out.Endpoints[i] = discoveryv1.Endpoint{Addresses: e.Addresses, Conditions: e.Conditions, NodeName: e.NodeName}
		}
	}
	return out
}

// LeanNode keeps what ironlb reads of a Node (see above).
func LeanNode(in *corev1.Node) *corev1.Node {
	out := &corev1.Node{TypeMeta: in.TypeMeta, ObjectMeta: identity(&in.ObjectMeta)}
	out.Labels = in.Labels
	out.Annotations = readAnnotations(in.Annotations)
	out.Status.Addresses = in.Status.Addresses
	if in.Status.Conditions != nil {
		out.Status.Conditions = make([]corev1.NodeCondition, len(in.Status.Conditions))
		for i, c := range in.Status.Conditions {
			out.Status.Conditions[i] = corev1.NodeCondition{Type: c.Type, Status: c.Status}
		}
	}
	return out
}
