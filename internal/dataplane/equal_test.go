package dataplane

import (
	"net/netip"
	"testing"
)

// TestFrontendEqualRanges: a change of ranges alone is a change the
// dataplane must be given; no restriction and no client differ; nor do
// two ports.
func TestFrontendEqualRanges(t *testing.T) {
	fe := Frontend{Addr: netip.MustParseAddr("203.0.113.65"), Protocol: TCP, Port: 80}
	ranges := []*SourceRanges{nil, AllowOnly(), AllowOnly(netip.MustParsePrefix("198.51.100.0/24")),
		AllowOnly(netip.MustParsePrefix("198.51.100.0/25"))}
	for i, a := range ranges {
		for j, b := range ranges {
			x, y := fe, fe
			x.SourceRanges, y.SourceRanges = a, b
			if got := x.Equal(&y); got != (i == j) {
				t.Errorf("Equal with ranges %v and %v = %v", a, b, got)
			}
		}
	}
	other := fe
	other.Port = 81
	if fe.Equal(&other) {
		t.Error("frontends of ports 80 and 81 are Equal")
	}
}
