package bgp

// The speaker against real FRR routers: what they receive, per peer, as
// the desired state changes, and how sessions behave when something is
// wrong. See netns_test.go for the lab.

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ironlb/ironlb/internal/testutil"
)

// routerID is the speaker's BGP identifier in the tests: not one of its
// session addresses, so that FRR showing it proves where it came from.
var routerID = netip.MustParseAddr("198.51.100.99")

const noExport = 0xFFFFFF01

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// community is the standard community asn:v.
func community(asn, v uint32) uint32 { return asn<<16 | v }

// session is a session with the router at addr, with the short timers
// the routers use.
func session(addr netip.Addr, asn uint32) Session {
	return Session{Address: addr, ASN: asn, LocalASN: asSpeaker, HoldTime: 9 * time.Second}
}

// peerR1 and peerR2 are the speaker's sessions with r1 (eBGP) and r2
// (iBGP) over IPv4.
func peerR1(routes map[netip.Prefix]Route) Peer {
	return Peer{Name: "r1", Session: session(r1v4, asR1), Routes: routes}
}

func peerR2(routes map[netip.Prefix]Route) Peer {
	return Peer{Name: "r2", Session: session(r2v4, asSpeaker), Routes: routes}
}

// The neighbors the routers accept: the speaker's addresses on their
// links.
var (
	fromSpk1  = frrNeighbor{Addr: spk1, ASN: asSpeaker}
	fromSpk16 = frrNeighbor{Addr: spk16, ASN: asSpeaker}
	fromSpk2  = frrNeighbor{Addr: spk2, ASN: asSpeaker}
	fromSpk26 = frrNeighbor{Addr: spk26, ASN: asSpeaker}
)

var cmpStatus = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmpopts.IgnoreFields(PeerStatus{}, "Since", "ConnectRetry"),
}

// TestFRRAdvertise: one eBGP and one iBGP session at once, each with its
// own attributes for the same prefix; prefixes for one peer only; a /28
// as it is; next hop, communities, large communities and LOCAL_PREF as
// each router receives them (LOCAL_PREF only over iBGP, even on the
// wire); the router ID; Status.
func TestFRRAdvertise(t *testing.T) {
	needNet(t)
	t.Parallel()
	l := newLab(t)
	l.r1.start(fromSpk1)
	l.r2.start(fromSpk2)
	wire1, wire2 := l.r1.capture(), l.r2.capture()
	sp := l.startSpeaker("debug")

	sp.set(Desired{RouterID: routerID, Peers: []Peer{
		peerR1(map[netip.Prefix]Route{
			pfx("203.0.113.10/32"): {
				Communities:  []uint32{community(65000, 100), noExport},
				Large:        []LargeCommunity{{64512, 1, 2}},
				HasLocalPref: true, LocalPref: 200, // not for an eBGP peer
			},
			pfx("203.0.113.11/32"): {Communities: []uint32{community(65000, 101)}},
			pfx("203.0.113.12/32"): {},
			pfx("203.0.113.32/28"): {Communities: []uint32{community(65000, 132)}},
		}),
		peerR2(map[netip.Prefix]Route{
			pfx("203.0.113.10/32"): {
				Communities:  []uint32{community(65000, 200)},
				Large:        []LargeCommunity{{64512, 3, 4}, {64512, 5, 6}},
				HasLocalPref: true, LocalPref: 150,
			},
			pfx("203.0.113.11/32"): {Communities: []uint32{community(65000, 201), noExport}},
			pfx("203.0.113.13/32"): {HasLocalPref: true, LocalPref: 300},
			pfx("203.0.113.32/28"): {},
		}),
	}})

	t.Run("eBGP", func(t *testing.T) {
		from := func(r frrRoute) frrRoute { r.Peer, r.NextHop = spk1.String(), spk1.String(); return r }
		l.r1.waitRoutes(t, "ipv4", map[string]frrRoute{
			"203.0.113.10/32": from(frrRoute{Communities: "65000:100 no-export", Large: "64512:1:2"}),
			"203.0.113.11/32": from(frrRoute{Communities: "65000:101"}),
			"203.0.113.12/32": from(frrRoute{}),
			"203.0.113.32/28": from(frrRoute{Communities: "65000:132"}),
		})
	})
	t.Run("iBGP", func(t *testing.T) {
		// Over iBGP, LOCAL_PREF is always sent: 100 unless set.
		from := func(r frrRoute) frrRoute { r.Peer, r.NextHop = spk2.String(), spk2.String(); return r }
		l.r2.waitRoutes(t, "ipv4", map[string]frrRoute{
			"203.0.113.10/32": from(frrRoute{Communities: "65000:200", Large: "64512:3:4 64512:5:6", LocalPref: localPref(150)}),
			"203.0.113.11/32": from(frrRoute{Communities: "65000:201 no-export", LocalPref: localPref(100)}),
			"203.0.113.13/32": from(frrRoute{LocalPref: localPref(300)}),
			"203.0.113.32/28": from(frrRoute{LocalPref: localPref(100)}),
		})
	})
	t.Run("no LOCAL_PREF over eBGP", func(t *testing.T) {
		// FRR ignores LOCAL_PREF from an eBGP peer when it parses the
		// UPDATE, so only the wire shows whether it was sent. r2's
		// capture proves that tcpdump would show it.
		for _, c := range []struct {
			router string
			wire   *capture
			want   bool
		}{{"r1", wire1, false}, {"r2", wire2, true}} {
			var got string
			testutil.Eventually(t, "the UPDATE for 203.0.113.10/32 in tcpdump's capture at "+c.router, func() (bool, string) {
				got = c.wire.out.String()
				return strings.Contains(got, "203.0.113.10/32"), got
			})
			if has := strings.Contains(got, "Local Preference (5)"); has != c.want {
				t.Errorf("LOCAL_PREF on the wire to %s: %v, want %v\n%s", c.router, has, c.want, got)
			}
		}
	})
	t.Run("router ID", func(t *testing.T) {
		for _, c := range []struct {
			r    *router
			addr netip.Addr
		}{{l.r1, spk1}, {l.r2, spk2}} {
			if got := c.r.neighbor(t, c.addr).RemoteRouterID; got != routerID.String() {
				t.Errorf("%s sees router ID %q, want %s", c.r.ns, got, routerID)
			}
		}
	})
	want := []PeerStatus{
		{Name: "r1", Address: r1v4, State: StateEstablished, Advertised: 4},
		{Name: "r2", Address: r2v4, State: StateEstablished, Advertised: 4},
	}
	if diff := cmp.Diff(want, sp.status(), cmpStatus); diff != "" {
		t.Errorf("Status (-want +got)\n%s", diff)
	}
}

