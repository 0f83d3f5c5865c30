package allocator

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
)

// poolSpec is a compact IPPool for tests: name, addresses and options.
type poolSpec struct {
	name      string
	addrs     []string
	noAuto    bool
	buggy     bool
	priority  *int32
	namespace string
	across    bool // allowSharingAcrossNamespaces
}

func cfgOf(t testing.TB, specs ...poolSpec) *config.Config {
	t.Helper()
	var snap config.Snapshot
	for _, p := range specs {
		pool := v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: p.name}}
		for _, a := range p.addrs {
			pool.Spec.Addresses = append(pool.Spec.Addresses, v1alpha1.AddressRange(a))
		}
		auto := !p.noAuto
		pool.Spec.AutoAssign = &auto
		pool.Spec.AvoidBuggyIPs = p.buggy
		pool.Spec.AllowSharingAcrossNamespaces = p.across
		if p.priority != nil || p.namespace != "" {
			pool.Spec.AllocateTo = &v1alpha1.AllocateTo{Priority: p.priority}
			if p.namespace != "" {
				pool.Spec.AllocateTo.Namespaces = []string{p.namespace}
			}
		}
		snap.IPPools = append(snap.IPPools, pool)
	}
	cfg, problems := config.Resolve(snap)
	if len(problems) > 0 {
		t.Fatal(problems.Err())
	}
	return cfg
}

