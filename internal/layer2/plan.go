package layer2

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// ErrNoSuchInterface is wrapped by the errors Set returns for an interface
// that the desired state names and that does not exist right now. The
// desire is kept: the interface is used as soon as it appears.
var ErrNoSuchInterface = errors.New("no such interface")

// ErrNotEthernet is wrapped by the errors Set returns for a named interface
// that exists but can never answer: a loopback, or one without a 6-byte
// hardware address (a tunnel, WireGuard).
var ErrNotEthernet = errors.New("interface has no Ethernet address")

// ErrNoLinkLocal is wrapped by the error for an interface on which NDP
// cannot be answered because it has no IPv6 link-local address: IPv6 is
// off there (disable_ipv6, addr_gen_mode none). IPv4 is not affected.
var ErrNoLinkLocal = errors.New("no IPv6 link-local address")

// family is an IP family; each has its own responder per interface.
type family uint8

const (
	ipv4 family = iota
	ipv6
)

func familyOf(a netip.Addr) family {
	if a.Is4() {
		return ipv4
	}
	return ipv6
}

// String is the value of the metrics' family label.
func (f family) String() string {
	if f == ipv4 {
		return "ipv4"
	}
	return "ipv6"
}

// link is what the planner needs to know about one network interface.
type link struct {
	Name  string
	Index int
	MAC   net.HardwareAddr
	Up    bool
	// Loopback, NoARP: the IFF_LOOPBACK and IFF_NOARP flags.
	Loopback bool
	NoARP    bool
	// Port: the interface is a port of a bridge or bond (its master is
	// not a VRF), whose master answers for the segment.
	Port bool
	// Kind is the kernel's type of the interface (netlink's Link.Type):
	// "device" for a NIC, "veth", "bridge", "vxlan", "dummy" and so on.
	Kind string
	// Addressed: the interface holds an address of global scope.
	// listLinks looks only at veths, the one kind whose default choice
	// depends on it, and leaves it false for the others.
	Addressed bool
}

// ethernet reports whether the interface can carry our replies at all.
func (l link) ethernet() bool { return !l.Loopback && len(l.MAC) == 6 }

// byDefault reports whether the interface is one of "every interface":
// up, Ethernet, and not skipped (skipReason).
func (l link) byDefault() bool { return l.Up && l.ethernet() && l.skipReason() == "" }

// skipReason says why an interface is left out of "every interface" (""
// when it is not). A node carries many interfaces that are not on the
// LAN its LoadBalancer addresses belong to: one veth per pod, tunnels,
// the bridges of CNIs and container engines. Answering there gives pods
// a wrong MAC for the address, costs a socket and two goroutines per
// interface and family, and makes every pod interface a metric series.
//
// Where the kernel says what an interface is, its type decides; names
// catch what a type cannot tell apart (a CNI's bridge from the node's
// own bridge). A bridge or bond port is left out because its master
// answers for it: answering on both would answer one question with two
// MACs.
func (l link) skipReason() string {
	switch {
	case l.Port:
		return "bridge or bond port"
	case l.NoARP:
		return "NOARP"
	case skippedKinds[l.Kind]:
		return "type " + l.Kind
	case l.Kind == "veth" && !l.Addressed:
		// A pod's end of a veth holds no address of the node; the
		// node's own uplink does when the node is a container or a
		// namespace (kind, the lab), and stays in.
		return "veth without a global address"
	}
	if p := skippedName(l.Name); p != "" {
		return "name " + p
	}
	return ""
}

// skippedKinds are the interface types never used by default: overlay
// and point-to-point tunnels (their far side is a network of their own,
// not the LAN), dummies (kube-ipvs0 and nodelocaldns hold addresses but
// reach nothing), VRF devices (frames arrive on their ports), netkit
// (Cilium's pod devices) and ifb (traffic shaping). Types without an
// Ethernet address (ipip, gre, wireguard, tun) never answer anyway.
var skippedKinds = map[string]bool{
	"vxlan": true, "geneve": true, "gretap": true, "ip6gretap": true,
	"erspan": true, "ip6erspan": true, "bareudp": true,
	"dummy": true, "vrf": true, "netkit": true, "ifb": true, "nlmon": true,
}