// TestFRRPortSourceMultiHop: a session to a router listening on another
// port than 179, opened from a source address that is not on the link
// (the speaker's loopback; the router accepts it as an eBGP neighbor only
// with multihop); the route's next hop is that source address. The router
// is still one hop away, so this does not prove the speaker's TTL.
func TestFRRPortSourceMultiHop(t *testing.T) {
	needNet(t)
	t.Parallel()
	l := newLab(t)
	src := netip.MustParseAddr("198.51.100.50")
	testutil.Run(t, "ip", "-n", l.spk, "addr", "add", src.String()+"/32", "dev", "lo")
	testutil.Run(t, "ip", "-n", l.r1.ns, "route", "add", src.String()+"/32", "via", spk1.String())
	l.r1.port = 1179
	l.r1.start(frrNeighbor{Addr: src, ASN: asSpeaker, MultiHop: true})
	sp := l.startSpeaker("debug")
	p := peerR1(map[netip.Prefix]Route{pfx("203.0.113.10/32"): {}})
	p.Port, p.SourceAddress, p.MultiHop = 1179, src, true
	sp.set(Desired{RouterID: routerID, Peers: []Peer{p}})
	l.r1.waitRoutes(t, "ipv4", map[string]frrRoute{
		"203.0.113.10/32": {Peer: src.String(), NextHop: src.String()},
	})
}

