package speaker

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/election"
	"github.com/ironlb/ironlb/internal/planner"
)

// TestDecideL2: the layer 2 share, its handoffs and the reasons for every
// withdrawal, one sync at a time, with no clock but the moment's.
func TestDecideL2(t *testing.T) {
	a, b := netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("203.0.113.2")
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	plan := func(eligible ...string) map[netip.Addr]*planner.L2 {
		return map[netip.Addr]*planner.L2{
			a: {Services: []string{"ns/a"}, Eligible: election.NewNodes(eligible...), Interfaces: []string{"eth1"}},
			b: {Services: []string{"ns/b"}, Eligible: election.NewNodes(eligible...)},
		}
	}
	owners := func(m map[netip.Addr]string) func(netip.Addr) (string, bool) {
		return func(x netip.Addr) (string, bool) { return m[x], true }
	}
	answering := l2Share{
		desired: map[netip.Addr][]string{a: {"eth1"}, b: nil},
		since:   map[netip.Addr]time.Time{a: t0.Add(-time.Hour), b: t0.Add(-time.Minute)},
	}
	handingA := l2Share{
		desired: map[netip.Addr][]string{a: {"eth1"}, b: nil},
		since:   answering.since,
		handoff: map[netip.Addr]time.Time{a: t0.Add(300 * time.Millisecond)},
	}
	cases := []struct {
		name      string
		last      l2Share
		m         l2Moment
		desired   []netip.Addr
		handoff   []netip.Addr
		gained    []netip.Addr
		why       map[netip.Addr]string // lost addresses, and a part of why
		claimUsed bool
		begun     bool
	}{
		{
			name:    "owns both from nothing",
			m:       l2Moment{owned: []netip.Addr{a, b}, plan: plan("n1", "n2"), owner: owners(map[netip.Addr]string{a: "n1", b: "n1"})},
			desired: []netip.Addr{a, b}, gained: []netip.Addr{a, b},
		},
		{
			name:    "loses a to a new speaker: handed off, not withdrawn",
			last:    answering,
			m:       l2Moment{owned: []netip.Addr{b}, plan: plan("n1", "n2"), owner: owners(map[netip.Addr]string{a: "n2", b: "n1"}), handoff: 300 * time.Millisecond},
			desired: []netip.Addr{a, b}, handoff: []netip.Addr{a}, begun: true,
		},
		{
			name:    "handoff runs out",
			last:    handingA,
			m:       l2Moment{now: t0.Add(300 * time.Millisecond), owned: []netip.Addr{b}, plan: plan("n1", "n2"), owner: owners(map[netip.Addr]string{a: "n2", b: "n1"}), handoff: 300 * time.Millisecond},
			desired: []netip.Addr{b}, why: map[netip.Addr]string{a: "node n2 ranks first"},
		},
		{
			name: "the successor is heard: the handoff ends at once",
			last: handingA,
			m: l2Moment{now: t0.Add(100 * time.Millisecond), owned: []netip.Addr{b}, plan: plan("n1", "n2"), owner: owners(map[netip.Addr]string{a: "n2", b: "n1"}),
				handoff: 300 * time.Millisecond, heard: map[netip.Addr]time.Time{a: t0.Add(50 * time.Millisecond)}},
			desired: []netip.Addr{b}, why: map[netip.Addr]string{a: "node n2 ranks first"}, claimUsed: true,
		},
		{
			name: "a claim heard long before the handoff does not end it",
			last: handingA,
			m: l2Moment{now: t0.Add(100 * time.Millisecond), owned: []netip.Addr{b}, plan: plan("n1", "n2"), owner: owners(map[netip.Addr]string{a: "n2", b: "n1"}),
				handoff: 300 * time.Millisecond, heard: map[netip.Addr]time.Time{a: t0.Add(-5 * time.Second)}},
			desired: []netip.Addr{a, b}, handoff: []netip.Addr{a},
		},
		{
			name:    "no longer eligible: withdrawn at once",
			last:    answering,
			m:       l2Moment{plan: plan("n2"), owner: owners(map[netip.Addr]string{a: "n2", b: "n2"}), handoff: time.Second},
			why:     map[netip.Addr]string{a: "no longer eligible", b: "no longer eligible"},
			desired: nil,
		},
		{
			name: "Service gone",
			last: answering,
			m:    l2Moment{owned: []netip.Addr{b}, plan: map[netip.Addr]*planner.L2{b: plan("n1")[b]}, owner: owners(map[netip.Addr]string{b: "n1"}), handoff: time.Second},
			why:  map[netip.Addr]string{a: "no Service uses it"}, desired: []netip.Addr{b},
		},
		{
			name: "fenced: everything withdrawn, handoffs too",
			last: handingA,
			m:    l2Moment{owned: []netip.Addr{b}, plan: plan("n1", "n2"), owner: owners(map[netip.Addr]string{a: "n2", b: "n1"}), fenced: "sees 1 of 3", handoff: time.Second},
			why:  map[netip.Addr]string{a: "fenced", b: "fenced"},
		},
		{
			name: "claim version switching: no handoff",
			last: answering,
			m: l2Moment{owned: []netip.Addr{b}, plan: plan("n1", "n2"), handoff: time.Second, switching: true, switchFrom: 1, switchTo: 2,
				owner: func(netip.Addr) (string, bool) { return "n2", false }},
			desired: []netip.Addr{b}, why: map[netip.Addr]string{a: "claim version from 1 to 2"},
		},
		{
			name:    "no eligible speaker alive",
			last:    answering,
			m:       l2Moment{owned: []netip.Addr{b}, plan: plan("n1", "n2"), owner: owners(map[netip.Addr]string{b: "n1"}), handoff: time.Second},
			desired: []netip.Addr{b}, why: map[netip.Addr]string{a: "no eligible speaker is alive"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.m.node = "n1"
			if tc.m.now.IsZero() {
				tc.m.now = t0
			}
			next, d := decideL2(tc.last, tc.m)
			addrs := cmpopts.EquateComparable(netip.Addr{})
			sorted := cmpopts.SortSlices(netip.Addr.Less)
			if diff := cmp.Diff(tc.desired, keysOf(next.desired), addrs, sorted, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("answered for (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.handoff, keysOf(next.handoff), addrs, sorted, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("handed off (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.gained, d.gained, addrs, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("gained (-want +got):\n%s", diff)
			}
			if len(d.lost) != len(tc.why) {
				t.Errorf("lost %v, want %d addresses", d.lost, len(tc.why))
			}
			for x, part := range tc.why {
				if !strings.Contains(d.why[x], part) {
					t.Errorf("why %s was withdrawn: %q, want it to say %q", x, d.why[x], part)
				}
			}
			if (len(d.claimsUsed) > 0) != tc.claimUsed || d.handoffsBegun != tc.begun {
				t.Errorf("claims used %v, handoff begun %v; want a claim used: %v, begun: %v", d.claimsUsed, d.handoffsBegun, tc.claimUsed, tc.begun)
			}
			for x := range next.desired {
				if _, kept := tc.last.since[x]; kept && !next.since[x].Equal(tc.last.since[x]) {
					t.Errorf("%s was answered for since %v, now since %v", x, tc.last.since[x], next.since[x])
				}
			}
		})
	}
}

func keysOf[V any](m map[netip.Addr]V) []netip.Addr {
	var out []netip.Addr
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestBGPDesired: the router ID and each peer's password state, from the
// plan and the passwords read so far.
func TestBGPDesired(t *testing.T) {
	ref := &v1alpha1.SecretKeyRef{Namespace: "ironlb", Name: "pw", Key: "password"}
	withPassword := &config.BGPPeer{Name: "secure", Address: netip.MustParseAddr("198.51.100.1"), Password: ref}
	plain := &config.BGPPeer{Name: "plain", Address: netip.MustParseAddr("198.51.100.2")}
	fixedID := &config.BGPPeer{Name: "fixed", Address: netip.MustParseAddr("198.51.100.3"), RouterID: netip.MustParseAddr("192.0.2.77")}
	v4 := netip.MustParseAddr("192.0.2.10")
	read := map[secretRef]password{}
	lookup := func(r secretRef) (password, bool) { pw, ok := read[r]; return pw, ok }
	cases := []struct {
		name     string
		peers    []*config.BGPPeer
		self     netip.Addr
		read     map[secretRef]password
		routerID netip.Addr
		disabled map[string]string // by peer, a part of why; "" enabled
		password string
	}{
		{"the node's address is the router ID", []*config.BGPPeer{plain}, v4, nil, v4, map[string]string{"plain": ""}, ""},
		{"a peer's routerID wins", []*config.BGPPeer{plain, fixedID}, v4, nil, fixedID.RouterID, map[string]string{"plain": "", "fixed": ""}, ""},
		{"no IPv4 address, no routerID", []*config.BGPPeer{plain}, netip.Addr{}, nil, netip.Addr{}, map[string]string{"plain": "no IPv4 InternalIP"}, ""},
		{"password not read yet", []*config.BGPPeer{withPassword, plain}, v4, nil, v4, map[string]string{"secure": "has not been read yet", "plain": ""}, ""},
		{"password read", []*config.BGPPeer{withPassword}, v4, map[secretRef]password{{"ironlb", "pw", "password"}: {value: "s3cret"}}, v4, map[string]string{"secure": ""}, "s3cret"},
		{"password unusable", []*config.BGPPeer{withPassword}, v4, map[secretRef]password{{"ironlb", "pw", "password"}: {problem: "data.password is missing"}}, v4, map[string]string{"secure": "data.password is missing"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			read = tc.read
			d := bgpDesired("n1", planner.BGPPlan{Peers: tc.peers}, tc.self, lookup)
			if d.RouterID != tc.routerID {
				t.Errorf("router ID %v, want %v", d.RouterID, tc.routerID)
			}
			if len(d.Peers) != len(tc.disabled) {
				t.Fatalf("%d peers, want %d", len(d.Peers), len(tc.disabled))
			}
			for _, p := range d.Peers {
				want := tc.disabled[p.Name]
				if (want == "") != (p.Disabled == "") || !strings.Contains(p.Disabled, want) {
					t.Errorf("peer %s disabled %q, want %q", p.Name, p.Disabled, want)
				}
				if p.Name == "secure" && p.Password != tc.password {
					t.Errorf("peer %s password %q, want %q", p.Name, p.Password, tc.password)
				}
			}
		})
	}
}
