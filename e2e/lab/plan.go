// Package lab builds ironlb's lab: a whole cluster on one machine, in
// network namespaces the lab creates and removes itself. This file is the
// address plan, a pure function of the lab's name and size.
//
// Every address comes from the test ranges of DESIGN.md:
//
//	198.51.100.0/25     the LAN: router .1, control plane .2, host .3,
//	                    nodes .11 upwards, external client .100
//	198.51.100.128/25   the router's second segment: router .129, remote client .130
//	203.0.113.0/26      pod networks, one /28 per node (its first address the
//	                    node's, the pods' gateway)
//	203.0.113.64/27     the layer 2 pool (reached on the LAN by ARP)
//	203.0.113.96/27     the BGP pool (reached through the router)
//	198.18.0.0/16       ClusterIPs
//
// and IPv6 beside it, on the same links, with the same last digits:
//
//	2001:db8:5100::/64  the LAN: router ::1, control plane ::2, host ::3,
//	                    nodes ::11 upwards, external client ::100
//	2001:db8:5101::/64  the router's second segment: router ::1, remote client ::2
//	2001:db8:ff63::/122 pod networks, one /124 per node: a pod's (and a
//	                    gateway's) IPv6 address ends in the last byte of
//	                    its IPv4 address (203.0.113.18 is 2001:db8:ff63::12)
//	2001:db8:ff64::/120 the layer 2 pool's IPv6 range (reached on the LAN by NDP)
//	2001:db8:ff66::/112 the IPv6 BGP pool (advertised over IPv6 sessions)
//
// Pods are dual-stack. The client and the router reach both layer 2
// ranges on the LAN itself: they resolve the pools' addresses by ARP and
// NDP, with no gateway. The client also reaches every node's pods
// directly, through that node (a flat network, as with a routed CNI), so
// traffic through a LoadBalancer address can be compared with traffic
// straight to a pod.
package lab

import (
	"fmt"
	"net/netip"
	"slices"
)

// MaxNodes is how many nodes the pod range holds (one /28 each).
const MaxNodes = 4

var (
	LANNet      = netip.MustParsePrefix("198.51.100.0/25")
	RemoteNet   = netip.MustParsePrefix("198.51.100.128/25")
	PodNet      = netip.MustParsePrefix("203.0.113.0/26")
	PodNet6     = netip.MustParsePrefix("2001:db8:ff63::/122")
	L2PoolNet   = netip.MustParsePrefix("203.0.113.64/27")
	BGPPoolNet  = netip.MustParsePrefix("203.0.113.96/27")
	ClusterNet  = netip.MustParsePrefix("198.18.0.0/16")
	LANNet6     = netip.MustParsePrefix("2001:db8:5100::/64")
	RemoteNet6  = netip.MustParsePrefix("2001:db8:5101::/64")
	L2PoolNet6  = netip.MustParsePrefix("2001:db8:ff64::/120")
	BGPPoolNet6 = netip.MustParsePrefix("2001:db8:ff66::/112")
	// HandEndpointNet6 holds the addresses of endpoints written by hand,
	// which no pod has: a Service with one is announced all the same.
	HandEndpointNet6 = netip.MustParsePrefix("2001:db8:ff65::/64")
	lanBridge        = "br0"
	podBridge        = "cbr0"
	// InsideIface names every lab namespace's own interface: its leg on
	// the LAN or on the router's second segment.
	InsideIface = "eth0"
)

// PoolAddr is the address of pool whose last 8 bits (IPv4) or 16 bits
// (IPv6) are last: PoolAddr(L2PoolNet, 70) is 203.0.113.70 and
// PoolAddr(L2PoolNet6, 0x70) is 2001:db8:ff64::70, the twin the plan
// gives it. It panics when the address is outside pool: the callers'
// addresses are fixed, and one outside the plan's ranges is a bug.
func PoolAddr(pool netip.Prefix, last int) netip.Addr {
	b := pool.Masked().Addr().As16()
	if pool.Addr().Is4() {
		b[15] = byte(last)
	} else {
		b[14], b[15] = byte(last>>8), byte(last)
	}
	a := netip.AddrFrom16(b)
	if pool.Addr().Is4() {
		a = a.Unmap()
	}
	if !pool.Contains(a) || last < 0 || last > 0xffff || (pool.Addr().Is4() && last > 0xff) {
		panic(fmt.Sprintf("lab.PoolAddr: %d is outside %s", last, pool))
	}
	return a
}