// skippedNames are the interface names never used by default: a
// trailing * matches any rest. Put together from MetalLB's and Calico's
// default exclusion lists (docker, cbr, virbr, lxcbr, cali, tunl,
// flannel, kube-ipvs, cni, nodelocaldns), Cilium's excluded device
// prefixes (cilium, lxc, cni, docker) and the devices of other CNIs and
// container engines (Weave, kube-router, Antrea, OVN-Kubernetes, Podman,
// nerdctl, LXD). Docker's user networks (br- and twelve hex digits) are
// matched in skippedName.
var skippedNames = []string{
	"cali*", "cilium*", "lxc*", "cni*", "flannel*", "cbr*", "docker*",
	"podman*", "nerdctl*", "virbr*", "lxdbr*", "weave", "vethwe*",
	"datapath", "kube-bridge", "kube-dummy-if", "kube-ipvs*",
	"nodelocaldns", "tunl*", "vxlan*", "genev*", "antrea-*", "ovn-k8s-*",
	"ovs-system", "br-int",
}

// skippedName returns the pattern of skippedNames that name matches, or
// "".
func skippedName(name string) string {
	for _, p := range skippedNames {
		if rest, ok := strings.CutSuffix(p, "*"); ok && strings.HasPrefix(name, rest) || name == p {
			return p
		}
	}
	if hex, ok := strings.CutPrefix(name, "br-"); ok && len(hex) == 12 && strings.Trim(hex, "0123456789abcdef") == "" {
		return "br-<12 hex digits>"
	}
	return ""
}

// skipped lists the interfaces that are up and Ethernet but left out of
// "every interface", each with the reason, for the announcer's log.
func skipped(links []link) map[string]string {
	out := map[string]string{}
	for _, l := range links {
		if !l.Up || !l.ethernet() {
			continue
		}
		if r := l.skipReason(); r != "" {
			out[l.Name] = r
		}
	}
	return out
}

// wantsEvery reports whether some address is to be answered on every
// interface, which is when the choice of interfaces matters.
func wantsEvery(desired map[netip.Addr][]string) bool {
	for _, names := range desired {
		if len(names) == 0 {
			return true
		}
	}
	return false
}

// key names a responder: one per interface and family.
type key struct {
	name string
	fam  family
}

func (k key) String() string { return k.name + "/" + k.fam.String() }

// addrSet is a set of addresses.
type addrSet map[netip.Addr]struct{}

// sorted returns the set's members in order.
func (s addrSet) sorted() []netip.Addr {
	out := make([]netip.Addr, 0, len(s))
	for a := range s {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// plan works out which responders this node needs: for every interface and
// family, the addresses to answer for there. An address with no interface
// names goes to every interface that byDefault selects; a named interface
// is used while it exists, is up and is Ethernet, whatever its flags,
// type or name: naming it is how an operator overrides skipReason. The
// error joins one error per (address, named interface) that cannot be used:
// ErrNoSuchInterface or ErrNotEthernet. A named interface that exists but
// is down is not an error; it is used once it comes up. Plan is pure.
func plan(desired map[netip.Addr][]string, links []link) (map[key]addrSet, error) {
	byName := make(map[string]link, len(links))
	for _, l := range links {
		byName[l.Name] = l
	}
	want := map[key]addrSet{}
	add := func(name string, a netip.Addr) {
		k := key{name: name, fam: familyOf(a)}
		if want[k] == nil {
			want[k] = addrSet{}
		}
		want[k][a] = struct{}{}
	}
	var errs []error
	for _, a := range sortedKeys(desired) {
		names := desired[a]
		if len(names) == 0 {
			for _, l := range links {
				if l.byDefault() {
					add(l.Name, a)
				}
			}
			continue
		}
		for _, name := range names {
			l, ok := byName[name]
			switch {
			case !ok:
				errs = append(errs, fmt.Errorf("layer2: interface %q for %s: %w", name, a, ErrNoSuchInterface))
			case !l.ethernet():
				errs = append(errs, fmt.Errorf("layer2: interface %q for %s: %w", name, a, ErrNotEthernet))
			case l.Up:
				add(name, a)
			}
		}
	}
	return want, errors.Join(errs...)
}

// normalize copies a desired map: 4in6 addresses become IPv4, interface
// names are sorted and deduplicated, and addresses nobody can answer for
// (invalid, unspecified, multicast) are dropped with an error.
func normalize(desired map[netip.Addr][]string) (map[netip.Addr][]string, error) {
	out := make(map[netip.Addr][]string, len(desired))
	every := map[netip.Addr]bool{} // an empty list means every interface and wins
	var errs []error
	for a, names := range desired {
		if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() {
			errs = append(errs, fmt.Errorf("layer2: cannot answer for address %q", a))
			continue
		}
		a = a.Unmap().WithZone("")
		if len(names) == 0 {
			every[a] = true
		}
		out[a] = append(out[a], names...)
	}
	for a, names := range out {
		if every[a] {
			out[a] = nil
			continue
		}
		slices.Sort(names)
		out[a] = slices.Compact(names)
	}
	return out, errors.Join(errs...)
}

func sortedKeys[V any](m map[netip.Addr]V) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}
