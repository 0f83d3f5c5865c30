package bgp

// BFD beside BGP against FRR: bfdd runs next to bgpd in the router's
// namespace with a peer per family. FRR's bgpd is not told about BFD
// (`neighbor X bfd` needs zebra, and would let FRR close the session by
// itself): whatever takes BGP down here is the speaker's own wiring.

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ironlb/ironlb/internal/bfd"
	"github.com/ironlb/ironlb/internal/testutil"
)

const bfddPath = "/usr/lib/frr/bfdd"

// startBFDD runs bfdd beside the router's bgpd (which made r.dir), with a
// single-hop peer for each of the given addresses (the speaker's, from
// the router's local one); it is killed when the test ends.
func (r *router) startBFDD(peers map[netip.Addr]netip.Addr) {
	t := r.t
	t.Helper()
	var conf strings.Builder
	conf.WriteString("bfd\n")
	for peer, local := range peers {
		fmt.Fprintf(&conf, " peer %s local-address %s\n  receive-interval 300\n  transmit-interval 300\n  detect-multiplier 3\n !\n", peer, local)
	}
	conf.WriteString("!\n")
	path := filepath.Join(r.dir, "bfdd.conf")
	if err := os.WriteFile(path, []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	log := &testutil.SyncBuffer{}
	cmd := exec.Command("ip", "netns", "exec", r.ns, bfddPath, "-N", r.ns, "-f", path,
		"-i", filepath.Join(r.dir, "bfdd.pid"), "--bfdctl", filepath.Join(r.dir, "bfdd.sock"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting bfdd in %s: %v", r.ns, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("bfdd in %s logged:\n%s", r.ns, log)
		}
	})
	testutil.Eventually(t, "bfdd in "+r.ns+" answering vtysh", func() (bool, string) {
		out, err := r.try("show bfd peers json")
		return err == nil && strings.HasPrefix(strings.TrimSpace(out), "["), out
	})
}

// bfdPeers is bfdd's state of each session, by peer address.
func (r *router) bfdPeers(t testing.TB) map[string]string {
	t.Helper()
	var list []struct {
		Peer   string `json:"peer"`
		Status string `json:"status"`
	}
	r.query(t, "show bfd peers json", &list)
	out := map[string]string{}
	for _, p := range list {
		out[p.Peer] = p.Status
	}
	return out
}

// dropBFD drops, or with drop false lets in again, every single-hop BFD
// packet arriving in the namespace; BGP's TCP is untouched.
func dropBFD(t *testing.T, ns string, drop bool) {
	t.Helper()
	if drop {
		rules := "table inet bfdtest {\n chain in {\n  type filter hook input priority 0; policy accept;\n  udp dport 3784 drop\n }\n}\n"
		cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
		cmd.Stdin = strings.NewReader(rules)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nft in %s: %v\n%s", ns, err, out)
		}
		return
	}
	testutil.Run(t, "ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "bfdtest")
}