// Host is one participant: a network namespace with an address of each
// family on a segment.
type Host struct {
	// NetNS is the namespace's name (empty for the machine's own).
	NetNS string
	// Addr is the host's IPv4 address and the segment's prefix length.
	Addr netip.Prefix
	// Addr6 is the host's IPv6 address and the segment's prefix length.
	Addr6 netip.Prefix
}

// Addrs are the host's addresses, IPv4 first.
func (h Host) Addrs() []netip.Prefix { return []netip.Prefix{h.Addr, h.Addr6} }

// Node is a Kubernetes node of the lab.
type Node struct {
	Host
	Name     string
	PodCIDR  netip.Prefix
	PodCIDR6 netip.Prefix
}

// PodGateway is the node's IPv4 address on its pod bridge, the pods' gateway.
func (n Node) PodGateway() netip.Prefix {
	return netip.PrefixFrom(n.PodCIDR.Addr().Next(), n.PodCIDR.Bits())
}

// PodGateway6 is the node's IPv6 address on its pod bridge, the pods'
// IPv6 gateway.
func (n Node) PodGateway6() netip.Prefix {
	return netip.PrefixFrom(PodAddr6(n.PodGateway().Addr()), n.PodCIDR6.Bits())
}

// PodAddr6 is the IPv6 address that goes with a pod network's IPv4
// address: the same last byte in PodNet6.
func PodAddr6(v4 netip.Addr) netip.Addr {
	b := PodNet6.Addr().As16()
	b[15] = v4.As4()[3]
	return netip.AddrFrom16(b)
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
	// IPv6 hosts are numbered as in IPv4, the number written in hex
	// digits: .11 is ::11.
	lan6 := func(last uint16) netip.Prefix { return v6In(LANNet6, last) }
	remote6 := func(last uint16) netip.Prefix { return v6In(RemoteNet6, last) }
	p := Plan{
		Name:         name,
		LAN:          name + "-lan",
		ControlPlane: Host{NetNS: name + "-cp", Addr: lan(2), Addr6: lan6(0x2)},
		HostLeg:      Host{Addr: lan(3), Addr6: lan6(0x3)},
		HostIface:    name + "-host",
		Router:       Host{NetNS: name + "-rtr", Addr: lan(1), Addr6: lan6(0x1)},
		RouterRemote: Host{NetNS: name + "-rtr", Addr: remote(129), Addr6: remote6(0x1)},
		Client:       Host{NetNS: name + "-client", Addr: lan(100), Addr6: lan6(0x100)},
		Remote:       Host{NetNS: name + "-remote", Addr: remote(130), Addr6: remote6(0x2)},
	}
	for i := range n {
		p.Nodes = append(p.Nodes, Node{
			Name:     fmt.Sprintf("node%d", i+1),
			Host:     Host{NetNS: fmt.Sprintf("%s-node%d", name, i+1), Addr: lan(byte(11 + i)), Addr6: lan6(uint16(0x11 + i))},
			PodCIDR:  netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(16 * i)}), 28),
			PodCIDR6: netip.PrefixFrom(PodAddr6(netip.AddrFrom4([4]byte{203, 0, 113, byte(16 * i)})), 124),
		})
	}
	return p, nil
}

// v6In is the address of a /64 whose last 16 bits are last.
func v6In(seg netip.Prefix, last uint16) netip.Prefix {
	b := seg.Addr().As16()
	b[14], b[15] = byte(last>>8), byte(last)
	return netip.PrefixFrom(netip.AddrFrom16(b), seg.Bits())
}

// Node returns the node called name.
func (p Plan) Node(name string) (Node, error) {
	for _, n := range p.Nodes {
		if n.Name == name {
			return n, nil
		}
	}
	return Node{}, fmt.Errorf("lab %s has no node %q", p.Name, name)
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

// OnLAN reports whether the namespace ns has a leg on the LAN bridge.
func (p Plan) OnLAN(ns string) bool {
	return slices.ContainsFunc(p.lanMembers(), func(h Host) bool { return h.NetNS == ns })
}

// lanPort names the LAN bridge's end of the i-th LAN member's veth.
func lanPort(i int) string { return fmt.Sprintf("p%d", i) }

// lanPortOf names the LAN bridge's end of the veth of the LAN member in
// namespace ns: unplugging it is pulling that member's cable.
func (p Plan) lanPortOf(ns string) (string, error) {
	for i, h := range p.lanMembers() {
		if h.NetNS == ns {
			return lanPort(i), nil
		}
	}
	return "", fmt.Errorf("namespace %q has no leg on the LAN of lab %s", ns, p.Name)
}