// TestFRRWithdrawAndChange: a prefix removed from one peer's routes is
// withdrawn from that router only; changed attributes replace the old
// ones; a peer left with no routes withdraws them all.
func TestFRRWithdrawAndChange(t *testing.T) {
	needNet(t)
	t.Parallel()
	l := newLab(t)
	l.r1.start(fromSpk1)
	l.r2.start(fromSpk2)
	sp := l.startSpeaker("debug")
	from1 := func(r frrRoute) frrRoute { r.Peer, r.NextHop = spk1.String(), spk1.String(); return r }
	from2 := func(r frrRoute) frrRoute {
		r.Peer, r.NextHop, r.LocalPref = spk2.String(), spk2.String(), localPref(100)
		return r
	}
	both := map[netip.Prefix]Route{
		pfx("203.0.113.10/32"): {Communities: []uint32{community(65000, 100)}, Large: []LargeCommunity{{64512, 1, 1}}},
		pfx("203.0.113.11/32"): {Communities: []uint32{community(65000, 101)}},
	}
	sp.set(Desired{RouterID: routerID, Peers: []Peer{peerR1(both), peerR2(both)}})
	l.r1.waitRoutes(t, "ipv4", map[string]frrRoute{
		"203.0.113.10/32": from1(frrRoute{Communities: "65000:100", Large: "64512:1:1"}),
		"203.0.113.11/32": from1(frrRoute{Communities: "65000:101"}),
	})
	r2Has := map[string]frrRoute{
		"203.0.113.10/32": from2(frrRoute{Communities: "65000:100", Large: "64512:1:1"}),
		"203.0.113.11/32": from2(frrRoute{Communities: "65000:101"}),
	}
	l.r2.waitRoutes(t, "ipv4", r2Has)

	// r1 loses .11, and .10 changes its communities and loses its large
	// ones; r2 keeps both as they were.
	sp.set(Desired{RouterID: routerID, Peers: []Peer{
		peerR1(map[netip.Prefix]Route{
			pfx("203.0.113.10/32"): {Communities: []uint32{community(65000, 110), community(65001, 1)}},
		}),
		peerR2(both),
	}})
	l.r1.waitRoutes(t, "ipv4", map[string]frrRoute{
		"203.0.113.10/32": from1(frrRoute{Communities: "65000:110 65001:1"}),
	})
	l.r1.logged(t, "rcvd UPDATE about 203.0.113.11/32 IPv4 unicast -- withdrawn")
	if diff := cmp.Diff(r2Has, l.r2.routes(t, "ipv4")); diff != "" {
		t.Errorf("r2's routes changed with r1's (-want +got)\n%s", diff)
	}

	// r2 gets no routes at all; r1 gets .11 back.
	sp.set(Desired{RouterID: routerID, Peers: []Peer{
		peerR1(map[netip.Prefix]Route{
			pfx("203.0.113.10/32"): {Communities: []uint32{community(65000, 110), community(65001, 1)}},
			pfx("203.0.113.11/32"): {},
		}),
		peerR2(nil),
	}})
	l.r2.waitRoutes(t, "ipv4", map[string]frrRoute{})
	l.r1.waitRoutes(t, "ipv4", map[string]frrRoute{
		"203.0.113.10/32": from1(frrRoute{Communities: "65000:110 65001:1"}),
		"203.0.113.11/32": from1(frrRoute{}),
	})
	want := []PeerStatus{
		{Name: "r1", Address: r1v4, State: StateEstablished, Advertised: 2},
		{Name: "r2", Address: r2v4, State: StateEstablished, Advertised: 0},
	}
	if diff := cmp.Diff(want, sp.status(), cmpStatus); diff != "" {
		t.Errorf("Status (-want +got)\n%s", diff)
	}
}

// TestFRRUpdate changes some prefixes through Update, which compares only
// those: routes move between peers, change and go, and a Set afterwards
// still replaces everything.
func TestFRRUpdate(t *testing.T) {
	needNet(t)
	t.Parallel()
	l := newLab(t)
	l.r1.start(fromSpk1)
	l.r2.start(fromSpk2)
	sp := l.startSpeaker("debug")
	from1 := func(r frrRoute) frrRoute { r.Peer, r.NextHop = spk1.String(), spk1.String(); return r }
	from2 := func(r frrRoute) frrRoute {
		r.Peer, r.NextHop, r.LocalPref = spk2.String(), spk2.String(), localPref(100)
		return r
	}
	c100 := Route{Communities: []uint32{community(65000, 100)}}
	both := map[netip.Prefix]Route{pfx("203.0.113.10/32"): c100, pfx("203.0.113.11/32"): {}}
	sp.set(Desired{RouterID: routerID, Peers: []Peer{peerR1(both), peerR2(both)}})
	l.r1.waitRoutes(t, "ipv4", map[string]frrRoute{
		"203.0.113.10/32": from1(frrRoute{Communities: "65000:100"}),
		"203.0.113.11/32": from1(frrRoute{}),
	})
	l.r2.waitRoutes(t, "ipv4", map[string]frrRoute{
		"203.0.113.10/32": from2(frrRoute{Communities: "65000:100"}),
		"203.0.113.11/32": from2(frrRoute{}),
	})

	// .10 changes its community for r1 and leaves r2; .11 leaves r1; .12
	// is new, for r2 only.
	sp.update(Changes{
		pfx("203.0.113.10/32"): {"r1": {Communities: []uint32{community(65000, 110)}}},
		pfx("203.0.113.11/32"): {"r2": {}},
		pfx("203.0.113.12/32"): {"r2": c100},
	})
	l.r1.waitRoutes(t, "ipv4", map[string]frrRoute{
		"203.0.113.10/32": from1(frrRoute{Communities: "65000:110"}),
	})
	l.r2.waitRoutes(t, "ipv4", map[string]frrRoute{
		"203.0.113.11/32": from2(frrRoute{}),
		"203.0.113.12/32": from2(frrRoute{Communities: "65000:100"}),
	})
	want := []PeerStatus{
		{Name: "r1", Address: r1v4, State: StateEstablished, Advertised: 1},
		{Name: "r2", Address: r2v4, State: StateEstablished, Advertised: 2},
	}
	if diff := cmp.Diff(want, sp.status(), cmpStatus); diff != "" {
		t.Errorf("Status after Update (-want +got)\n%s", diff)
	}

	// A Set replaces the routes the Updates made.
	sp.set(Desired{RouterID: routerID, Peers: []Peer{peerR1(both), peerR2(nil)}})
	l.r2.waitRoutes(t, "ipv4", map[string]frrRoute{})
	l.r1.waitRoutes(t, "ipv4", map[string]frrRoute{
		"203.0.113.10/32": from1(frrRoute{Communities: "65000:100"}),
		"203.0.113.11/32": from1(frrRoute{}),
	})
}

