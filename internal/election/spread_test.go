package election

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

// spreadCase is a cluster and a pool: every node eligible for every
// address, all alive.
type spreadCase struct {
	nodes []string
	pool  []netip.Addr
}

// nodeNames returns k distinct names in one of the shapes real clusters
// use.
func nodeNames(rng *rand.Rand, k int) []string {
	suffix := func(n int) string {
		const chars = "bcdfghjklmnpqrstvwxz2456789"
		var b strings.Builder
		for range n {
			b.WriteByte(chars[rng.IntN(len(chars))])
		}
		return b.String()
	}
	shapes := []func(i int) string{
		func(i int) string { return fmt.Sprintf("node%d", i+1) },
		func(i int) string { return fmt.Sprintf("worker-%d", i) },
		func(i int) string { return fmt.Sprintf("k8s-worker-%02d", i+1) },
		func(i int) string { return fmt.Sprintf("rack%d-srv%02d", i/8+1, i%8+1) },
		func(i int) string { return fmt.Sprintf("compute-%03d.dc1.example.com", i+1) },
		func(i int) string { return fmt.Sprintf("ip-198-51-100-%d.ec2.internal", 10+i) },
		// Cluster API: a machine deployment's hash, then a random suffix.
		func(int) string { return "prod-md-0-" + suffix(5) + "-" + suffix(5) },
	}
	shape := shapes[rng.IntN(len(shapes))]
	seen := map[string]bool{}
	var out []string
	for i := 0; len(out) < k; i++ {
		if n := shape(i); !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// pool returns n consecutive addresses from a random start: IPv4 inside
// the benchmarking range 198.18.0.0/15, IPv6 inside 2001:db8::/32; half
// the pools start on a boundary (a .0 or ::), as most do.
func pool(rng *rand.Rand, n int, v6 bool) []netip.Addr {
	var start netip.Addr
	if v6 {
		b := [16]byte{0x20, 0x01, 0x0d, 0xb8}
		for i := 4; i < 16; i++ {
			b[i] = byte(rng.IntN(256))
		}
		if rng.IntN(2) == 0 {
			clear(b[12:])
		}
		start = netip.AddrFrom16(b)
	} else {
		off := rng.IntN(1<<17 - n)
		if rng.IntN(2) == 0 {
			off &^= 0xff
		}
		start = netip.AddrFrom4([4]byte{198, 18 + byte(off>>16), byte(off >> 8), byte(off)})
	}
	return consecutive(start, n)
}

// spreadCases: clusters of 2-50 nodes, pools of 10-5,000 addresses (log
// uniform, so small and large pools both appear), both families, from
// fixed seeds.
func spreadCases() []spreadCase {
	var out []spreadCase
	for seed := range uint64(80) {
		rng := rand.New(rand.NewPCG(seed, 22))
		k := 2 + rng.IntN(49)
		n := int(math.Round(10 * math.Pow(500, rng.Float64())))
		if seed < 4 { // the extremes, always
			k, n = []int{2, 50, 3, 50}[seed], []int{5000, 5000, 10, 10}[seed]
		}
		out = append(out, spreadCase{nodes: nodeNames(rng, k), pool: pool(rng, n, seed%2 == 1)})
	}
	return out
}

// chiSquareCritical approximates the value a chi-square statistic with df
// degrees of freedom exceeds with probability p = 1e-9 (Wilson-Hilferty).
func chiSquareCritical(df int) float64 {
	const z = 5.998 // the standard normal's upper 1e-9 quantile
	d := float64(df)
	c := 1 - 2/(9*d) + z*math.Sqrt(2/(9*d))
	return d * c * c * c
}

// spreadProblems checks that v spreads every case's pool over its nodes
// as a random assignment would, and returns what it does not.
//
// Under a random assignment a node's count is Binomial(n, 1/k), so:
//   - by Hoeffding's inequality, P(count >= n/k + t) <= exp(-2t²/n); with
//     t = sqrt(n/2 · ln(k·cases/δ)) and a union bound over every node of
//     every case, some node exceeds its fair share by t with probability
//     at most δ = 1e-9;
//   - where every node expects at least 5 addresses, Pearson's statistic
//     Σ(count - n/k)²/(n/k) follows a chi-square law with k-1 degrees of
//     freedom, and so does the sum over cases with the degrees added up;
//     each case's and the sum's statistic must stay under the value
//     exceeded with probability 1e-9.
//
// A claim that spreads like a random assignment fails this with
// probability about 1e-8 for a given set of seeds; the seeds are fixed, so
// the answer does not change from run to run.
func spreadProblems(v ClaimVersion) []string {
	const delta = 1e-9
	cases := spreadCases()
	var problems []string
	sumChi, sumDF := 0.0, 0
	for i, c := range cases {
		k, n := len(c.nodes), len(c.pool)
		count := map[string]int{}
		for _, a := range c.pool {
			count[Winner(v, a, c.nodes)]++
		}
		fair := float64(n) / float64(k)
		bound := fair + math.Sqrt(float64(n)/2*math.Log(float64(k*len(cases))/delta))
		chi := 0.0
		for _, name := range c.nodes {
			got := float64(count[name])
			if got > bound {
				problems = append(problems, fmt.Sprintf("case %d (%d nodes like %s, %d addresses from %s): %s owns %d, fair share %.1f, bound %.1f",
					i, k, c.nodes[0], n, c.pool[0], name, count[name], fair, bound))
			}
			chi += (got - fair) * (got - fair) / fair
		}
		if fair >= 5 {
			if crit := chiSquareCritical(k - 1); chi > crit {
				problems = append(problems, fmt.Sprintf("case %d (%d nodes like %s, %d addresses from %s): chi-square %.0f over %d degrees of freedom, more than %.0f",
					i, k, c.nodes[0], n, c.pool[0], chi, k-1, crit))
			}
			sumChi += chi
			sumDF += k - 1
		}
	}
	if crit := chiSquareCritical(sumDF); sumChi > crit {
		problems = append(problems, fmt.Sprintf("all cases: chi-square %.0f over %d degrees of freedom, more than %.0f", sumChi, sumDF, crit))
	}
	return problems
}

// TestSpread: the addresses of any pool spread over any set of nodes like
// a random assignment, with the newest claim.
func TestSpread(t *testing.T) {
	for _, p := range spreadProblems(LatestClaim) {
		t.Error(p)
	}
}

// TestSpreadFailsOnV1: the same check fails on the claim every release
// before versions used (one node owns a whole pool), so it can fail.
func TestSpreadFailsOnV1(t *testing.T) {
	problems := spreadProblems(ClaimV1)
	if len(problems) < len(spreadCases())/2 {
		t.Fatalf("ClaimV1 passes the spread check in most cases (%d problems): %v", len(problems), problems)
	}
	t.Logf("ClaimV1: %d problems, for instance %s", len(problems), problems[0])
}

// TestIssueExamples: the pools the issue measured, 30 consecutive
// addresses on three nodes, where ClaimV1 gives all 30 to one node.
func TestIssueExamples(t *testing.T) {
	for _, from := range []string{"198.51.100.0", "203.0.113.64", "2001:db8:ff64::"} {
		for _, nodes := range [][]string{{"n1", "n2", "n3"}, {"node1", "node2", "node3"}} {
			addrs := consecutive(netip.MustParseAddr(from), 30)
			count := map[ClaimVersion]map[string]int{ClaimV1: {}, ClaimV2: {}}
			for v, m := range count {
				for _, a := range addrs {
					m[Winner(v, a, nodes)]++
				}
			}
			if len(count[ClaimV1]) != 1 {
				t.Errorf("from %s on %v: ClaimV1 gave %v; the issue saw one node own all", from, nodes, count[ClaimV1])
			}
			for _, n := range nodes {
				if c := count[ClaimV2][n]; c < 3 {
					t.Errorf("from %s on %v: ClaimV2 gave %s %d of 30 (%v)", from, nodes, n, c, count[ClaimV2])
				}
			}
		}
	}
}
