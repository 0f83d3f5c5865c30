package planner

import (
	"cmp"
	"net/netip"
	"slices"
	"time"

	"github.com/ironlb/ironlb/internal/dataplane"
)

// ForwardingMode is where the speaker sends the traffic that arrives for
// a Service's address.
type ForwardingMode string

const (
	// ForwardEndpoints DNATs to the Service's ready endpoints.
	ForwardEndpoints ForwardingMode = "endpoints"
	// ForwardNodePort DNATs to the Service's NodePort on this node.
	ForwardNodePort ForwardingMode = "nodeport"
	// ForwardNone leaves the traffic to another component.
	ForwardNone ForwardingMode = "none"
)

// ForwardingModes are the modes, as the --forwarding-mode flag takes them.
var ForwardingModes = []ForwardingMode{ForwardEndpoints, ForwardNodePort, ForwardNone}

// Port is one port of a Service.
type Port struct {
	Name     string
	Protocol dataplane.Protocol
	Port     uint16
	// NodePort is 0 when the Service has none.
	NodePort uint16
}

// Endpoint is one endpoint of a Service, from its EndpointSlices.
type Endpoint struct {
	Addr netip.Addr
	// Node is where the endpoint runs; empty when the slice does not say.
	Node string
	// Ready, Serving and Terminating are the endpoint's conditions, with
	// the EndpointSlice API's defaults already applied (unknown ready
	// counts as ready, unknown serving as ready, unknown terminating as
	// not).
	Ready, Serving, Terminating bool
	// Ports are the ports of the endpoint's slice.
	Ports []Port
}

// Forwarding plans the frontends Self forwards: every port of every
// address of the Services, for the addresses that belong to a pool.
//
//   - ForwardEndpoints: the backends are the Service's ready endpoints
//     (any node's for externalTrafficPolicy Cluster, masqueraded when on
//     another node; only Self's for Local). When none is ready, endpoints
//     that are serving while terminating are used instead, as kube-proxy
//     does, so that connections drain rather than fail.
//   - ForwardNodePort: the one backend is Self's address of the family at
//     the port's NodePort; none when the port has no NodePort or Self no
//     address of that family.
//   - ForwardNone: nothing.
//
// Every frontend of a Service carries its source ranges, in every mode
// that forwards and whichever way the address is announced: the
// dataplane drops the connections of other clients before DNAT.
//
// A frontend without backends is still listed: its connections are
// rejected. When Services share an address and name the same port and
// protocol (which the controller does not allow), the first by key wins.
// selfAddrs are Self's addresses, for ForwardNodePort.
func Forwarding(in Input, mode ForwardingMode, selfAddrs []netip.Addr) []dataplane.Frontend {
	if mode == ForwardNone || in.Config == nil {
		return nil
	}
	svcs := make([]*Service, 0, len(in.Services))
	for i := range in.Services {
		svcs = append(svcs, &in.Services[i])
	}
	slices.SortFunc(svcs, func(a, b *Service) int { return cmp.Compare(a.Key, b.Key) })
	type feKey struct {
		addr  netip.Addr
		proto dataplane.Protocol
		port  uint16
	}
	seen := map[feKey]bool{}
	var out []dataplane.Frontend
	for _, svc := range svcs {
		for _, a := range svc.Addrs {
			if in.Config.PoolFor(a) == nil {
				continue
			}
			for _, p := range svc.Ports {
				k := feKey{a, p.Protocol, p.Port}
				if seen[k] {
					continue
				}
				seen[k] = true
				fe := frontend(svc, a, p, mode, in.Self, selfAddrs)
				out = append(out, fe)
			}
		}
	}
	return out
}

// frontend is the frontend of svc's port p on address a.
func frontend(svc *Service, a netip.Addr, p Port, mode ForwardingMode, self string, selfAddrs []netip.Addr) dataplane.Frontend {
	fe := dataplane.Frontend{Addr: a, Protocol: p.Protocol, Port: p.Port, Affinity: svc.Affinity, SourceRanges: svc.SourceRanges}
	switch mode {
	case ForwardEndpoints:
		fe.Backends = backends(svc, p, a.Is4(), self)
	case ForwardNodePort:
		for _, sa := range selfAddrs {
			if sa.Is4() == a.Is4() && p.NodePort != 0 {
				fe.Backends = []dataplane.Backend{{AddrPort: netip.AddrPortFrom(sa, p.NodePort)}}
				break
			}
		}
	}
	return fe
}

// backends are the endpoints of svc that serve port p in one family, in
// a stable order.
func backends(svc *Service, p Port, v4 bool, self string) []dataplane.Backend {
	var ready, terminating []dataplane.Backend
	for i := range svc.Endpoints {
		ep := &svc.Endpoints[i]
		if ep.Addr.Is4() != v4 || (svc.Local && ep.Node != self) {
			continue
		}
		target, ok := endpointPort(ep, p)
		if !ok {
			continue
		}
		b := dataplane.Backend{AddrPort: netip.AddrPortFrom(ep.Addr, target), Masquerade: ep.Node != self}
		switch {
		case ep.Ready:
			ready = append(ready, b)
		case ep.Serving && ep.Terminating:
			terminating = append(terminating, b)
		}
	}
	out := ready
	if len(out) == 0 {
		out = terminating
	}
	slices.SortFunc(out, func(a, b dataplane.Backend) int { return a.AddrPort.Compare(b.AddrPort) })
	return slices.CompactFunc(out, func(a, b dataplane.Backend) bool { return a.AddrPort == b.AddrPort })
}

// endpointPort finds the slice port serving the Service's port: the one
// of the same name and protocol, as kube-proxy matches them.
func endpointPort(ep *Endpoint, p Port) (uint16, bool) {
	for _, q := range ep.Ports {
		if q.Name == p.Name && q.Protocol == p.Protocol && q.Port != 0 {
			return q.Port, true
		}
	}
	return 0, false
}

// DefaultAffinity is the sessionAffinity ClientIP timeout when the
// Service sets none, as Kubernetes defaults it.
const DefaultAffinity = 3 * time.Hour
