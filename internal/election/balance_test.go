package election

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// moves counts the addresses whose owner differs between two placements.
func moves(a, b map[netip.Addr]string) int {
	n := 0
	for addr, o := range a {
		if b[addr] != o {
			n++
		}
	}
	return n
}

// checkBalance fails unless every address has an alive owner, no node
// holds more than ⌈K/N⌉, and at most K mod N nodes hold more than ⌊K/N⌋.
func checkBalance(t *testing.T, what string, owners map[netip.Addr]string, addrs []netip.Addr, nodes []string) {
	t.Helper()
	count := map[string]int{}
	for _, a := range addrs {
		o := owners[a]
		if len(nodes) > 0 && !slices.Contains(nodes, o) {
			t.Fatalf("%s: %s owned by %q, not one of %v", what, a, o, nodes)
		}
		count[o]++
	}
	if len(nodes) == 0 {
		return
	}
	limit, over := Capacity(len(addrs), len(nodes)), 0
	for n, c := range count {
		if c > limit {
			t.Fatalf("%s: %s owns %d of %d addresses over %d nodes, more than %d", what, n, c, len(addrs), len(nodes), limit)
		}
		if c > len(addrs)/len(nodes) {
			over++
		}
	}
	if seats := len(addrs) % len(nodes); over > seats {
		t.Fatalf("%s: %d nodes own more than %d of %d addresses over %d nodes, more than the %d that K mod N allows", what, over, len(addrs)/len(nodes), len(addrs), len(nodes), seats)
	}
}

// TestBalancedSteps: a table walk through the lab's case, 30 addresses
// on three nodes, by hand.
func TestBalancedSteps(t *testing.T) {
	addrs := consecutive(netip.MustParseAddr("203.0.113.65"), 30)
	nodes := []string{"node1", "node2", "node3"}
	for _, tt := range []struct {
		alive []string
		each  int
	}{
		{nodes, 10},
		{nodes[:2], 15},
		{nodes[1:], 15},
		{nodes[:1], 30},
		{nil, 0},
	} {
		got := Balanced(LatestClaim, addrs, tt.alive)
		checkBalance(t, fmt.Sprint(tt.alive), got, addrs, tt.alive)
		count := map[string]int{}
		for _, o := range got {
			count[o]++
		}
		for _, n := range tt.alive {
			if count[n] != tt.each {
				t.Errorf("alive %v: %s owns %d, want %d (%v)", tt.alive, n, count[n], tt.each, count)
			}
		}
		if len(tt.alive) == 0 && len(got) != 0 {
			t.Errorf("nobody alive, yet owners %v", got)
		}
	}
}

// TestBalancedIsStable pins owners: balanced placement is a protocol
// between speakers like the claims, so a change to it is a new version.
func TestBalancedIsStable(t *testing.T) {
	addrs := consecutive(netip.MustParseAddr("203.0.113.65"), 6)
	got := Balanced(ClaimV3, addrs, []string{"node1", "node2", "node3"})
	var s []string
	for _, a := range addrs {
		s = append(s, got[a])
	}
	want := []string{"node2", "node1", "node3", "node1", "node3", "node2"}
	if !slices.Equal(s, want) {
		t.Fatalf("owners of %v = %v, want %v", addrs, s, want)
	}
}

// TestBalancedTableRandomOrder: after any sequence of joins, leaves,
// eligibility changes and removals, a table holding hash and balanced
// sets names, for every address, the owner Balanced or Winner computes
// from scratch over the alive eligible nodes; under ClaimV2 a balanced
// set is ranked by claim alone.
func TestBalancedTableRandomOrder(t *testing.T) {
	for seed := range uint64(30) {
		rng := rand.New(rand.NewPCG(seed, 11))
		v := []ClaimVersion{ClaimV3, ClaimV3, ClaimV2}[seed%3]
		tb := New(v)
		alive := map[string]bool{}
		eligible := map[netip.Addr]*Nodes{}
		addrs := consecutive(netip.MustParseAddr("203.0.113.64"), 40)
		node := func() string { return fmt.Sprintf("node%d", rng.IntN(9)) }
		sets := []*Nodes{NewNodes("node0", "node1", "node2", "node3", "node4", "node5", "node6", "node7", "node8").Balance(),
			NewNodes("node1", "node2", "node3", "node5").Balance(), NewNodes("node1", "node2", "node3", "node5")}
		for op := range 400 {
			switch rng.IntN(5) {
			case 0:
				n := node()
				tb.NodeUp(n)
				alive[n] = true
			case 1:
				n := node()
				tb.NodeDown(n)
				delete(alive, n)
			case 2, 3:
				a := addrs[rng.IntN(len(addrs))]
				s := sets[rng.IntN(len(sets))]
				if rng.IntN(4) == 0 {
					s = NewNodes(node(), node()).Balance()
				}
				tb.SetEligible(a, s)
				eligible[a] = s
			case 4:
				a := addrs[rng.IntN(len(addrs))]
				tb.Remove(a)
				delete(eligible, a)
			}
			want := expectedOwners(v, eligible, alive)
			for _, a := range addrs {
				got, _ := tb.Owner(a)
				if got != want[a] {
					t.Fatalf("seed %d (v%d) op %d: %s owned by %q, want %q", seed, v, op, a, got, want[a])
				}
			}
			for i := range 9 {
				n := fmt.Sprintf("node%d", i)
				got := tb.Owned(n)
				var w []netip.Addr
				for a, o := range want {
					if o == n {
						w = append(w, a)
					}
				}
				slices.SortFunc(got, netip.Addr.Compare)
				slices.SortFunc(w, netip.Addr.Compare)
				if !slices.Equal(got, w) {
					t.Fatalf("seed %d op %d: Owned(%s) = %v, want %v", seed, op, n, got, w)
				}
			}
		}
		for _, a := range addrs {
			tb.Remove(a)
		}
		if len(tb.groups) != 0 || len(tb.dirty) != 0 || len(tb.owned) != 0 {
			t.Fatalf("seed %d: an empty table still holds %d groups, %d dirty, %d owners", seed, len(tb.groups), len(tb.dirty), len(tb.owned))
		}
	}
}

