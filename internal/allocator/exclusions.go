package allocator

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/iprange"
)

// Exclusion is a range of addresses that no Service may be given, even
// though a pool holds them: a Node's own address, or the cluster's Service
// CIDR. The controller works them out; the allocator only obeys.
type Exclusion struct {
	iprange.Range
	// Why completes "203.0.113.5 is ..." in messages, e.g. `the InternalIP
	// of Node "n1"`.
	Why string
}

// exclusions is the allocator's view of the excluded addresses: merged,
// sorted, non-overlapping ranges for lookups and carving, and the list as
// given, for messages.
type exclusions struct {
	merged []iprange.Range
	given  []Exclusion
}

// SetExclusions replaces the excluded addresses. Pools whose usable
// addresses change are rebuilt as on a configuration change: counts leave
// the excluded addresses out, and the cursor starts over, so an address
// that is no longer excluded is handed out again. Addresses that Services
// hold stay theirs even when excluded: the caller decides what to tell
// them (see Excluded).
func (a *Allocator) SetExclusions(ex []Exclusion) {
	a.excl = newExclusions(ex)
	a.SetConfig(a.cfg)
}

func newExclusions(ex []Exclusion) exclusions {
	given := slices.Clone(ex)
	slices.SortStableFunc(given, func(x, y Exclusion) int { return x.Compare(y.Range) })
	var merged []iprange.Range
	for _, e := range given {
		if n := len(merged); n > 0 && merged[n-1].Is4() == e.Is4() && (e.First.Compare(merged[n-1].Last) <= 0 || merged[n-1].Last.Next() == e.First) {
			merged[n-1].Last = maxAddr(merged[n-1].Last, e.Last)
			continue
		}
		merged = append(merged, e.Range)
	}
	return exclusions{merged: merged, given: given}
}

func maxAddr(a, b netip.Addr) netip.Addr {
	if a.Less(b) {
		return b
	}
	return a
}

// find returns the merged range holding addr.
func (e *exclusions) find(addr netip.Addr) (iprange.Range, bool) {
	i, found := slices.BinarySearchFunc(e.merged, addr, func(r iprange.Range, a netip.Addr) int {
		switch {
		case r.Last.Compare(a) < 0:
			return -1
		case a.Compare(r.First) < 0:
			return 1
		}
		return 0
	})
	if !found {
		return iprange.Range{}, false
	}
	return e.merged[i], true
}

// excluded tells whether no Service may be given addr anew.
func (a *Allocator) excluded(addr netip.Addr) bool {
	_, ok := a.excl.find(addr)
	return ok
}

// Excluded tells why addr is excluded ("" when it is not), naming every
// reason, for a Service's condition.
func (a *Allocator) Excluded(addr netip.Addr) string {
	if !a.excluded(addr) {
		return ""
	}
	why := ""
	for _, e := range a.excl.given {
		if e.Contains(addr) {
			if why != "" {
				why += " and "
			}
			why += e.Why
		}
	}
	return why
}

// excludedError is the error for a Service asking by name for an
// excluded address.
func (a *Allocator) excludedError(ip netip.Addr, pool string) *Error {
	return &Error{ReasonRequestedIPUnavailable, fmt.Sprintf("%s is in IPPool %q but is %s; ironlb never assigns a Node's address or an address of the Service CIDR", ip, pool, a.Excluded(ip))}
}

// usableRanges returns the pool's ranges without the excluded addresses,
// sorted (IPv4 first).
func (a *Allocator) usableRanges(p *config.Pool) []iprange.Range {
	if len(a.excl.merged) == 0 {
		return p.Ranges
	}
	var out []iprange.Range
	for _, r := range p.Ranges {
		out = append(out, subtract(r, a.excl.merged)...)
	}
	slices.SortFunc(out, iprange.Range.Compare)
	return out
}

// subtract returns the parts of r outside every range of ex (sorted,
// non-overlapping).
func subtract(r iprange.Range, ex []iprange.Range) []iprange.Range {
	// The first range of ex that does not end before r starts.
	i, _ := slices.BinarySearchFunc(ex, r.First, func(e iprange.Range, first netip.Addr) int { return e.Last.Compare(first) })
	var out []iprange.Range
	next := r.First
	for ; i < len(ex) && ex[i].Overlaps(iprange.Range{First: next, Last: r.Last}); i++ {
		if next.Less(ex[i].First) {
			out = append(out, iprange.Range{First: next, Last: ex[i].First.Prev()})
		}
		if !ex[i].Last.Less(r.Last) {
			return out
		}
		next = ex[i].Last.Next()
	}
	return append(out, iprange.Range{First: next, Last: r.Last})
}

// sameRanges tells whether a pool state was built from these ranges.
func (p *poolState) sameRanges(rs []iprange.Range) bool {
	var built []iprange.Range
	for _, fs := range p.fams {
		built = append(built, fs.ranges...)
	}
	return slices.Equal(built, rs)
}
