package allocator

import (
	"fmt"
	"math/big"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/ironlb/ironlb/internal/iprange"
)

func excl(why string, entries ...string) []Exclusion {
	var out []Exclusion
	for _, e := range entries {
		r, err := iprange.Parse(e)
		if err != nil {
			panic(err)
		}
		out = append(out, Exclusion{Range: r, Why: why})
	}
	return out
}

func TestSubtract(t *testing.T) {
	ex := newExclusions(append(excl("x", "203.0.113.2", "203.0.113.4-203.0.113.5", "203.0.113.3", "255.255.255.255", "2001:db8::/127"),
		excl("y", "203.0.113.5-203.0.113.6")...)).merged
	if got := fmt.Sprint(ex); got != "[203.0.113.2-203.0.113.6 255.255.255.255 2001:db8::/127]" {
		t.Fatalf("merged exclusions: %s", got)
	}
	for in, want := range map[string]string{
		"203.0.113.0/29":                  "[203.0.113.0/31 203.0.113.7]",
		"203.0.113.2-203.0.113.6":         "[]",
		"203.0.113.6-203.0.113.9":         "[203.0.113.7-203.0.113.9]",
		"198.51.100.0/30":                 "[198.51.100.0/30]",
		"255.255.255.250-255.255.255.255": "[255.255.255.250-255.255.255.254]",
		"2001:db8::/126":                  "[2001:db8::2/127]",
	} {
		r, _ := iprange.Parse(in)
		var parts []string
		for _, p := range subtract(r, ex) {
			parts = append(parts, p.String())
		}
		if got := "[" + strings.Join(parts, " ") + "]"; got != want {
			t.Errorf("%s minus exclusions = %s, want %s", in, got, want)
		}
	}
}

// TestExclusions walks one pool through exclusions that appear while
// addresses are held and go away again.
func TestExclusions(t *testing.T) {
	a := New(cfgOf(t, poolSpec{name: "p", addrs: []string{"203.0.113.0/29"}}))
	node := excl(`the InternalIP of Node "n1"`, "203.0.113.2")
	cidr := excl("in the Service CIDR 203.0.113.4/31", "203.0.113.4/31")
	a.SetExclusions(append(slices.Clone(node), cidr...))
	counts := func(want string) {
		t.Helper()
		c, _ := a.Counts("p", IPv4)
		if got := fmt.Sprintf("%v/%v/%v", c.Total, c.Assigned, c.Available); got != want {
			t.Errorf("counts (total/assigned/available) = %s, want %s", got, want)
		}
	}
	counts("5/0/5")

	var got []string
	for i := range 6 {
		res := a.Assign(v4(fmt.Sprintf("ns/s%d", i)))
		if i == 5 {
			if res.Err == nil || res.Err.Reason != ReasonPoolExhausted {
				t.Fatalf("sixth Service: %+v, want PoolExhausted", res)
			}
			continue
		}
		got = append(got, res.IPs[0].String())
	}
	if want := []string{"203.0.113.0", "203.0.113.1", "203.0.113.3", "203.0.113.6", "203.0.113.7"}; !slices.Equal(got, want) {
		t.Fatalf("handed out %v, want %v", got, want)
	}
	counts("5/5/0")

	// Asking for an excluded address by name is refused with the reason.
	req := v4("ns/asks")
	req.IPs = addrs("203.0.113.2")
	res := a.Assign(req)
	if res.Err == nil || res.Err.Reason != ReasonRequestedIPUnavailable || !strings.Contains(res.Err.Message, `the InternalIP of Node "n1"`) {
		t.Fatalf("asking for a Node's address: %+v", res.Err)
	}

	// An exclusion that appears under a held address leaves it held, and
	// the counts cover only what may be handed out.
	a.SetExclusions(append(append(slices.Clone(node), cidr...), excl(`the ExternalIP of Node "n2"`, "203.0.113.0")...))
	if res := a.Assign(v4("ns/s0")); res.Err != nil || res.IPs[0].String() != "203.0.113.0" {
		t.Fatalf("the holder of a newly excluded address: %+v", res)
	}
	if why := a.Excluded(netip.MustParseAddr("203.0.113.0")); why != `the ExternalIP of Node "n2"` {
		t.Errorf("Excluded = %q", why)
	}
	counts("4/4/0")

	// Released, it is not handed out again while excluded...
	a.Release("ns/s0")
	if res := a.Assign(v4("ns/s9")); res.Err == nil {
		t.Fatalf("an excluded address was handed out: %v", res.IPs)
	}
	// ...and is once the exclusion is gone.
	a.SetExclusions(node)
	counts("7/4/3")
	for range 3 {
		if res := a.Assign(v4(fmt.Sprintf("ns/n%d", len(got)))); res.Err != nil {
			t.Fatalf("after the exclusion went: %+v", res.Err)
		} else {
			got = append(got, res.IPs[0].String())
		}
	}
	if !slices.Contains(got, "203.0.113.0") || !slices.Contains(got, "203.0.113.4") || !slices.Contains(got, "203.0.113.5") || slices.Contains(got[5:], "203.0.113.2") {
		t.Errorf("handed out %v", got)
	}
	counts("7/7/0")
}

