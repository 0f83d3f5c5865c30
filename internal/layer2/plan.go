package layer2

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
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
}

// ethernet reports whether the interface can carry our replies at all.
func (l link) ethernet() bool { return !l.Loopback && len(l.MAC) == 6 }

// byDefault reports whether the interface is one of "every interface":
// up, Ethernet, and neither a bridge or bond port nor marked NOARP.
// Answering on a bridge's ports as well as on the bridge would answer one
// question several times with different MACs.
func (l link) byDefault() bool { return l.Up && l.ethernet() && !l.Port && !l.NoARP }

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
// is used while it exists, is up and is Ethernet, whatever its flags. The
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
