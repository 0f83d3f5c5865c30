package election

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// TestRankingSwitch walks a switch from version 1 to 2 step by step on
// three nodes: before it, a node announces what it owns under version 1;
// during it, only what it owns under both; after it, what it owns under
// version 2. At no step do a speaker that has not switched yet and one
// that is switching, or one that is switching and one that has finished,
// announce the same address from two nodes.
func TestRankingSwitch(t *testing.T) {
	nodes := []string{"node1", "node2", "node3"}
	addrs := consecutive(netip.MustParseAddr("203.0.113.64"), 30)
	build := func() *Ranking {
		r := NewRanking(ClaimV1)
		for _, a := range addrs {
			r.SetEligible(a, NewNodes(nodes...))
		}
		for _, n := range nodes {
			r.NodeUp(n)
		}
		return r
	}
	before, during, after := build(), build(), build()
	during.Switch(ClaimV2)
	after.Switch(ClaimV2)
	after.Finish()
	if from, ok := during.Switching(); !ok || from != ClaimV1 || during.Version() != ClaimV2 {
		t.Fatalf("Switching() = %d, %v; Version() = %d", from, ok, during.Version())
	}
	moved := 0
	for _, a := range addrs {
		v1, v2 := Winner(ClaimV1, a, nodes), Winner(ClaimV2, a, nodes)
		announcers := func(r *Ranking) []string {
			var out []string
			for _, n := range nodes {
				if slices.Contains(r.Owned(n), a) {
					out = append(out, n)
				}
			}
			return out
		}
		b, d, f := announcers(before), announcers(during), announcers(after)
		if !slices.Equal(b, []string{v1}) || !slices.Equal(f, []string{v2}) {
			t.Errorf("%s: announced by %v before and %v after the switch, want %s and %s", a, b, f, v1, v2)
		}
		want := []string{v1}
		if v1 != v2 {
			want = nil
			moved++
		}
		if !slices.Equal(d, want) {
			t.Errorf("%s: announced by %v during the switch, want %v (v1 %s, v2 %s)", a, d, want, v1, v2)
		}
		if owner, ok := during.Owner(a); owner != v2 || ok != (v1 == v2) {
			t.Errorf("%s: Owner during the switch = %s, %v; want %s, %v", a, owner, ok, v2, v1 == v2)
		}
	}
	if moved == 0 {
		t.Fatal("no address changes owner between the versions; the test proves nothing")
	}
	during.Switch(ClaimV2) // the version in force: nothing happens
	if _, ok := during.Switching(); !ok {
		t.Fatal("switching to the version in force ended the switch")
	}
}

// TestRankingRandomOrder: after any sequence of joins, leaves, eligibility
// changes, switches and finishes, what each node announces equals the
// from-scratch answer: owned under the version in force and, while
// switching, under the previous one too.
func TestRankingRandomOrder(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 9))
		r := NewRanking(ClaimVersion(1 + seed%2))
		cur, prev := r.Version(), ClaimVersion(0)
		alive := map[string]bool{}
		eligible := map[netip.Addr][]string{}
		addrs := consecutive(netip.MustParseAddr("203.0.113.64"), 12)
		node := func() string { return fmt.Sprintf("node%d", rng.IntN(6)) }
		for op := range 1500 {
			switch rng.IntN(6) {
			case 0:
				n := node()
				r.NodeUp(n)
				alive[n] = true
			case 1:
				n := node()
				r.NodeDown(n)
				delete(alive, n)
			case 2:
				a := addrs[rng.IntN(len(addrs))]
				el := []string{node(), node(), node()}[:rng.IntN(4)]
				r.SetEligible(a, NewNodes(el...))
				eligible[a] = el
			case 3:
				a := addrs[rng.IntN(len(addrs))]
				r.Remove(a)
				delete(eligible, a)
			case 4:
				v := ClaimVersion(1 + rng.IntN(2))
				r.Switch(v)
				if v != cur {
					prev, cur = cur, v
				}
			case 5:
				r.Finish()
				prev = 0
			}
			for i := range 6 {
				n := fmt.Sprintf("node%d", i)
				var want []netip.Addr
				for _, a := range addrs {
					if owner(cur, a, eligible[a], alive) == n && (prev == 0 || owner(prev, a, eligible[a], alive) == n) {
						want = append(want, a)
					}
				}
				got := r.Owned(n)
				slices.SortFunc(got, netip.Addr.Compare)
				if !slices.Equal(got, want) {
					t.Fatalf("seed %d op %d: %s announces %v, want %v (version %d, previous %d)", seed, op, n, got, want, cur, prev)
				}
			}
		}
	}
}