// expectedOwners works out every owner from scratch: per distinct set,
// Balanced over its alive nodes when it is balanced and v places, else
// Winner.
func expectedOwners(v ClaimVersion, eligible map[netip.Addr]*Nodes, alive map[string]bool) map[netip.Addr]string {
	bySet := map[string][]netip.Addr{}
	sets := map[string]*Nodes{}
	for a, s := range eligible {
		bySet[s.key] = append(bySet[s.key], a)
		sets[s.key] = s
	}
	out := map[netip.Addr]string{}
	for k, as := range bySet {
		var up []string
		for _, n := range sets[k].names {
			if alive[n] {
				up = append(up, n)
			}
		}
		if sets[k].balanced && v >= ClaimV3 {
			maps.Copy(out, Balanced(v, as, up))
			continue
		}
		for _, a := range as {
			if w := Winner(v, a, up); w != "" {
				out[a] = w
			}
		}
	}
	return out
}

// balanceEvent is one node joining or leaving a set of nodes holding k
// addresses.
type balanceEvent struct {
	before, after []string
	addrs         []netip.Addr
	moved, bound  int
}

// balanceEvents places random address counts over random member sets of
// random names and makes one node leave or join, from fixed seeds.
func balanceEvents(cases int) []balanceEvent {
	var out []balanceEvent
	for seed := range uint64(cases) {
		rng := rand.New(rand.NewPCG(seed, 20))
		n := 2 + rng.IntN(30)
		if seed%10 == 0 {
			n = 2 + rng.IntN(3) // small clusters, the common case
		}
		k := 1 + rng.IntN(12*n)
		if seed%3 == 0 {
			k = n * (1 + rng.IntN(12)) // a multiple: no room to spare
		}
		nodes := nodeNames(rng, n+1)
		addrs := pool(rng, k, seed%2 == 1)
		small, big := nodes[:n], nodes
		before, after := big, small // a leave
		if rng.IntN(2) == 0 {
			before, after = small, big // a join
		}
		m := moves(Balanced(LatestClaim, addrs, before), Balanced(LatestClaim, addrs, after))
		out = append(out, balanceEvent{before: before, after: after, addrs: addrs, moved: m, bound: Capacity(k, n+1)})
	}
	return out
}

// TestBalancedBounds: over random member sets and address counts, no node
// ever holds more than ⌈K/N⌉, and one node joining or leaving moves at
// most 6⌈K/N⌉ addresses (N counting that node): about the bound these
// 2,000 events show (5⌈K/N⌉), a guard against regressions rather than a
// proof. It logs
// how often the ideal, ⌈K/N⌉+1, holds; TestBalancedCounterexample shows
// that it does not always.
func TestBalancedBounds(t *testing.T) {
	events := balanceEvents(2000)
	within, worst := 0, events[0]
	hist := map[int]int{}
	for i, e := range events {
		checkBalance(t, fmt.Sprintf("event %d before", i), Balanced(LatestClaim, e.addrs, e.before), e.addrs, e.before)
		checkBalance(t, fmt.Sprintf("event %d after", i), Balanced(LatestClaim, e.addrs, e.after), e.addrs, e.after)
		if e.moved <= e.bound+1 {
			within++
		}
		hist[(e.moved+e.bound-1)/e.bound]++
		if e.moved*worst.bound > worst.moved*e.bound {
			worst = e
		}
		if e.moved > 6*e.bound {
			t.Errorf("event %d: %d addresses, %d -> %d nodes (%s...): %d moved, more than 6×%d", i, len(e.addrs), len(e.before), len(e.after), e.before[0], e.moved, e.bound)
		}
	}
	t.Logf("%d of %d events move at most ⌈K/N⌉+1; moved/⌈K/N⌉ rounded up: %v; worst: %d addresses, %d -> %d nodes, %d moved, ⌈K/N⌉ = %d",
		within, len(events), hist, len(worst.addrs), len(worst.before), len(worst.after), worst.moved, worst.bound)
}

