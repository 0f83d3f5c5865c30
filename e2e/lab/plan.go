// Package lab builds ironlb's lab: a whole cluster on one machine, in
// network namespaces the lab creates and removes itself. This file is the
// address plan, a pure function of the lab's name and size.
//
// Every address comes from the test ranges of DESIGN.md:
//
//	198.51.100.0/25    the LAN: router .1, control plane .2, host .3,
//	                   nodes .11 upwards, external client .100
//	198.51.100.128/25  the router's second segment: router .129, remote client .130
//	203.0.113.0/26     pod networks, one /28 per node
//	203.0.113.64/27    the layer 2 pool (reached on the LAN by ARP)
//	203.0.113.96/27    the BGP pool (reached through the router)
//	198.18.0.0/16      ClusterIPs
package lab

import (
	"fmt"
	"net/netip"
)

// MaxNodes is how many nodes the pod range holds (one /28 each).
const MaxNodes = 4

var (
	LANNet      = netip.MustParsePrefix("198.51.100.0/25")
	RemoteNet   = netip.MustParsePrefix("198.51.100.128/25")
	PodNet      = netip.MustParsePrefix("203.0.113.0/26")
	L2PoolNet   = netip.MustParsePrefix("203.0.113.64/27")
	BGPPoolNet  = netip.MustParsePrefix("203.0.113.96/27")
	ClusterNet  = netip.MustParsePrefix("198.18.0.0/16")
	lanBridge   = "br0"
	podBridge   = "cbr0"
	ifaceInside = "eth0"
)

// Host is one participant: a network namespace with an address on a segment.
type Host struct {
	// NetNS is the namespace's name (empty for the machine's own).
	NetNS string
	// Addr is the host's address and the segment's prefix length.
	Addr netip.Prefix
}

// Node is a Kubernetes node of the lab.
type Node struct {
	Host
	Name    string
	PodCIDR netip.Prefix
}

// PodGateway is the node's address on its pod bridge, the pods' gateway.
func (n Node) PodGateway() netip.Prefix {
	return netip.PrefixFrom(n.PodCIDR.Addr().Next(), n.PodCIDR.Bits())
}

// Plan is every namespace and address of a lab.
type Plan struct {
	// Name prefixes every namespace and host interface of the lab, so
	// several labs (a demo and a test) can coexist and lab-down finds
	// leftovers by it.
	Name string
	// LAN is the namespace holding the LAN bridge.
	LAN          string
	ControlPlane Host
	// HostLeg is the machine's own address on the LAN, through a veth
	// named HostIface, so kubectl on the host reaches the API server.
	HostLeg   Host
	HostIface string
	Router    Host
	// RouterRemote is the router's address on the second segment.
	RouterRemote Host
	Client       Host
	Remote       Host
	Nodes        []Node
}

// NewPlan lays out a lab of n nodes. name must be short (namespace and
// interface names derive from it) and made of lowercase letters and digits.
func NewPlan(name string, n int) (Plan, error) {
	if n < 1 || n > MaxNodes {
		return Plan{}, fmt.Errorf("a lab has 1 to %d nodes, not %d", MaxNodes, n)
	}
	if len(name) == 0 || len(name) > 6 {
		return Plan{}, fmt.Errorf("lab name %q: must be 1 to 6 characters (it prefixes interface names of at most 15)", name)
	}
	for _, r := range name {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return Plan{}, fmt.Errorf("lab name %q: only lowercase letters and digits are allowed", name)
		}
	}
	lan := func(last byte) netip.Prefix {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, 100, last}), LANNet.Bits())
	}
	remote := func(last byte) netip.Prefix {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, 100, last}), RemoteNet.Bits())
	}
	p := Plan{
		Name:         name,
		LAN:          name + "-lan",
		ControlPlane: Host{NetNS: name + "-cp", Addr: lan(2)},
		HostLeg:      Host{Addr: lan(3)},
		HostIface:    name + "-host",
		Router:       Host{NetNS: name + "-rtr", Addr: lan(1)},
		RouterRemote: Host{NetNS: name + "-rtr", Addr: remote(129)},
		Client:       Host{NetNS: name + "-client", Addr: lan(100)},
		Remote:       Host{NetNS: name + "-remote", Addr: remote(130)},
	}
	for i := range n {
		p.Nodes = append(p.Nodes, Node{
			Name:    fmt.Sprintf("node%d", i+1),
			Host:    Host{NetNS: fmt.Sprintf("%s-node%d", name, i+1), Addr: lan(byte(11 + i))},
			PodCIDR: netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(16 * i)}), 28),
		})
	}
	return p, nil
}

// Namespaces lists every namespace of the plan, the LAN's first.
func (p Plan) Namespaces() []string {
	out := []string{p.LAN, p.ControlPlane.NetNS, p.Router.NetNS, p.Client.NetNS, p.Remote.NetNS}
	for _, n := range p.Nodes {
		out = append(out, n.NetNS)
	}
	return out
}

// lanMembers are the namespaces with a leg on the LAN bridge.
func (p Plan) lanMembers() []Host {
	out := []Host{p.ControlPlane, p.Router, p.Client}
	for _, n := range p.Nodes {
		out = append(out, n.Host)
	}
	return out
}
