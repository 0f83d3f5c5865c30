package speaker

import (
	"net/netip"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/internal/planner"
)

func nodeFor(n *corev1.Node) planner.Node {
	pn := planner.Node{Name: n.Name, Labels: labels.Set(n.Labels)}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeNetworkUnavailable && c.Status == corev1.ConditionTrue {
			pn.NetworkUnavailable = true
		}
	}
	return pn
}

// internalIPv4 is the Node's first IPv4 InternalIP, or the zero Addr.
func internalIPv4(n *corev1.Node) netip.Addr {
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil && ip.Unmap().Is4() {
			return ip.Unmap()
		}
	}
	return netip.Addr{}
}

// serviceFor reads the addresses in a Service's status; ready holds the
// nodes with a ready endpoint of each Service, by namespace/name.
func serviceFor(svc *corev1.Service, ready map[string][]string) planner.Service {
	key := svc.Namespace + "/" + svc.Name
	ps := planner.Service{Key: key, Local: svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal}
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(in.IP); err == nil && !slices.Contains(ps.Addrs, a.Unmap()) {
			ps.Addrs = append(ps.Addrs, a.Unmap())
		}
	}
	ps.ReadyNodes = ready[key]
	_, ps.Ready = ready[key]
	return ps
}

// readyNodes maps each Service (namespace/name) with a ready endpoint to
// the nodes holding one (an endpoint without a node counts for the
// Service, not for a node). An endpoint whose readiness is unknown counts
// as ready, as the EndpointSlice API says.
func readyNodes(list []discoveryv1.EndpointSlice) map[string][]string {
	out := map[string][]string{}
	for i := range list {
		es := &list[i]
		name := es.Labels[discoveryv1.LabelServiceName]
		if name == "" {
			continue
		}
		key := es.Namespace + "/" + name
		for _, ep := range es.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			if _, ok := out[key]; !ok {
				out[key] = nil
			}
			if ep.NodeName != nil && !slices.Contains(out[key], *ep.NodeName) {
				out[key] = append(out[key], *ep.NodeName)
			}
		}
	}
	return out
}

func metaTime(t time.Time) metav1.Time { return metav1.NewTime(t.Truncate(time.Second)) }