// TestBalancedCounterexample: the ideal bound, ⌈K/N⌉+1 moves per event,
// does not hold for this placement; this event, found by
// TestBalancedBounds' cases, moves more. README.md explains why no
// placement that depends on the members alone can always meet it.
func TestBalancedCounterexample(t *testing.T) {
	for _, e := range balanceEvents(2000) {
		if e.moved > e.bound+1 {
			t.Logf("%d addresses from %s, %d -> %d nodes (%v -> %v): %d moved, ⌈K/N⌉+1 = %d", len(e.addrs), e.addrs[0], len(e.before), len(e.after), e.before, e.after, e.moved, e.bound+1)
			return
		}
	}
	t.Fatal("every event meets ⌈K/N⌉+1; README.md and TestBalancedBounds say otherwise")
}

// TestBalancedKeepsHashWhenItFits: where the hash ranking already keeps
// every node within ⌊K/N⌋ but at most K mod N of them, which hold
// ⌈K/N⌉, balanced placement gives the same owners (the hash assignment is
// then the one stable assignment), so balancing moves an address off its
// best node only when that node is over the limit.
func TestBalancedKeepsHashWhenItFits(t *testing.T) {
	fits := 0
	for seed := range uint64(400) {
		rng := rand.New(rand.NewPCG(seed, 31))
		n := 2 + rng.IntN(6)
		nodes := nodeNames(rng, n)
		addrs := pool(rng, 1+rng.IntN(3*n), seed%2 == 1)
		count := map[string]int{}
		for _, a := range addrs {
			count[Winner(LatestClaim, a, nodes)]++
		}
		over := 0
		for _, c := range count {
			if c > len(addrs)/n {
				over++
			}
		}
		if slices.Max(slices.Collect(maps.Values(count))) > Capacity(len(addrs), n) || over > len(addrs)%n {
			continue
		}
		fits++
		got := Balanced(LatestClaim, addrs, nodes)
		for _, a := range addrs {
			if w := Winner(LatestClaim, a, nodes); got[a] != w {
				t.Fatalf("seed %d: the hash ranking fits, yet %s is placed on %s, not %s", seed, a, got[a], w)
			}
		}
	}
	if fits < 20 {
		t.Fatalf("only %d cases where the hash ranking fits; the test proves little", fits)
	}
}

// BenchmarkMembershipChangeBalanced: BenchmarkMembershipChange with the
// set balanced: 500 nodes, 5,000 addresses, one node leaves and comes
// back.
func BenchmarkMembershipChangeBalanced(b *testing.B) {
	tb := New(LatestClaim)
	var nodes []string
	for i := range 500 {
		nodes = append(nodes, fmt.Sprintf("node-%03d", i))
	}
	for _, n := range nodes {
		tb.NodeUp(n)
	}
	all := NewNodes(nodes...).Balance()
	for i := range 5000 {
		tb.SetEligible(netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)}), all)
	}
	tb.Owner(netip.AddrFrom4([4]byte{203, 0, 0, 0}))
	b.ReportAllocs()
	for b.Loop() {
		tb.NodeDown("node-123")
		tb.NodeUp("node-123")
	}
}

// TestBalancedLargeLeave: in a large set with no room to spare (5,000
// addresses on 500 nodes, 10 each), one node leaving moves at most
// 8⌈K/N⌉ addresses. Were every node allowed ⌈K/N⌉, the bound would rise
// from 10 to 11 for all 499 survivors at once and about 400 addresses the
// bound had pushed off their first node would go back to it; the extra
// seats, K mod N of them, keep that to a few.
func TestBalancedLargeLeave(t *testing.T) {
	var nodes []string
	for i := range 500 {
		nodes = append(nodes, fmt.Sprintf("node-%03d", i))
	}
	var addrs []netip.Addr
	for i := range 5000 {
		addrs = append(addrs, netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)}))
	}
	before := Balanced(LatestClaim, addrs, nodes)
	checkBalance(t, "500 nodes", before, addrs, nodes)
	for _, leaver := range []int{0, 123, 499} {
		rest := slices.Delete(slices.Clone(nodes), leaver, leaver+1)
		after := Balanced(LatestClaim, addrs, rest)
		checkBalance(t, "without "+nodes[leaver], after, addrs, rest)
		bound := Capacity(len(addrs), len(nodes))
		if m := moves(before, after); m > 8*bound {
			t.Errorf("%s leaving moves %d addresses, more than 8×%d", nodes[leaver], m, bound)
		} else {
			t.Logf("%s leaving moves %d addresses (⌈K/N⌉ = %d)", nodes[leaver], m, bound)
		}
	}
}