// tcpMD5Failures is the kernel's count of TCP segments dropped in ns
// for a missing or wrong MD5 signature.
func tcpMD5Failures(t *testing.T, ns string) int {
	t.Helper()
	lines := strings.Split(testutil.Run(t, "ip", "netns", "exec", ns, "cat", "/proc/net/netstat"), "\n")
	for i := 0; i+1 < len(lines); i++ {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != "TcpExt:" || len(values) != len(names) {
			continue
		}
		for j, n := range names {
			if n == "TCPMD5Failure" {
				v, _ := strconv.Atoi(values[j])
				return v
			}
		}
	}
	t.Fatalf("no TcpExt TCPMD5Failure in %s's /proc/net/netstat", ns)
	return 0
}

// TestFRRPassword: with the router's TCP MD5 password the session comes
// up and carries routes; with a wrong one, the router's kernel drops the
// speaker's segments and the session never comes up.
func TestFRRPassword(t *testing.T) {
	needNet(t)
	t.Parallel()
	l := newLab(t)
	l.r1.start(frrNeighbor{Addr: spk1, ASN: asSpeaker, Password: "r1-s3cret"})
	l.r2.start(frrNeighbor{Addr: spk2, ASN: asSpeaker, Password: "r2-s3cret"})
	sp := l.startSpeaker("debug")

	routes := map[netip.Prefix]Route{pfx("203.0.113.10/32"): {}}
	good, bad := peerR1(routes), peerR2(routes)
	good.Password, bad.Password = "r1-s3cret", "not-r2-s3cret"
	sp.set(Desired{RouterID: routerID, Peers: []Peer{good, bad}})

	l.r1.waitRoutes(t, "ipv4", map[string]frrRoute{
		"203.0.113.10/32": {Peer: spk1.String(), NextHop: spk1.String()},
	})
	// The speaker did try r2: r2's kernel refused its segments.
	testutil.Eventually(t, "r2's kernel refusing a segment for its MD5 signature", func() (bool, string) {
		n := tcpMD5Failures(t, l.r2.ns)
		return n > 0, fmt.Sprintf("TCPMD5Failure %d", n)
	})
	if st, ok := sp.peerStatus("r2"); !ok || st.State == StateEstablished {
		t.Errorf("Status of the session with a wrong password: %+v (listed: %v)", st, ok)
	}
	if n := l.r2.neighbor(t, spk2); n.State == "Established" || n.ConnectionsEstablished != 0 {
		t.Errorf("r2 with a wrong password: state %s, %d connections established", n.State, n.ConnectionsEstablished)
	}
	if diff := cmp.Diff(map[string]frrRoute{}, l.r2.routes(t, "ipv4")); diff != "" {
		t.Errorf("r2's routes with a wrong password (-want +got)\n%s", diff)
	}
}

