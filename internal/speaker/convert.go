package speaker

import (
	"net/netip"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/internal/dataplane"
	"github.com/ironlb/ironlb/internal/planner"
	"github.com/ironlb/ironlb/internal/sourceranges"
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
	for _, a := range internalIPs(n) {
		if a.Is4() {
			return a
		}
	}
	return netip.Addr{}
}

// internalIPs are the Node's InternalIP addresses, in its order.
func internalIPs(n *corev1.Node) []netip.Addr {
	var out []netip.Addr
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil {
			out = append(out, ip.Unmap())
		}
	}
	return out
}

// serviceFor reads what the planner needs of a Service: the addresses in
// its status, its ports, affinity and source ranges, and its endpoints. badRanges says why the source
// ranges cannot be read; the Service then accepts no client at all
// (fail closed), and the caller logs it.
func serviceFor(svc *corev1.Service, endpoints []planner.Endpoint) (ps planner.Service, badRanges error) {
	key := svc.Namespace + "/" + svc.Name
	ps = planner.Service{Key: key, Local: svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal, Labels: labels.Set(svc.Labels)}
	ps.SourceRanges, badRanges = sourceRangesOf(svc)
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(in.IP); err == nil && !slices.Contains(ps.Addrs, a.Unmap()) {
			ps.Addrs = append(ps.Addrs, a.Unmap())
		}
	}
	for _, p := range svc.Spec.Ports {
		ps.Ports = append(ps.Ports, planner.Port{Name: p.Name, Protocol: protocol(p.Protocol), Port: uint16(p.Port), NodePort: uint16(p.NodePort)})
	}
	if svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
		ps.Affinity = planner.DefaultAffinity
		if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			ps.Affinity = time.Duration(*c.ClientIP.TimeoutSeconds) * time.Second
		}
	}
	ps.Endpoints = endpoints
	for _, ep := range ps.Endpoints {
		if !ep.Ready {
			continue
		}
		ps.Ready = true
		if ep.Node != "" && !slices.Contains(ps.ReadyNodes, ep.Node) {
			ps.ReadyNodes = append(ps.ReadyNodes, ep.Node)
		}
	}
	return ps, badRanges
}

// sourceRangesOf is what the dataplane enforces for a Service's source
// ranges: nil when it names none; no prefix at all, so no client, when
// they cannot be read.
func sourceRangesOf(svc *corev1.Service) (*dataplane.SourceRanges, error) {
	r, err := sourceranges.Of(svc)
	if err != nil {
		return dataplane.AllowOnly(), err
	}
	if !r.Restricted {
		return nil, nil
	}
	return dataplane.AllowOnly(r.Prefixes...), nil
}

// protocol is a Kubernetes protocol as nft writes it; TCP when unset, as
// the API defaults it.
func protocol(p corev1.Protocol) dataplane.Protocol {
	switch p {
	case corev1.ProtocolUDP:
		return dataplane.UDP
	case corev1.ProtocolSCTP:
		return dataplane.SCTP
	}
	return dataplane.TCP
}

// endpointsOf groups the endpoints of the EndpointSlices by Service
// (namespace/name), with the conditions' defaults applied as the
// EndpointSlice API defines them: unknown ready counts as ready, unknown
// serving as ready, unknown terminating as not terminating. Only an
// endpoint's first address counts, as for kube-proxy.
func endpointsOf(list []discoveryv1.EndpointSlice) map[string][]planner.Endpoint {
	out := map[string][]planner.Endpoint{}
	for i := range list {
		es := &list[i]
		name := es.Labels[discoveryv1.LabelServiceName]
		if name == "" || (es.AddressType != discoveryv1.AddressTypeIPv4 && es.AddressType != discoveryv1.AddressTypeIPv6) {
			continue
		}
		key := es.Namespace + "/" + name
		ports := make([]planner.Port, 0, len(es.Ports))
		for _, p := range es.Ports {
			if p.Port == nil {
				continue
			}
			pp := planner.Port{Port: uint16(*p.Port), Protocol: dataplane.TCP}
			if p.Name != nil {
				pp.Name = *p.Name
			}
			if p.Protocol != nil {
				pp.Protocol = protocol(*p.Protocol)
			}
			ports = append(ports, pp)
		}
		for _, ep := range es.Endpoints {
			if len(ep.Addresses) == 0 {
				continue
			}
			a, err := netip.ParseAddr(ep.Addresses[0])
			if err != nil {
				continue
			}
			c := ep.Conditions
			pe := planner.Endpoint{Addr: a.Unmap(), Ready: c.Ready == nil || *c.Ready, Ports: ports}
			pe.Serving = pe.Ready
			if c.Serving != nil {
				pe.Serving = *c.Serving
			}
			pe.Terminating = c.Terminating != nil && *c.Terminating
			if ep.NodeName != nil {
				pe.Node = *ep.NodeName
			}
			out[key] = append(out[key], pe)
		}
	}
	return out
}

func metaTime(t time.Time) metav1.Time { return metav1.NewTime(t.Truncate(time.Second)) }
