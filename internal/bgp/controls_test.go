package bgp

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/ironlb/ironlb/internal/testutil"
)

// waitMessage waits until the peer's Status carries a message holding
// text.
func (s *speaker) waitMessage(name, text string) PeerStatus {
	s.t.Helper()
	var st PeerStatus
	testutil.Eventually(s.t, fmt.Sprintf("peer %s's status saying %q", name, text), func() (bool, string) {
		st, _ = s.peerStatus(name)
		return strings.Contains(st.Message, text), fmt.Sprintf("%+v", st)
	})
	return st
}

// TestFRRDynamicASN: a session for any external AS (ASN 0) comes up with
// r1 (AS 64500) and carries routes; with r2, which is in the speaker's own
// AS, it is closed and the status says why, and r2 is left with no route.
func TestFRRDynamicASN(t *testing.T) {
	needNet(t)
	t.Parallel()
	l := newLab(t)
	l.r1.start(fromSpk1)
	l.r2.start(fromSpk2)
	sp := l.startSpeaker("debug")
	routes := map[netip.Prefix]Route{pfx("203.0.113.10/32"): {}}
	anyExternal1, anyExternal2 := peerR1(routes), peerR2(routes)
	anyExternal1.ASN, anyExternal2.ASN = 0, 0
	sp.set(Desired{RouterID: routerID, Peers: []Peer{anyExternal1, anyExternal2}})

	l.r1.waitRoutes(t, "ipv4", map[string]frrRoute{"203.0.113.10/32": {Peer: spk1.String(), NextHop: spk1.String()}})
	sp.waitMessage("r2", "answered with AS 64512, this speaker's own")
	l.r2.waitRoutes(t, "ipv4", map[string]frrRoute{})
	if st, _ := sp.peerStatus("r1"); st.State != StateEstablished || st.Message != "" {
		t.Errorf("r1's session %+v, want Established without a message", st)
	}

	// Fixed in the configuration: r2 as internal (its AS given) comes up.
	sp.set(Desired{RouterID: routerID, Peers: []Peer{anyExternal1, peerR2(routes)}})
	l.r2.waitRoutes(t, "ipv4", map[string]frrRoute{"203.0.113.10/32": {Peer: spk2.String(), NextHop: spk2.String(), LocalPref: localPref(100)}})
	sp.waitEstablished("r1", "r2")
	if st, _ := sp.peerStatus("r2"); st.Message != "" {
		t.Errorf("r2's message %q after the fix, want none", st.Message)
	}
}

// TestFRRMaxReceived: r1 sends five prefixes; with a limit of three the
// speaker closes the session with a NOTIFICATION (Cease, maximum number
// of prefixes reached) and says so; with a limit of ten it stays up.
func TestFRRMaxReceived(t *testing.T) {
	needNet(t)
	t.Parallel()
	l := newLab(t)
	for i := range 5 {
		l.r1.originate = append(l.r1.originate, netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(16 * i)}), 28))
	}
	l.r1.start(fromSpk1)
	sp := l.startSpeaker("debug")
	limited := peerR1(map[netip.Prefix]Route{pfx("203.0.113.10/32"): {}})
	limited.MaxReceived = 3
	sp.set(Desired{RouterID: routerID, Peers: []Peer{limited}})

	sp.waitMessage("r1", "the router sent more than 3 prefixes (maxReceivedPrefixes)")
	testutil.Eventually(t, "r1 told why the session closed", func() (bool, string) {
		out := l.r1.raw("show bgp neighbors " + spk1.String())
		return strings.Contains(out, "Maximum Number of Prefixes Reached"), out
	})

	limited.MaxReceived = 10
	sp.set(Desired{RouterID: routerID, Peers: []Peer{limited}})
	sp.waitEstablished("r1")
	want := map[string]frrRoute{"203.0.113.10/32": {Peer: spk1.String(), NextHop: spk1.String()}}
	for _, p := range l.r1.originate {
		want[p.String()] = frrRoute{Peer: "0.0.0.0", NextHop: "0.0.0.0"} // r1's own
	}
	l.r1.waitRoutes(t, "ipv4", want)
	testutil.Eventually(t, "r1's five prefixes received", func() (bool, string) {
		st, _ := sp.peerStatus("r1")
		return st.Message == "" && st.State == StateEstablished, fmt.Sprintf("%+v", st)
	})
}
