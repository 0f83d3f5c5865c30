package speaker

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ironlb/ironlb/internal/iprange"
	"github.com/ironlb/ironlb/internal/planner"
)

// TestTrackPrefixes: prefixes coming, changing and going one batch at a
// time keep the sorted order and the reported first prefixes what a
// from-scratch sort gives, around the report's limit.
func TestTrackPrefixes(t *testing.T) {
	rnd := rand.New(rand.NewPCG(7, 11))
	s := &Speaker{bgpSince: map[netip.Prefix]time.Time{}, bgpPending: map[netip.Prefix]bool{}}
	plan := planner.BGPPlan{Prefixes: map[netip.Prefix]*planner.BGPPrefix{}}
	// 2.5 times the report's limit, so that changes fall both inside and
	// outside the first prefixes.
	universe := make([]netip.Prefix, 5*maxBGPStatusPrefixes/2)
	for i := range universe {
		universe[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, 113 + byte(i/256), byte(i)}), 32)
	}
	for step := range 400 {
		for range 1 + rnd.IntN(5) {
			pfx := universe[rnd.IntN(len(universe))]
			if rnd.IntN(3) == 0 {
				delete(plan.Prefixes, pfx)
			} else {
				plan.Prefixes[pfx] = &planner.BGPPrefix{Services: []string{fmt.Sprintf("ns/s%d", step)}, Peers: []string{"r1"}}
			}
			s.bgpPending[pfx] = true
		}
		s.trackPrefixes(plan)
		clear(s.bgpPending)

		want := slices.SortedFunc(maps.Keys(plan.Prefixes), iprange.ComparePrefixes)
		if !slices.Equal(s.bgpOrder, want) {
			t.Fatalf("step %d: order %v, want %v", step, s.bgpOrder, want)
		}
		if len(s.bgpSince) != len(want) {
			t.Fatalf("step %d: %d prefixes have a since, want %d", step, len(s.bgpSince), len(want))
		}
		if diff := cmp.Diff(s.bgpAnnouncements(plan), s.bgpReported); diff != "" {
			t.Fatalf("step %d: reported first prefixes (-scratch +kept)\n%s", step, diff)
		}
	}
}