// TestFRRRouterRestart: when r1's bgpd dies and comes back, the speaker
// dials it again and its routes return; r2's session is not disturbed.
func TestFRRRouterRestart(t *testing.T) {
	needNet(t)
	t.Parallel()
	l := newLab(t)
	l.r1.start(fromSpk1)
	l.r2.start(fromSpk2)
	sp := l.startSpeaker("debug")
	routes := map[netip.Prefix]Route{pfx("203.0.113.10/32"): {Communities: []uint32{community(65000, 100)}}}
	sp.set(Desired{RouterID: routerID, Peers: []Peer{peerR1(routes), peerR2(routes)}})
	want1 := map[string]frrRoute{"203.0.113.10/32": {Peer: spk1.String(), NextHop: spk1.String(), Communities: "65000:100"}}
	l.r1.waitRoutes(t, "ipv4", want1)
	l.r2.waitRoutes(t, "ipv4", map[string]frrRoute{
		"203.0.113.10/32": {Peer: spk2.String(), NextHop: spk2.String(), Communities: "65000:100", LocalPref: localPref(100)},
	})

	l.r1.kill()
	testutil.Eventually(t, "the speaker seeing r1's session go down", func() (bool, string) {
		st, _ := sp.peerStatus("r1")
		return st.State != StateEstablished, fmt.Sprintf("%+v", st)
	})
	l.r1.restart()
	l.r1.waitRoutes(t, "ipv4", want1)
	sp.waitEstablished("r1", "r2")
	if n := l.r2.neighbor(t, spk2); n.ConnectionsEstablished != 1 {
		t.Errorf("r2 saw %d sessions established, want 1: it was disturbed", n.ConnectionsEstablished)
	}
}

// TestFRRIPv6: a session over IPv6 carries the IPv6 prefixes of its peer
// with the speaker's IPv6 address as next hop, over eBGP and iBGP; each
// session carries only prefixes of its own address family.
func TestFRRIPv6(t *testing.T) {
	needNet(t)
	t.Parallel()
	l := newLab(t)
	l.r1.start(fromSpk1, fromSpk16)
	l.r2.start(fromSpk26)
	sp := l.startSpeaker("debug")

	mixed := map[netip.Prefix]Route{
		pfx("2001:db8:ff66::10/128"): {Communities: []uint32{community(65000, 600)}, Large: []LargeCommunity{{64512, 6, 6}}},
		pfx("2001:db8:ff66::/120"):   {},
		pfx("203.0.113.10/32"):       {},
	}
	v4 := map[netip.Prefix]Route{
		pfx("203.0.113.20/32"):       {},
		pfx("2001:db8:ff66::20/128"): {},
	}
	sp.set(Desired{RouterID: routerID, Peers: []Peer{
		peerR1(v4),
		{Name: "r1-v6", Session: session(r1v6, asR1), Routes: mixed},
		{Name: "r2-v6", Session: session(r2v6, asSpeaker), Routes: map[netip.Prefix]Route{
			pfx("2001:db8:ff66::10/128"): {HasLocalPref: true, LocalPref: 120},
			pfx("203.0.113.10/32"):       {},
		}},
	}})
	l.r1.waitRoutes(t, "ipv6", map[string]frrRoute{
		"2001:db8:ff66::10/128": {Peer: spk16.String(), NextHop: spk16.String(), Communities: "65000:600", Large: "64512:6:6"},
		"2001:db8:ff66::/120":   {Peer: spk16.String(), NextHop: spk16.String()},
	})
	l.r2.waitRoutes(t, "ipv6", map[string]frrRoute{
		"2001:db8:ff66::10/128": {Peer: spk26.String(), NextHop: spk26.String(), LocalPref: localPref(120)},
	})
	l.r1.waitRoutes(t, "ipv4", map[string]frrRoute{
		"203.0.113.20/32": {Peer: spk1.String(), NextHop: spk1.String()},
	})
	if diff := cmp.Diff(map[string]frrRoute{}, l.r2.routes(t, "ipv4")); diff != "" {
		t.Errorf("r2's IPv4 routes over its IPv6 session (-want +got)\n%s", diff)
	}
	want := []PeerStatus{
		{Name: "r1", Address: r1v4, State: StateEstablished, Advertised: 1},
		{Name: "r1-v6", Address: r1v6, State: StateEstablished, Advertised: 2},
		{Name: "r2-v6", Address: r2v6, State: StateEstablished, Advertised: 1},
	}
	if diff := cmp.Diff(want, sp.status(), cmpStatus); diff != "" {
		t.Errorf("Status (-want +got)\n%s", diff)
	}
}