// TestFRRBFD: with BFD on both IPv4 and IPv6 sessions, BFD comes Up with
// bfdd; when BFD packets stop arriving (TCP still fine) the speaker's BFD
// goes Down, it closes both BGP sessions with a NOTIFICATION and the
// router drops the routes, and keeps them closed; when BFD packets pass
// again, BFD is Up and the sessions and routes are back.
func TestFRRBFD(t *testing.T) {
	needNet(t)
	testutil.NeedNet(t, bfddPath, "nft")
	t.Parallel()
	l := newLab(t)
	l.r1.start(fromSpk1, fromSpk16)
	l.r1.startBFDD(map[netip.Addr]netip.Addr{spk1: r1v4, spk16: r1v6})
	sp := l.startSpeaker("debug")

	// FRR's default timers: a 900 ms detection time stays stable on a
	// loaded test machine, where 300 ms was seen to flap.
	fast := &BFD{ReceiveInterval: 300 * time.Millisecond, TransmitInterval: 300 * time.Millisecond, DetectMultiplier: 3}
	sp.set(Desired{RouterID: routerID, Peers: []Peer{
		{Name: "r1", Session: session(r1v4, asR1), BFD: fast, Routes: map[netip.Prefix]Route{pfx("203.0.113.30/32"): {}}},
		{Name: "r1-v6", Session: session(r1v6, asR1), BFD: fast, Routes: map[netip.Prefix]Route{pfx("2001:db8:ff66::30/128"): {}}},
	}})
	routesV4 := map[string]frrRoute{"203.0.113.30/32": {Peer: spk1.String(), NextHop: spk1.String()}}
	routesV6 := map[string]frrRoute{"2001:db8:ff66::30/128": {Peer: spk16.String(), NextHop: spk16.String()}}
	up := func(what string) {
		t.Helper()
		waitBFD(t, sp, what, "Up", StateEstablished)
		testutil.Eventually(t, "bfdd's sessions up "+what, func() (bool, string) {
			p := l.r1.bfdPeers(t)
			return p[spk1.String()] == "up" && p[spk16.String()] == "up", fmt.Sprintf("%v", p)
		})
		l.r1.waitRoutes(t, "ipv4", routesV4)
		l.r1.waitRoutes(t, "ipv6", routesV6)
	}
	up("at first")
	established := map[netip.Addr]int{}
	for _, a := range []netip.Addr{spk1, spk16} {
		established[a] = l.r1.neighbor(t, a).ConnectionsEstablished
	}

	dropBFD(t, l.spk, true)
	waitBFD(t, sp, "after BFD packets are dropped", "Down", StateIdle)
	l.r1.waitRoutes(t, "ipv4", map[string]frrRoute{})
	l.r1.waitRoutes(t, "ipv6", map[string]frrRoute{})
	for _, a := range []netip.Addr{spk1, spk16} {
		var m map[string]map[string]any
		l.r1.query(t, fmt.Sprintf("show bgp neighbors %s json", a), &m)
		n := m[a.String()]
		if n["lastErrorCodeSubcode"] != "0603" {
			t.Errorf("the router's session with %s did not end with a NOTIFICATION (Cease, Peer Unconfigured): last reset %v, %v, error %v",
				a, n["lastResetDueTo"], n["lastNotificationReason"], n["lastErrorCodeSubcode"])
		}
	}
	// Routes gone while TCP still works: the sessions are held down, not
	// merely reset (a reset session would be re-established over TCP).
	st, _ := sp.peerStatus("r1")
	if st.State == StateEstablished {
		t.Errorf("r1 established again while BFD is down: %+v", st)
	}

	dropBFD(t, l.spk, false)
	up("after BFD packets pass again")
	for _, a := range []netip.Addr{spk1, spk16} {
		if n := l.r1.neighbor(t, a).ConnectionsEstablished; n != established[a]+1 {
			t.Errorf("the router established %d sessions with %s since BFD went down, want 1", n-established[a], a)
		}
	}
}

// waitBFD waits until both peers' Status shows the BFD state and the BGP
// state.
func waitBFD(t *testing.T, sp *speaker, what, bfdState string, state State) {
	t.Helper()
	testutil.Eventually(t, fmt.Sprintf("BFD %s and BGP %s %s", bfdState, state, what), func() (bool, string) {
		st := sp.status()
		ok := len(st) == 2
		for _, p := range st {
			ok = ok && p.BFD == bfdState && p.State == state
		}
		return ok, fmt.Sprintf("%+v", st)
	})
}

// TestBFDHold: how BFD state changes hold the BGP session down, step by
// step (no network: the changes are handed to the server as its BFD
// sessions would).
func TestBFDHold(t *testing.T) {
	down := bfd.PeerStatus{Name: "r1", State: bfd.StateDown, Diag: bfd.DiagDetectionExpired}
	steps := []struct {
		name string
		in   bfd.PeerStatus
		held bool
	}{
		{"never up: BGP does not wait", bfd.PeerStatus{Name: "r1", State: bfd.StateInit}, false},
		{"down before it was ever up", down, false},
		{"up", bfd.PeerStatus{Name: "r1", State: bfd.StateUp}, false},
		{"detection time expired", down, true},
		{"init again: still held", bfd.PeerStatus{Name: "r1", State: bfd.StateInit}, true},
		{"up again", bfd.PeerStatus{Name: "r1", State: bfd.StateUp}, false},
		{"the router says down", bfd.PeerStatus{Name: "r1", State: bfd.StateDown, Diag: bfd.DiagNeighborDown, RemoteDiag: bfd.DiagPathDown}, true},
		{"up once more", bfd.PeerStatus{Name: "r1", State: bfd.StateUp}, false},
		{"the router turns BFD off", bfd.PeerStatus{Name: "r1", State: bfd.StateDown, Diag: bfd.DiagNeighborDown, RemoteDiag: bfd.DiagAdminDown}, false},
		{"expiry after the admin down: never up since", down, false},
		{"another peer's change", bfd.PeerStatus{Name: "other", State: bfd.StateUp}, false},
	}
	s := New(Options{})
	s.status["r1"] = &PeerStatus{Name: "r1"}
	s.bfd.peers["r1"] = &bfdPeer{state: bfd.StateDown}
	for _, step := range steps {
		s.bfdChanged(step.in)
		if got := s.bfdHeld("r1"); got != step.held {
			t.Fatalf("%s: held = %v, want %v", step.name, got, step.held)
		}
		if step.in.Name == "r1" && s.status["r1"].BFD != step.in.State.String() {
			t.Fatalf("%s: status BFD %q, want %q", step.name, s.status["r1"].BFD, step.in.State)
		}
	}
}
