package dataplane

import (
	"net/netip"
	"slices"
	"strings"
)

// SourceRanges are the clients a restricted frontend accepts. A frontend
// with SourceRanges, even empty ones, is restricted: in each family only
// the clients inside one of that family's prefixes get in, so a family
// without a prefix lets nobody in, and &SourceRanges{} (what a Service
// whose ranges cannot be read gets) closes the frontend to everyone.
// A prefix of length 0 opens its family to every client, as kube-proxy
// reads 0.0.0.0/0 and ::/0.
type SourceRanges struct {
	// Allowed may mix both families; a frontend uses those of its own.
	Allowed []netip.Prefix
}

// AllowOnly restricts a frontend to clients inside ps; with none, to
// nobody.
func AllowOnly(ps ...netip.Prefix) *SourceRanges {
	return &SourceRanges{Allowed: slices.Clone(ps)}
}

// Equal tells whether s and o let the same clients in, as written: nil
// (no restriction) equals only nil.
func (s *SourceRanges) Equal(o *SourceRanges) bool {
	if s == nil || o == nil {
		return s == o
	}
	return slices.Equal(s.Allowed, o.Allowed)
}

func (s *SourceRanges) String() string {
	switch {
	case s == nil:
		return "every client"
	case len(s.Allowed) == 0:
		return "no client"
	}
	parts := make([]string, len(s.Allowed))
	for i, p := range s.Allowed {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}

// forFamily is what the table of one family holds for s: restricted says
// whether the frontend is restricted in that family at all, and allowed
// are its prefixes in that family, host bits cleared, without duplicates
// and without the prefixes that another one covers. The set they go into
// holds intervals, which must not overlap: two prefixes either nest or
// are disjoint, so dropping the nested ones is enough.
func (s *SourceRanges) forFamily(v4 bool) (restricted bool, allowed []netip.Prefix) {
	if s == nil {
		return false, nil
	}
	for _, p := range s.Allowed {
		if !p.IsValid() || p.Addr().Is4() != v4 {
			continue
		}
		if p.Bits() == 0 {
			return false, nil
		}
		allowed = append(allowed, p.Masked())
	}
	// In address order, shorter first at one address, a prefix comes
	// right after the one that covers it, if any is kept: compare each
	// with the last kept.
	slices.SortFunc(allowed, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	out := allowed[:0]
	for _, p := range allowed {
		if n := len(out); n > 0 && out[n-1].Contains(p.Addr()) {
			continue
		}
		out = append(out, p)
	}
	return true, out
}