// TestFRRBadPeers: a peer with the wrong ASN, one nobody answers, one
// with a hold time the speaker refuses and a disabled one do not keep
// the good session from carrying routes, nor Set's later changes from
// reaching it; Status tells what is wrong with each.
func TestFRRBadPeers(t *testing.T) {
	needNet(t)
	t.Parallel()
	l := newLab(t)
	l.r1.start(fromSpk1)
	l.r2.start(fromSpk2)
	// Nobody has .200: it is on r1's link, where nobody answers ARP for
	// it, so the speaker's SYNs never leave its namespace.
	nobody := netip.MustParseAddr("198.51.100.200")
	testutil.Run(t, "ip", "-n", l.spk, "route", "add", nobody.String()+"/32", "dev", "r1")
	wire1 := l.r1.capture()
	sp := l.startSpeaker("debug")

	wrongASN := peerR1(map[netip.Prefix]Route{pfx("203.0.113.20/32"): {}})
	wrongASN.Name, wrongASN.ASN = "wrong-asn", 64999
	unreachable := Peer{Name: "unreachable", Session: session(nobody, asR1), Routes: map[netip.Prefix]Route{pfx("203.0.113.21/32"): {}}}
	shortHold := Peer{Name: "short-hold", Session: session(netip.MustParseAddr("198.51.100.201"), asR1)}
	shortHold.HoldTime = time.Second
	const why = "the password Secret ironlb/r3 does not exist"
	disabled := Peer{Name: "disabled", Session: session(netip.MustParseAddr("198.51.100.202"), asR1), Disabled: why}
	good := peerR2(map[netip.Prefix]Route{pfx("203.0.113.10/32"): {}})
	desired := Desired{RouterID: routerID, Peers: []Peer{wrongASN, unreachable, shortHold, disabled, good}}
	sp.set(desired)

	from2 := frrRoute{Peer: spk2.String(), NextHop: spk2.String(), LocalPref: localPref(100)}
	l.r2.waitRoutes(t, "ipv4", map[string]frrRoute{"203.0.113.10/32": from2})
	// The bad ones were tried: the speaker refused r1's OPEN for its ASN,
	// and its kernel asked for .200's MAC. The wire shows the refusal;
	// FRR seldom does, as GoBGP closes the connection right after its
	// NOTIFICATION, with r1's KEEPALIVE unread, so the kernel resets it
	// and bgpd drops what it had not read yet.
	testutil.Eventually(t, "the speaker telling r1 that its ASN is wrong", func() (bool, string) {
		got := wire1.out.String()
		return strings.Contains(got, "Bad Peer AS"), got
	})
	testutil.Eventually(t, "the speaker's kernel resolving "+nobody.String(), func() (bool, string) {
		out := testutil.Run(t, "ip", "-n", l.spk, "neigh", "show", nobody.String())
		return strings.Contains(out, nobody.String()), out
	})

	// Set still works for the good peer, whatever the others do.
	desired.Peers[4] = peerR2(map[netip.Prefix]Route{pfx("203.0.113.10/32"): {}, pfx("203.0.113.11/32"): {}})
	sp.set(desired)
	l.r2.waitRoutes(t, "ipv4", map[string]frrRoute{"203.0.113.10/32": from2, "203.0.113.11/32": from2})
	if diff := cmp.Diff(map[string]frrRoute{}, l.r1.routes(t, "ipv4")); diff != "" {
		t.Errorf("r1's routes with the wrong ASN (-want +got)\n%s", diff)
	}
	if n := l.r1.neighbor(t, spk1); n.ConnectionsEstablished != 0 {
		t.Errorf("r1 established %d sessions with a speaker that has its ASN wrong", n.ConnectionsEstablished)
	}

	status := map[string]PeerStatus{}
	for _, st := range sp.status() {
		status[st.Name] = st
	}
	if len(status) != 5 {
		t.Errorf("Status has %d peers, want 5: %+v", len(status), status)
	}
	for _, name := range []string{"wrong-asn", "unreachable"} {
		if st := status[name]; st.State == StateEstablished || st.State == StateDisabled {
			t.Errorf("Status of %s: %+v, want neither Established nor Disabled", name, st)
		}
	}
	if st := status["short-hold"]; st.State != StateIdle || !strings.Contains(st.Message, "hold time 1s") {
		t.Errorf("Status of short-hold: %+v, want Idle with a message about its hold time", st)
	}
	if st := status["disabled"]; st.State != StateDisabled || st.Message != why {
		t.Errorf("Status of disabled: %+v, want Disabled with message %q", st, why)
	}
	if st := status["r2"]; st.State != StateEstablished || st.Message != "" || st.Advertised != 2 {
		t.Errorf("Status of r2: %+v, want Established with 2 prefixes", st)
	}

	// Sessions that stay down are tried less and less often, up to the
	// most; the good one keeps the base interval.
	testutil.Eventually(t, "the sessions that stay down backing off", func() (bool, string) {
		got := map[string]time.Duration{}
		for _, st := range sp.status() {
			got[st.Name] = st.ConnectRetry
		}
		most := helperOptions.MaxConnectRetry
		return got["wrong-asn"] == most && got["unreachable"] == most && got["r2"] == helperOptions.ConnectRetry, fmt.Sprint(got)
	})
}