// TestExclusionsRandom runs random steps (assign, release, change the
// exclusions) and checks after each that no address was newly handed out
// while excluded and that the counts are what counting from scratch gives.
func TestExclusionsRandom(t *testing.T) {
	for seed := range uint64(30) {
		rng := rand.New(rand.NewPCG(seed, 1))
		a := New(cfgOf(t, poolSpec{name: "p", addrs: []string{"203.0.113.0/28", "2001:db8::/124"}, buggy: seed%2 == 0}))
		held := map[string][]netip.Addr{}
		var ex []Exclusion
		for step := range 200 {
			switch rng.IntN(4) {
			case 0:
				ex = nil
				for range rng.IntN(4) {
					first := netip.AddrFrom4([4]byte{203, 0, 113, byte(rng.IntN(20))})
					last := first
					for range rng.IntN(4) {
						last = last.Next()
					}
					ex = append(ex, Exclusion{Range: iprange.Range{First: first, Last: last}, Why: "x"})
				}
				if rng.IntN(2) == 0 {
					ex = append(ex, excl("y", "2001:db8::3-2001:db8::6")...)
				}
				a.SetExclusions(ex)
			case 1:
				key := fmt.Sprintf("s%d", rng.IntN(20))
				a.Release(key)
				delete(held, key)
			default:
				key := fmt.Sprintf("s%d", rng.IntN(20))
				req := Request{Key: key, Namespace: "default", Families: []Family{IPv4, IPv6}, Policy: PreferDualStack}
				res := a.Assign(req)
				for _, ip := range res.IPs {
					if !slices.Contains(held[key], ip) && a.excluded(ip) {
						t.Fatalf("seed %d step %d: %s newly handed out although excluded", seed, step, ip)
					}
				}
				held[key] = res.IPs
			}
			for _, f := range []Family{IPv4, IPv6} {
				c, ok := a.Counts("p", f)
				total, assigned := bruteCounts(a, f, held, seed%2 == 0)
				if !ok {
					c = Counts{Total: new(big.Int), Assigned: new(big.Int), Available: new(big.Int)}
				}
				if c.Total.Int64() != total || c.Assigned.Int64() != assigned || c.Available.Int64() != total-assigned {
					t.Fatalf("seed %d step %d %s: counts %v/%v/%v, from scratch %d/%d/%d", seed, step, f, c.Total, c.Assigned, c.Available, total, assigned, total-assigned)
				}
			}
		}
	}
}

// bruteCounts counts a family of pool p address by address.
func bruteCounts(a *Allocator, f Family, held map[string][]netip.Addr, avoidBuggy bool) (total, assigned int64) {
	first, last := netip.MustParseAddr("203.0.113.0"), netip.MustParseAddr("203.0.113.15")
	if f == IPv6 {
		first, last = netip.MustParseAddr("2001:db8::"), netip.MustParseAddr("2001:db8::f")
	}
	taken := map[netip.Addr]bool{}
	for _, ips := range held {
		for _, ip := range ips {
			taken[ip] = true
		}
	}
	for ip := first; ip.Compare(last) <= 0; ip = ip.Next() {
		if a.excluded(ip) || (avoidBuggy && buggy(ip)) {
			continue
		}
		total++
		if taken[ip] {
			assigned++
		}
	}
	return total, assigned
}