func v4(key string) Request {
	return Request{Key: key, Namespace: "default", Families: []Family{IPv4}}
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// step is one operation on the allocator and what it must give.
type step struct {
	name    string
	assign  *Request
	release string
	config  []poolSpec

	wantIPs     []string
	wantReason  Reason
	wantOutside []string
	wantLost    []Loss
	wantLegacy  []string
	// wantMessage, when set, is the exact message of the error.
	wantMessage string
}

func with(r Request, f func(*Request)) *Request { f(&r); return &r }

func run(t *testing.T, a *Allocator, steps []step) {
	t.Helper()
	for i, st := range steps {
		switch {
		case st.config != nil:
			a.SetConfig(cfgOf(t, st.config...))
		case st.release != "":
			a.Release(st.release)
		case st.assign != nil:
			res := a.Assign(*st.assign)
			got := struct {
				IPs     []netip.Addr
				Reason  Reason
				Message string
				Outside []netip.Addr
				Lost    []Loss
				Legacy  []netip.Addr
			}{IPs: res.IPs, Outside: res.Outside, Lost: res.Lost, Legacy: res.Legacy}
			if res.Err != nil {
				got.Reason = res.Err.Reason
				if st.wantMessage != "" {
					got.Message = res.Err.Message
				}
			}
			want := got
			want.IPs, want.Reason, want.Outside, want.Lost = addrs(st.wantIPs...), st.wantReason, addrs(st.wantOutside...), st.wantLost
			want.Legacy, want.Message = addrs(st.wantLegacy...), st.wantMessage
			if diff := cmp.Diff(want, got, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
				t.Fatalf("step %d (%s): Assign(%s) (-want +got):\n%s\nerror: %v", i, st.name, st.assign.Key, diff, res.Err)
			}
		}
	}
}

func prio(n int32) *int32 { return &n }

func TestAssignSteps(t *testing.T) {
	tests := []struct {
		name  string
		pools []poolSpec
		steps []step
	}{
		{
			name:  "fresh addresses in order, exhaustion, released address reused last",
			pools: []poolSpec{{name: "p", addrs: []string{"203.0.113.0/30"}}},
			steps: []step{
				{name: "a", assign: ptr(v4("ns/a")), wantIPs: []string{"203.0.113.0"}},
				{name: "b", assign: ptr(v4("ns/b")), wantIPs: []string{"203.0.113.1"}},
				{name: "a again is a no-op", assign: ptr(v4("ns/a")), wantIPs: []string{"203.0.113.0"}},
				{name: "release a", release: "ns/a"},
				{name: "c gets a fresh address, not a's", assign: ptr(v4("ns/c")), wantIPs: []string{"203.0.113.2"}},
				{name: "d", assign: ptr(v4("ns/d")), wantIPs: []string{"203.0.113.3"}},
				{name: "e reuses a's address now that nothing fresh is left", assign: ptr(v4("ns/e")), wantIPs: []string{"203.0.113.0"}},
				{name: "f finds the pool exhausted", assign: ptr(v4("ns/f")), wantReason: ReasonPoolExhausted},
			},
		},
		{
			name:  "avoidBuggyIPs skips .0 and .255",
			pools: []poolSpec{{name: "p", addrs: []string{"203.0.113.254-203.0.114.1"}, buggy: true}},
			steps: []step{
				{assign: ptr(v4("ns/a")), wantIPs: []string{"203.0.113.254"}},
				{assign: ptr(v4("ns/b")), wantIPs: []string{"203.0.114.1"}},
				{assign: ptr(v4("ns/c")), wantReason: ReasonPoolExhausted},
				{name: "asking for .255 by name", assign: with(v4("ns/d"), func(r *Request) { r.IPs = addrs("203.0.113.255") }), wantReason: ReasonRequestedIPUnavailable},
			},
		},
		{
			name: "priority, autoAssign and namespace restrictions",
			pools: []poolSpec{
				{name: "late", addrs: []string{"203.0.113.0/31"}},
				{name: "early", addrs: []string{"203.0.113.10/31"}, priority: prio(1)},
				{name: "manual", addrs: []string{"203.0.113.20/31"}, noAuto: true},
				{name: "web-only", addrs: []string{"203.0.113.30/31"}, priority: prio(0), namespace: "web"},
			},
			steps: []step{
				{name: "priority 1 first", assign: ptr(v4("ns/a")), wantIPs: []string{"203.0.113.10"}},
				{name: "web namespace gets its own pool", assign: with(v4("web/a"), func(r *Request) { r.Namespace = "web" }), wantIPs: []string{"203.0.113.30"}},
				{assign: ptr(v4("ns/b")), wantIPs: []string{"203.0.113.11"}},
				{name: "then pools without priority", assign: ptr(v4("ns/c")), wantIPs: []string{"203.0.113.0"}},
				{name: "manual pool by name", assign: with(v4("ns/d"), func(r *Request) { r.Pool = "manual" }), wantIPs: []string{"203.0.113.20"}},
				{name: "unknown pool", assign: with(v4("ns/e"), func(r *Request) { r.Pool = "nope" }), wantReason: ReasonUnknownPool},
				{name: "web-only refuses other namespaces by name", assign: with(v4("ns/f"), func(r *Request) { r.Pool = "web-only" }), wantReason: ReasonNoMatchingPool},
				{name: "no IPv6 anywhere", assign: &Request{Key: "ns/g", Namespace: "ns", Families: []Family{IPv6}}, wantReason: ReasonNoMatchingPool},
			},
		},
		{
			name:  "requested addresses",
			pools: []poolSpec{{name: "p", addrs: []string{"203.0.113.0/29", "2001:db8::/126"}}},
			steps: []step{
				{assign: with(v4("ns/a"), func(r *Request) { r.IPs = addrs("203.0.113.5") }), wantIPs: []string{"203.0.113.5"}},
				{name: "in use", assign: with(v4("ns/b"), func(r *Request) { r.IPs = addrs("203.0.113.5") }), wantReason: ReasonRequestedIPUnavailable},
				{name: "outside every pool", assign: with(v4("ns/b"), func(r *Request) { r.IPs = addrs("198.51.100.7") }), wantReason: ReasonRequestedIPNotInAnyPool},
				{name: "wrong family", assign: with(v4("ns/b"), func(r *Request) { r.IPs = addrs("2001:db8::1") }), wantReason: ReasonInvalidRequest},
				{name: "the cursor skips the requested address", assign: ptr(v4("ns/c")), wantIPs: []string{"203.0.113.0"}},
				{name: "a moves to another address by asking", assign: with(v4("ns/a"), func(r *Request) { r.IPs = addrs("203.0.113.6") }), wantIPs: []string{"203.0.113.6"}},
				{name: "an unavailable request keeps what a has", assign: with(v4("ns/a"), func(r *Request) { r.IPs = addrs("203.0.113.0") }), wantIPs: []string{"203.0.113.6"}, wantReason: ReasonRequestedIPUnavailable},
			},
		},
		{
			name:  "sharing",
			pools: []poolSpec{{name: "p", addrs: []string{"203.0.113.0/30"}}},
			steps: []step{
				{assign: with(v4("ns/http"), func(r *Request) { r.SharingKey = "k"; r.Ports = []Port{{"TCP", 80}} }), wantIPs: []string{"203.0.113.0"}},
				{name: "same key, other port: shares", assign: with(v4("ns/dns"), func(r *Request) { r.SharingKey = "k"; r.Ports = []Port{{"UDP", 53}} }), wantIPs: []string{"203.0.113.0"}},
				{name: "same key, same port: own address", assign: with(v4("ns/http2"), func(r *Request) { r.SharingKey = "k"; r.Ports = []Port{{"TCP", 80}} }), wantIPs: []string{"203.0.113.1"}},
				{name: "asking for a shared address with a colliding port", assign: with(v4("ns/x"), func(r *Request) { r.SharingKey = "k"; r.Ports = []Port{{"UDP", 53}}; r.IPs = addrs("203.0.113.0") }), wantReason: ReasonSharingConflict},
				{name: "asking for it without a key", assign: with(v4("ns/y"), func(r *Request) { r.IPs = addrs("203.0.113.0"); r.Ports = []Port{{"TCP", 443}} }), wantReason: ReasonRequestedIPUnavailable},
				{name: "Local with another selector", assign: with(v4("ns/z"), func(r *Request) {
					r.SharingKey = "k"
					r.Ports = []Port{{"TCP", 443}}
					r.Local, r.Selector = true, "app=z"
					r.IPs = addrs("203.0.113.0")
				}), wantReason: ReasonSharingConflict},
				{name: "releasing one sharer keeps the address for the other", release: "ns/http"},
				{assign: ptr(v4("ns/new")), wantIPs: []string{"203.0.113.2"}},
				{assign: with(v4("ns/dns"), func(r *Request) { r.SharingKey = "k"; r.Ports = []Port{{"UDP", 53}} }), wantIPs: []string{"203.0.113.0"}},
			},
		},
		{
			name: "dual-stack",
			pools: []poolSpec{
				{name: "v4", addrs: []string{"203.0.113.0/30"}},
				{name: "v6", addrs: []string{"2001:db8::/127"}},
			},
			steps: []step{
				{name: "require both", assign: &Request{Key: "ns/a", Families: []Family{IPv6, IPv4}, Policy: RequireDualStack}, wantIPs: []string{"2001:db8::", "203.0.113.0"}},
				{name: "single stack takes the first family", assign: &Request{Key: "ns/b", Families: []Family{IPv6, IPv4}}, wantIPs: []string{"2001:db8::1"}},
				{name: "require both when IPv6 is exhausted: nothing", assign: &Request{Key: "ns/c", Families: []Family{IPv4, IPv6}, Policy: RequireDualStack}, wantReason: ReasonPoolExhausted},
				{name: "asking again", assign: &Request{Key: "ns/c", Families: []Family{IPv4, IPv6}, Policy: RequireDualStack}, wantReason: ReasonPoolExhausted},
				{name: "the IPv4 address c held for a moment was never used: it comes first", assign: ptr(v4("ns/d")), wantIPs: []string{"203.0.113.1"}},
				{name: "then the cursor goes on", assign: ptr(v4("ns/e")), wantIPs: []string{"203.0.113.2"}},
				{name: "prefer both takes what exists", assign: &Request{Key: "ns/f", Families: []Family{IPv4, IPv6}, Policy: PreferDualStack}, wantIPs: []string{"203.0.113.3"}},
			},
		},
		{
			name:  "pool removed and restored, then a pin moves the Service",
			pools: []poolSpec{{name: "old", addrs: []string{"203.0.113.0/30"}}, {name: "new", addrs: []string{"203.0.113.100/30"}, noAuto: true}},
			steps: []step{
				{assign: ptr(v4("ns/a")), wantIPs: []string{"203.0.113.0"}},
				{name: "old goes away", config: []poolSpec{{name: "new", addrs: []string{"203.0.113.100/30"}, noAuto: true}}},
				{name: "a keeps its address, reported outside", assign: ptr(v4("ns/a")), wantIPs: []string{"203.0.113.0"}, wantOutside: []string{"203.0.113.0"}},
				{name: "old comes back", config: []poolSpec{{name: "old", addrs: []string{"203.0.113.0/30"}}, {name: "new", addrs: []string{"203.0.113.100/30"}, noAuto: true}}},
				{name: "nobody else got a's address meanwhile", assign: ptr(v4("ns/b")), wantIPs: []string{"203.0.113.1"}},
				{assign: ptr(v4("ns/a")), wantIPs: []string{"203.0.113.0"}},
				{name: "pinning to new moves a", assign: with(v4("ns/a"), func(r *Request) { r.Pool = "new" }), wantIPs: []string{"203.0.113.100"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run(t, New(cfgOf(t, tt.pools...)), tt.steps)
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestRestart: a new allocator fed the Services' statuses in creation order
// gives every Service its address back; of two claiming one address, the
// first keeps it and the second is moved and told who holds it.
func TestRestart(t *testing.T) {
	cfg := cfgOf(t, poolSpec{name: "p", addrs: []string{"203.0.113.0/29"}})
	a := New(cfg)
	run(t, a, []step{
		{name: "old service first", assign: with(v4("ns/old"), func(r *Request) { r.Current = addrs("203.0.113.3") }), wantIPs: []string{"203.0.113.3"}},
		{name: "a copy claiming the same address", assign: with(v4("ns/copy"), func(r *Request) { r.Current = addrs("203.0.113.3") }),
			wantIPs: []string{"203.0.113.0"}, wantLost: []Loss{{Addr: netip.MustParseAddr("203.0.113.3"), Holder: "ns/old"}}},
		{name: "status no longer matters once known", assign: with(v4("ns/old"), func(r *Request) { r.Current = nil }), wantIPs: []string{"203.0.113.3"}},
	})
}

func TestCounts(t *testing.T) {
	a := New(cfgOf(t, poolSpec{name: "p", addrs: []string{"203.0.113.0/24", "2001:db8::/64"}, buggy: true}))
	a.Assign(v4("ns/a"))
	a.Assign(Request{Key: "ns/b", Families: []Family{IPv6}})
	c4, _ := a.Counts("p", IPv4)
	c6, _ := a.Counts("p", IPv6)
	got := []string{c4.Total.String(), c4.Assigned.String(), c4.Available.String(), c6.Total.String(), c6.Assigned.String(), c6.Available.String()}
	want := []string{"254", "1", "253", "18446744073709551616", "1", "18446744073709551615"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
}

// TestRandomized runs random assignments, releases and pool changes and
// checks the invariants after every operation.
func TestRandomized(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 42))
			poolSets := [][]poolSpec{
				{{name: "a", addrs: []string{"203.0.113.0/28", "2001:db8::/124"}}, {name: "b", addrs: []string{"203.0.113.64/29"}, buggy: true}},
				{{name: "a", addrs: []string{"203.0.113.0/29", "2001:db8::/125"}}, {name: "c", addrs: []string{"203.0.113.128/28"}, noAuto: true}},
				{{name: "a", addrs: []string{"203.0.113.0/27"}, across: true}, {name: "b", addrs: []string{"203.0.113.64/29", "2001:db8::100/125"}}},
			}
			a := New(cfgOf(t, poolSets[0]...))
			for i := range 3000 {
				switch n := rng.IntN(100); {
				case n < 2:
					a.SetConfig(cfgOf(t, poolSets[rng.IntN(len(poolSets))]...))
				case n < 30:
					n := rng.IntN(40)
					key := fmt.Sprintf("%s/s%d", []string{"ns", "other"}[n%2], n)
					before := a.IPs(key)
					a.Release(key)
					for _, ip := range before {
						if slices.Contains(a.Holders(ip), key) {
							t.Fatalf("op %d: %s still holds %s after Release", i, key, ip)
						}
					}
				default:
					req := randomRequest(rng)
					res := a.Assign(req)
					if diff := cmp.Diff(res.IPs, a.IPs(req.Key), cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
						t.Fatalf("op %d: result and state differ (-result +state):\n%s", i, diff)
					}
				}
				checkInvariants(t, a, i)
			}
		})
	}
}

func randomRequest(rng *rand.Rand) Request {
	n := rng.IntN(40)
	ns := []string{"ns", "other"}[n%2] // a Service never changes namespace
	r := Request{Key: fmt.Sprintf("%s/s%d", ns, n), Namespace: ns, NamespaceLabels: labels.Set{}}
	switch rng.IntN(4) {
	case 0:
		r.Families = []Family{IPv6, IPv4}
		r.Policy = FamilyPolicy(rng.IntN(3))
	case 1:
		r.Families = []Family{IPv4, IPv6}
		r.Policy = FamilyPolicy(rng.IntN(3))
	default:
		r.Families = []Family{IPv4}
	}
	if rng.IntN(3) == 0 {
		r.SharingKey = fmt.Sprintf("k%d", rng.IntN(3))
	}
	r.Ports = []Port{{"TCP", int32(80 + rng.IntN(4))}}
	if rng.IntN(4) == 0 {
		r.Local, r.Selector = true, fmt.Sprintf("app=%d", rng.IntN(2))
	}
	switch rng.IntN(10) {
	case 0:
		r.IPs = addrs(fmt.Sprintf("203.0.113.%d", rng.IntN(80)))
	case 1:
		r.Pool = []string{"a", "b", "c", "zz"}[rng.IntN(4)]
	}
	return r
}

func checkInvariants(t *testing.T, a *Allocator, op int) {
	t.Helper()
	held := map[netip.Addr]int{}
	for key, s := range a.services {
		if key != s.req.Key {
			t.Fatalf("op %d: service %s stored under %s", op, s.req.Key, key)
		}
		fams := map[Family]bool{}
		for _, ip := range s.ips {
			if fams[FamilyOf(ip)] {
				t.Fatalf("op %d: %s holds two %s addresses: %v", op, key, FamilyOf(ip), s.ips)
			}
			fams[FamilyOf(ip)] = true
			if !slices.Contains(a.Holders(ip), key) {
				t.Fatalf("op %d: %s lists %s but is not among its holders %v", op, key, ip, a.Holders(ip))
			}
			held[ip]++
		}
	}
	for ip, st := range a.addrs {
		if len(st.holders) != held[ip] {
			t.Fatalf("op %d: %s has holders %v, but %d services list it", op, ip, a.Holders(ip), held[ip])
		}
		for i, x := range st.holders {
			for _, y := range st.holders[i+1:] {
				if !x.req.sharesWith(&y.req) {
					t.Fatalf("op %d: %s held by %s and %s, which may not share", op, ip, x.req.Key, y.req.Key)
				}
				// Nothing here predates the namespace rule, and a Local
				// Service never starts sharing across namespaces.
				if x.req.Namespace != y.req.Namespace && (x.req.Local || y.req.Local) {
					t.Fatalf("op %d: %s held by %s and %s, of different namespaces, one of them Local", op, ip, x.req.Key, y.req.Key)
				}
			}
		}
	}
	for name, ps := range a.pools {
		for _, f := range []Family{IPv4, IPv6} {
			n := int64(0)
			for ip := range a.addrs {
				if FamilyOf(ip) == f && a.poolStateFor(ip) == ps {
					n++
				}
			}
			if got := ps.family(f).assigned; got != n {
				t.Fatalf("op %d: pool %s %s counts %d assigned, %d are held", op, name, f, got, n)
			}
		}
	}
}