// TestFRRGracefulRestart: a session with GracefulRestart announces the
// capability with the speaker's restart time; one without does not.
func TestFRRGracefulRestart(t *testing.T) {
	needNet(t)
	t.Parallel()
	l := newLab(t)
	l.r1.start(fromSpk1)
	l.r2.start(fromSpk2)
	sp := l.startSpeaker("debug")
	gr := peerR1(nil)
	gr.GracefulRestart = true
	sp.set(Desired{RouterID: routerID, Peers: []Peer{gr, peerR2(nil)}})
	sp.waitEstablished("r1", "r2")

	type grView struct {
		Capability, RemoteMode string
		RestartTimer           int
	}
	view := func(r *router, addr netip.Addr) grView {
		n := r.neighbor(t, addr)
		return grView{n.Capabilities.GracefulRestart, n.GracefulRestart.Remote, n.GracefulRestart.Timers.Received}
	}
	if diff := cmp.Diff(grView{"advertisedAndReceived", "Restart", restartTime}, view(l.r1, spk1)); diff != "" {
		t.Errorf("graceful restart at r1, enabled (-want +got)\n%s", diff)
	}
	if diff := cmp.Diff(grView{"", "Disable", 0}, view(l.r2, spk2)); diff != "" {
		t.Errorf("graceful restart at r2, not enabled (-want +got)\n%s", diff)
	}
}

// TestFRRGracefulShutdown: when Run's context ends, every route is
// withdrawn by UPDATE before the sessions close, and Run returns nil.
func TestFRRGracefulShutdown(t *testing.T) {
	needNet(t)
	t.Parallel()
	l := newLab(t)
	l.r1.start(fromSpk1, fromSpk16)
	l.r2.start(fromSpk2)
	sp := l.startSpeaker("debug")
	routes := map[netip.Prefix]Route{
		pfx("203.0.113.10/32"):       {},
		pfx("203.0.113.32/28"):       {},
		pfx("2001:db8:ff66::10/128"): {},
	}
	sp.set(Desired{RouterID: routerID, Peers: []Peer{
		peerR1(routes), peerR2(routes),
		{Name: "r1-v6", Session: session(r1v6, asR1), Routes: routes},
	}})
	from := func(addr netip.Addr, lp *uint32) frrRoute {
		return frrRoute{Peer: addr.String(), NextHop: addr.String(), LocalPref: lp}
	}
	l.r1.waitRoutes(t, "ipv4", map[string]frrRoute{"203.0.113.10/32": from(spk1, nil), "203.0.113.32/28": from(spk1, nil)})
	l.r1.waitRoutes(t, "ipv6", map[string]frrRoute{"2001:db8:ff66::10/128": from(spk16, nil)})
	l.r2.waitRoutes(t, "ipv4", map[string]frrRoute{"203.0.113.10/32": from(spk2, localPref(100)), "203.0.113.32/28": from(spk2, localPref(100))})
	type session struct {
		r    *router
		addr netip.Addr
	}
	sessions := []session{{l.r1, spk1}, {l.r1, spk16}, {l.r2, spk2}}
	updatesBefore := map[netip.Addr]int{}
	for _, s := range sessions {
		updatesBefore[s.addr] = s.r.neighbor(t, s.addr).MessageStats.UpdatesRecv
	}

	if err := sp.Stop(); err != nil {
		t.Errorf("speaker helper: %v, want exit status 0 (Run returned nil)", err)
	}
	for _, s := range sessions {
		testutil.Eventually(t, fmt.Sprintf("%s closing the session with %s", s.r.ns, s.addr), func() (bool, string) {
			n := s.r.neighbor(t, s.addr)
			return n.State != "Established", fmt.Sprintf("%+v", n)
		})
		n := s.r.neighbor(t, s.addr)
		if n.MessageStats.UpdatesRecv <= updatesBefore[s.addr] {
			t.Errorf("%s received %d UPDATEs from %s before the session closed, as many as before the stop", s.r.ns, n.MessageStats.UpdatesRecv, s.addr)
		}
	}
	l.r1.logged(t,
		"rcvd UPDATE about 203.0.113.10/32 IPv4 unicast -- withdrawn",
		"rcvd UPDATE about 203.0.113.32/28 IPv4 unicast -- withdrawn",
		"rcvd UPDATE about 2001:db8:ff66::10/128 IPv6 unicast -- withdrawn",
	)
	l.r2.logged(t,
		"rcvd UPDATE about 203.0.113.10/32 IPv4 unicast -- withdrawn",
		"rcvd UPDATE about 203.0.113.32/28 IPv4 unicast -- withdrawn",
	)
	for _, c := range []struct {
		r      *router
		family string
	}{{l.r1, "ipv4"}, {l.r1, "ipv6"}, {l.r2, "ipv4"}} {
		if diff := cmp.Diff(map[string]frrRoute{}, c.r.routes(t, c.family)); diff != "" {
			t.Errorf("%s's %s routes after the speaker stopped (-want +got)\n%s", c.r.ns, c.family, diff)
		}
	}
}

