package election

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// owner computes from scratch what a Table of version v must agree with.
func owner(v ClaimVersion, addr netip.Addr, eligible []string, alive map[string]bool) string {
	var up []string
	for _, n := range eligible {
		if alive[n] {
			up = append(up, n)
		}
	}
	return Winner(v, addr, up)
}

func TestClaimIsStable(t *testing.T) {
	// Claims are a protocol between the speakers of one cluster: every
	// speaker, whatever its machine or Go version, must compute the same
	// values, so they are pinned here. Changing a version's values moves
	// addresses during a rolling upgrade and gives them two owners; a new
	// way of computing claims is a new ClaimVersion.
	for _, tt := range []struct {
		v    ClaimVersion
		node string
		addr string
		want uint64
	}{
		{ClaimV1, "node1", "203.0.113.7", 0x456e1726000bb575},
		{ClaimV1, "node2", "2001:db8::7", 0x7d0be6d2ae6306e4},
		{ClaimV2, "node1", "203.0.113.7", 0x4001af6c3b9255a3},
		{ClaimV2, "node2", "2001:db8::7", 0x211e992b497c9d42},
	} {
		if got := tt.v.Claim(tt.node, netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("v%d Claim(%s, %s) = %#x, want %#x", tt.v, tt.node, tt.addr, got, tt.want)
		}
	}
	a := netip.MustParseAddr("203.0.113.7")
	for _, v := range []ClaimVersion{ClaimV1, ClaimV2} {
		if v.Claim("node1", a) == v.Claim("node2", a) || v.Claim("node1", a) == v.Claim("node1", a.Next()) {
			t.Fatalf("v%d Claim ignores its inputs", v)
		}
	}
}

func TestParseClaimVersion(t *testing.T) {
	for n := -1; n <= int(LatestClaim)+1; n++ {
		v, err := ParseClaimVersion(n)
		if valid := n >= 1 && n <= int(LatestClaim); valid != (err == nil) || (valid && int(v) != n) {
			t.Errorf("ParseClaimVersion(%d) = %d, %v", n, v, err)
		}
	}
}

