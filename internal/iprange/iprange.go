// Package iprange parses and compares the address entries of an IPPool: a
// CIDR, an inclusive range "first-last" of one family, or a single address.
// It accepts exactly what the CRD's CEL rules accept (netip syntax, no zones,
// no IPv4-mapped IPv6), so a file and the API server agree on every entry.
package iprange

import (
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"strings"
)

// Range is an inclusive range of addresses of one family, First <= Last.
type Range struct {
	First, Last netip.Addr
}

// ErrSyntax is wrapped by every error Parse returns.
var ErrSyntax = errors.New("invalid address entry")

// Parse parses one pool entry. Errors explain what is allowed and, for a CIDR
// with host bits set, what the network address is.
func Parse(s string) (Range, error) {
	if first, last, ok := strings.Cut(s, "-"); ok {
		a, err := parseAddr(first)
		if err != nil {
			return Range{}, fmt.Errorf("%w %q: a range must be two addresses joined by '-': %v", ErrSyntax, s, err)
		}
		b, err := parseAddr(last)
		if err != nil {
			return Range{}, fmt.Errorf("%w %q: a range must be two addresses joined by '-': %v", ErrSyntax, s, err)
		}
		if a.Is4() != b.Is4() {
			return Range{}, fmt.Errorf("%w %q: a range must not mix IPv4 and IPv6 addresses", ErrSyntax, s)
		}
		if b.Less(a) {
			return Range{}, fmt.Errorf("%w %q: the first address of a range must not be above the last", ErrSyntax, s)
		}
		return Range{First: a, Last: b}, nil
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return Range{}, fmt.Errorf("%w %q: %v", ErrSyntax, s, err)
		}
		if p.Addr().Is4In6() {
			return Range{}, fmt.Errorf("%w %q: IPv4-mapped IPv6 addresses are not allowed", ErrSyntax, s)
		}
		if m := p.Masked(); m != p {
			return Range{}, fmt.Errorf("%w %q: CIDR has host bits set: the network address is %s", ErrSyntax, s, m)
		}
		return FromPrefix(p), nil
	}
	a, err := parseAddr(s)
	if err != nil {
		return Range{}, fmt.Errorf("%w %q: must be a CIDR, a range first-last or a single address: %v", ErrSyntax, s, err)
	}
	return Range{First: a, Last: a}, nil
}

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return netip.Addr{}, err
	case a.Zone() != "":
		return netip.Addr{}, fmt.Errorf("address %q has a zone, which is not allowed", s)
	case a.Is4In6():
		return netip.Addr{}, fmt.Errorf("IPv4-mapped IPv6 address %q is not allowed", s)
	}
	return a, nil
}

// ComparePrefixes orders prefixes by address (every IPv4 one before every
// IPv6 one), then by length, shortest first.
func ComparePrefixes(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// FromPrefix returns the addresses of a prefix; host bits are ignored.
func FromPrefix(p netip.Prefix) Range {
	p = p.Masked()
	first := p.Addr()
	b := first.AsSlice()
	for i := range b {
		bits := p.Bits() - 8*i
		switch {
		case bits <= 0:
			b[i] = 0xff
		case bits < 8:
			b[i] |= 0xff >> bits
		}
	}
	last, _ := netip.AddrFromSlice(b)
	return Range{First: first, Last: last}
}

// Is4 tells whether the range holds IPv4 addresses.
func (r Range) Is4() bool { return r.First.Is4() }

// Contains tells whether a is inside the range.
func (r Range) Contains(a netip.Addr) bool {
	return a.Is4() == r.Is4() && r.First.Compare(a) <= 0 && a.Compare(r.Last) <= 0
}

// Overlaps tells whether the two ranges share an address.
func (r Range) Overlaps(o Range) bool {
	return r.Is4() == o.Is4() && r.First.Compare(o.Last) <= 0 && o.First.Compare(r.Last) <= 0
}

// Compare orders ranges by first address (IPv4 before IPv6), then by last.
func (r Range) Compare(o Range) int {
	if c := r.First.Compare(o.First); c != 0 {
		return c
	}
	return r.Last.Compare(o.Last)
}

// Size is the number of addresses in the range.
func (r Range) Size() *big.Int {
	n := new(big.Int).Sub(new(big.Int).SetBytes(r.Last.AsSlice()), new(big.Int).SetBytes(r.First.AsSlice()))
	return n.Add(n, big.NewInt(1))
}

// Prefix returns the range as a prefix when it is exactly one.
func (r Range) Prefix() (netip.Prefix, bool) {
	for bits := 0; bits <= r.First.BitLen(); bits++ {
		p := netip.PrefixFrom(r.First, bits)
		if p.Masked().Addr() == r.First && FromPrefix(p).Last == r.Last {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// String writes the range the way a user would: a CIDR when it is one
// (a single address as a bare address), first-last otherwise.
func (r Range) String() string {
	if r.First == r.Last {
		return r.First.String()
	}
	if p, ok := r.Prefix(); ok {
		return p.String()
	}
	return r.First.String() + "-" + r.Last.String()
}

// Prefixes splits the range into the fewest prefixes that cover exactly it.
func (r Range) Prefixes() []netip.Prefix {
	var out []netip.Prefix
	first := r.First
	for {
		// The shortest prefix that starts at first and ends within the range.
		for bits := 0; bits <= first.BitLen(); bits++ {
			p := netip.PrefixFrom(first, bits)
			if p.Masked().Addr() != first {
				continue
			}
			if last := FromPrefix(p).Last; last.Compare(r.Last) <= 0 {
				out = append(out, p)
				if last == r.Last {
					return out
				}
				first = last.Next()
				break
			}
		}
	}
}