// TestFRRSessionsKept: a Set that changes r1's routes, adds a peer and
// changes r2's session restarts r2's session only; r1's stays up.
func TestFRRSessionsKept(t *testing.T) {
	needNet(t)
	t.Parallel()
	l := newLab(t)
	l.r1.start(fromSpk1, fromSpk16)
	l.r2.start(fromSpk2)
	sp := l.startSpeaker("debug")
	sp.set(Desired{RouterID: routerID, Peers: []Peer{
		peerR1(map[netip.Prefix]Route{pfx("203.0.113.10/32"): {}}),
		peerR2(map[netip.Prefix]Route{pfx("203.0.113.10/32"): {}}),
	}})
	from1 := func(r frrRoute) frrRoute { r.Peer, r.NextHop = spk1.String(), spk1.String(); return r }
	from2 := frrRoute{Peer: spk2.String(), NextHop: spk2.String(), LocalPref: localPref(100)}
	l.r1.waitRoutes(t, "ipv4", map[string]frrRoute{"203.0.113.10/32": from1(frrRoute{})})
	l.r2.waitRoutes(t, "ipv4", map[string]frrRoute{"203.0.113.10/32": from2})
	type up struct {
		Connections int
		Since       int64
	}
	upOf := func(r *router, addr netip.Addr) up {
		n := r.neighbor(t, addr)
		return up{n.ConnectionsEstablished, n.EstablishedEpoch}
	}
	r1Before, r2Before := upOf(l.r1, spk1), upOf(l.r2, spk2)

	r2 := peerR2(map[netip.Prefix]Route{pfx("203.0.113.10/32"): {}})
	r2.HoldTime = 6 * time.Second
	sp.set(Desired{RouterID: routerID, Peers: []Peer{
		peerR1(map[netip.Prefix]Route{
			pfx("203.0.113.10/32"): {Communities: []uint32{community(65000, 100)}},
			pfx("203.0.113.11/32"): {},
		}),
		{Name: "r1-v6", Session: session(r1v6, asR1), Routes: map[netip.Prefix]Route{pfx("2001:db8:ff66::10/128"): {}}},
		r2,
	}})
	l.r1.waitRoutes(t, "ipv4", map[string]frrRoute{
		"203.0.113.10/32": from1(frrRoute{Communities: "65000:100"}),
		"203.0.113.11/32": from1(frrRoute{}),
	})
	l.r1.waitRoutes(t, "ipv6", map[string]frrRoute{"2001:db8:ff66::10/128": {Peer: spk16.String(), NextHop: spk16.String()}})
	// r2's session restarts (which shows that FRR counts restarts) and
	// comes back with its route.
	testutil.Eventually(t, "r2's session restarting", func() (bool, string) {
		n := l.r2.neighbor(t, spk2)
		return n.ConnectionsEstablished == r2Before.Connections+1 && n.State == "Established", fmt.Sprintf("%+v", n)
	})
	l.r2.waitRoutes(t, "ipv4", map[string]frrRoute{"203.0.113.10/32": from2})
	// FRR derives the epoch from the current time minus the uptime in
	// whole seconds, so the same session can read one second apart; a
	// restart shows in the count of established connections, and in an
	// epoch that moved by more than that rounding.
	r1After := upOf(l.r1, spk1)
	if moved := r1After.Since - r1Before.Since; r1After.Connections != r1Before.Connections || moved > 1 || moved < -1 {
		t.Errorf("r1's session restarted: before %+v, after %+v", r1Before, r1After)
	}
}