// TestAgreed: a cluster ranks with the oldest version any alive speaker
// speaks, so that during a rolling upgrade old and new speakers rank
// alike; a number below 1 (no metadata: a release before versions) counts
// as version 1.
func TestAgreed(t *testing.T) {
	for _, tt := range []struct {
		in   []ClaimVersion
		want ClaimVersion
	}{
		{nil, LatestClaim},
		{[]ClaimVersion{ClaimV2, ClaimV2}, ClaimV2},
		{[]ClaimVersion{ClaimV2, ClaimV1, ClaimV2}, ClaimV1},
		{[]ClaimVersion{ClaimV2, 0}, ClaimV1},
		{[]ClaimVersion{ClaimV2, 9}, ClaimV2}, // a newer speaker adapts to us
	} {
		if got := Agreed(tt.in...); got != tt.want {
			t.Errorf("Agreed(%v) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

// TestMixedVersionsAgree: speakers that speak different versions build
// their tables with the agreed one and name the same owner for every
// address, whoever of them is alive; a speaker ranking with its own
// newest version instead would disagree (the test's premise).
func TestMixedVersionsAgree(t *testing.T) {
	nodes := []string{"worker-a", "worker-b", "worker-c"}
	newest := map[string]ClaimVersion{"worker-a": ClaimV1, "worker-b": ClaimV2, "worker-c": ClaimV2}
	addrs := consecutive(netip.MustParseAddr("203.0.113.64"), 30)
	for _, alive := range [][]string{nodes, nodes[:2], nodes[1:]} {
		var vs []ClaimVersion
		for _, n := range alive {
			vs = append(vs, newest[n])
		}
		agreed := Agreed(vs...)
		tables := map[string]*Table{}
		for _, n := range alive {
			tb := New(agreed)
			for _, a := range addrs {
				tb.SetEligible(a, NewNodes(nodes...))
			}
			for _, m := range alive {
				tb.NodeUp(m)
			}
			tables[n] = tb
		}
		disagree := 0
		for _, a := range addrs {
			want, _ := tables[alive[0]].Owner(a)
			for n, tb := range tables {
				if got, _ := tb.Owner(a); got != want {
					t.Errorf("alive %v: %s and %s name different owners of %s: %q, %q", alive, alive[0], n, a, want, got)
				}
			}
			if Winner(ClaimV1, a, alive) != Winner(ClaimV2, a, alive) {
				disagree++
			}
		}
		if disagree == 0 {
			t.Errorf("alive %v: versions 1 and 2 agree on all %d addresses; the test proves nothing", alive, len(addrs))
		}
	}
}

func consecutive(from netip.Addr, n int) []netip.Addr {
	out := make([]netip.Addr, n)
	for i := range out {
		out[i] = from
		from = from.Next()
	}
	return out
}

func TestSteps(t *testing.T) {
	tb := New(LatestClaim)
	a := netip.MustParseAddr("203.0.113.64")
	nodes := []string{"node1", "node2", "node3"}
	alive := map[string]bool{}
	check := func(step string) {
		t.Helper()
		got, _ := tb.Owner(a)
		if want := owner(tb.Version(), a, nodes, alive); got != want {
			t.Fatalf("%s: owner %q, want %q", step, got, want)
		}
	}
	tb.SetEligible(a, NewNodes(nodes...))
	check("nobody alive")
	for _, n := range nodes {
		tb.NodeUp(n)
		alive[n] = true
		check("up " + n)
	}
	first, _ := tb.Owner(a)
	if changed := tb.NodeDown(first); !slices.Equal(changed, []netip.Addr{a}) {
		t.Fatalf("the owner leaving must re-elect its address, got %v", changed)
	}
	delete(alive, first)
	check("owner down")
	second, _ := tb.Owner(a)
	var other string
	for _, n := range nodes {
		if n != first && n != second {
			other = n
		}
	}
	if changed := tb.NodeDown(other); len(changed) != 0 {
		t.Fatalf("a node that owned nothing leaving changed %v", changed)
	}
	delete(alive, other)
	check("non-owner down")
	tb.SetEligible(a, NewNodes(other))
	nodes = []string{other}
	check("only a dead node eligible")
	if _, ok := tb.Owner(a); ok {
		t.Fatal("a dead node owns the address")
	}
}

// TestRandomOrder: after any sequence of joins, leaves and eligibility
// changes, every owner equals the from-scratch answer.
func TestRandomOrder(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		tb := New(ClaimVersion(1 + seed%2)) // both versions
		alive := map[string]bool{}
		eligible := map[netip.Addr][]string{}
		var addrs []netip.Addr
		for i := range 15 {
			addrs = append(addrs, netip.AddrFrom4([4]byte{203, 0, 113, byte(64 + i)}),
				netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 0x64, 15: byte(i)}))
		}
		node := func() string { return fmt.Sprintf("node%d", rng.IntN(8)) }
		for op := range 2000 {
			switch rng.IntN(4) {
			case 0:
				n := node()
				tb.NodeUp(n)
				alive[n] = true
			case 1:
				n := node()
				tb.NodeDown(n)
				delete(alive, n)
			case 2:
				a := addrs[rng.IntN(len(addrs))]
				var el []string
				for range rng.IntN(5) {
					el = append(el, node())
				}
				tb.SetEligible(a, NewNodes(el...))
				eligible[a] = el
			case 3:
				a := addrs[rng.IntN(len(addrs))]
				tb.Remove(a)
				delete(eligible, a)
			}
			owned := map[string][]netip.Addr{}
			for _, a := range addrs {
				got, _ := tb.Owner(a)
				if want := owner(tb.Version(), a, eligible[a], alive); got != want {
					t.Fatalf("seed %d op %d: %s owned by %q, want %q", seed, op, a, got, want)
				}
				if got != "" {
					owned[got] = append(owned[got], a)
				}
			}
			for i := range 8 {
				n := fmt.Sprintf("node%d", i)
				got := tb.Owned(n)
				slices.SortFunc(got, netip.Addr.Compare)
				slices.SortFunc(owned[n], netip.Addr.Compare)
				if !slices.Equal(got, owned[n]) {
					t.Fatalf("seed %d op %d: Owned(%s) = %v, want %v", seed, op, n, got, owned[n])
				}
			}
		}
		for _, a := range addrs {
			tb.Remove(a)
		}
		if len(tb.groups) != 0 || len(tb.nodeGroups) != 0 || len(tb.owned) != 0 {
			t.Fatalf("seed %d: an empty table still indexes %d groups, %d nodes' groups, %d owners", seed, len(tb.groups), len(tb.nodeGroups), len(tb.owned))
		}
	}
}

// BenchmarkMembershipChange: 500 nodes, 5,000 addresses each eligible on
// every node; one node leaves and comes back.
func BenchmarkMembershipChange(b *testing.B) {
	tb := New(LatestClaim)
	var nodes []string
	for i := range 500 {
		nodes = append(nodes, fmt.Sprintf("node-%03d", i))
	}
	all := NewNodes(nodes...)
	for i := range 5000 {
		tb.SetEligible(netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)}), all)
	}
	for _, n := range nodes {
		tb.NodeUp(n)
	}
	b.ReportAllocs()
	for b.Loop() {
		tb.NodeDown("node-123")
		tb.NodeUp("node-123")
	}
}

// BenchmarkResync: the speaker's full resync after a Service or node
// change sets every address's eligible set again; 5,000 addresses, most
// sharing their pool's set of 500 nodes, one in ten with a set of its own
// (externalTrafficPolicy Local). The sets are built anew each time, as the
// planner does.
func BenchmarkResync(b *testing.B) {
	var nodes []string
	for i := range 500 {
		nodes = append(nodes, fmt.Sprintf("node-%03d", i))
	}
	sets := func() []*Nodes {
		all := NewNodes(nodes...)
		out := make([]*Nodes, 5000)
		for i := range out {
			out[i] = all
			if i%10 == 0 {
				out[i] = NewNodes(nodes[i%500], nodes[(i+1)%500])
			}
		}
		return out
	}
	tb := New(LatestClaim)
	for _, n := range nodes {
		tb.NodeUp(n)
	}
	for i, s := range sets() {
		tb.SetEligible(netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)}), s)
	}
	b.ReportAllocs()
	for b.Loop() {
		for i, s := range sets() {
			tb.SetEligible(netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)}), s)
		}
	}
}
