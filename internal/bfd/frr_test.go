package bfd

// Interop with FRR's bfdd: this package's Sessions in one network
// namespace, bfdd in another, a veth between them. The sockets are opened
// inside the namespace through Options.Socket; the rest of the code runs
// unchanged.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ironlb/ironlb/internal/testutil"
)

const (
	bfddPath  = "/usr/lib/frr/bfdd"
	frrRunDir = "/var/run/frr"
	nsPrefix  = "bfdt-"
)

var (
	rtrV4 = netip.MustParseAddr("198.51.100.9")
	spkV4 = netip.MustParseAddr("198.51.100.10")
	rtrV6 = netip.MustParseAddr("2001:db8:bf::1")
	spkV6 = netip.MustParseAddr("2001:db8:bf::2")
)

var seq atomic.Int64

// pair is two namespaces joined by a veth: "spk" runs Sessions, "rtr" bfdd.
type pair struct {
	t        testing.TB
	spk, rtr string
	dir      string
	cmd      *exec.Cmd
	done     chan struct{}
	log      *testutil.SyncBuffer
}

func newPair(t testing.TB) *pair {
	t.Helper()
	testutil.NeedNet(t, "ip", "vtysh", bfddPath)
	testutil.RemoveLeftoverNetNS(t, nsPrefix)
	base := fmt.Sprintf("%s%dx%d", nsPrefix, os.Getpid(), seq.Add(1))
	p := &pair{t: t, spk: base + "-spk", rtr: base + "-rtr"}
	for _, ns := range []string{p.spk, p.rtr} {
		testutil.Run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			// bfdd drops its privileges, which clears the parent-death
			// signal: kill whatever still runs in the namespace first.
			out, _ := exec.Command("ip", "netns", "pids", ns).Output()
			for _, f := range strings.Fields(string(out)) {
				if pid, err := strconv.Atoi(f); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			_ = exec.Command("ip", "netns", "del", ns).Run()
		})
		testutil.Run(t, "ip", "-n", ns, "link", "set", "lo", "up")
		// Keep IPv6 addresses while the link is down (losePath).
		testutil.Run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.keep_addr_on_down=1")
	}
	testutil.Run(t, "ip", "-n", p.spk, "link", "add", "rtr", "type", "veth", "peer", "name", "spk", "netns", p.rtr)
	for _, a := range []struct {
		ns, ifname string
		v4, v6     netip.Addr
	}{{p.spk, "rtr", spkV4, spkV6}, {p.rtr, "spk", rtrV4, rtrV6}} {
		testutil.Run(t, "ip", "-n", a.ns, "addr", "add", a.v4.String()+"/30", "dev", a.ifname)
		testutil.Run(t, "ip", "-n", a.ns, "addr", "add", a.v6.String()+"/64", "dev", a.ifname, "nodad")
		testutil.Run(t, "ip", "-n", a.ns, "link", "set", a.ifname, "up")
	}
	return p
}

// startBFDD runs bfdd in the router namespace with a peer per family; it
// is killed when the test ends, and its log shown if the test failed.
func (p *pair) startBFDD(peers string) {
	t := p.t
	t.Helper()
	u, err := user.Lookup("frr")
	if err != nil {
		t.Fatalf("FRR is not installed (no frr user): %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	p.dir = filepath.Join(frrRunDir, p.rtr)
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p.dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(p.dir, "bfdd.conf")
	if err := os.WriteFile(conf, []byte("bfd\n"+peers+"!\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.log = &testutil.SyncBuffer{}
	p.cmd = exec.Command("ip", "netns", "exec", p.rtr, bfddPath, "-N", p.rtr, "-f", conf,
		"-i", filepath.Join(p.dir, "bfdd.pid"), "--bfdctl", filepath.Join(p.dir, "bfdd.sock"))
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		_ = os.RemoveAll(p.dir)
		if t.Failed() {
			t.Logf("bfdd logged:\n%s", p.log)
		}
	})
	testutil.Eventually(t, "bfdd answering vtysh", func() (bool, string) {
		out, err := p.vtysh("show bfd peers json")
		return err == nil, out
	})
}

func (p *pair) vtysh(cmds ...string) (string, error) {
	args := []string{"-N", p.rtr}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	var stderr strings.Builder
	cmd := exec.Command("vtysh", args...)
	cmd.Stderr = &stderr // vtysh warns there that the instance has no vtysh.conf
	out, err := cmd.Output()
	if err != nil {
		return string(out) + stderr.String(), err
	}
	return string(out), nil
}

// frrPeer is what bfdd shows of a session.
type frrPeer struct {
	Peer             string `json:"peer"`
	Status           string `json:"status"`
	Diagnostic       string `json:"diagnostic"`
	RemoteDiagnostic string `json:"remote-diagnostic"`
	RemoteTransmit   int    `json:"remote-transmit-interval"`
	RemoteReceive    int    `json:"remote-receive-interval"`
}

func (p *pair) frrPeers() map[netip.Addr]frrPeer {
	p.t.Helper()
	out, err := p.vtysh("show bfd peers json")
	if err != nil {
		p.t.Fatalf("show bfd peers: %v\n%s", err, out)
	}
	var list []frrPeer
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		p.t.Fatalf("show bfd peers: %v\n%s", err, out)
	}
	m := map[netip.Addr]frrPeer{}
	for _, f := range list {
		if a, err := netip.ParseAddr(f.Peer); err == nil {
			m[a] = f
		}
	}
	return m
}

// frrPeerConf is bfdd's configuration of one peer.
func frrPeerConf(peer, local netip.Addr, extra ...string) string {
	s := fmt.Sprintf(" peer %s local-address %s\n  receive-interval 100\n  transmit-interval 100\n  detect-multiplier 3\n", peer, local)
	for _, e := range extra {
		s += "  " + e + "\n"
	}
	return s + " !\n"
}

// speakerSide runs Sessions in the speaker's namespace and records every state
// change with its time.
type speakerSide struct {
	*Sessions
	mu      sync.Mutex
	changes []PeerStatus
}

func (p *pair) runOurs(peers ...Peer) *speakerSide {
	p.t.Helper()
	o := &speakerSide{}
	var log strings.Builder
	var logMu sync.Mutex
	debug := &testutil.SyncBuffer{}
	o.Sessions = New(Options{
		Log:    slog.New(slog.NewTextHandler(debug, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Socket: func(open func() error) error { return testutil.InNetNS(p.spk, open) },
		Changed: func(ps PeerStatus) {
			o.mu.Lock()
			o.changes = append(o.changes, ps)
			o.mu.Unlock()
			logMu.Lock()
			fmt.Fprintf(&log, "%s %s %s %s\n", ps.Since.Format("15:04:05.000"), ps.Name, ps.State, ps.Diag)
			logMu.Unlock()
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- o.Run(ctx) }()
	p.t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			p.t.Errorf("Run: %v", err)
		}
		if p.t.Failed() {
			logMu.Lock()
			p.t.Logf("our state changes:\n%s\nour log:\n%s", log.String(), lastLines(debug.String(), 40))
			logMu.Unlock()
		}
	})
	o.Set(peers)
	return o
}

func (o *speakerSide) state(name string) PeerStatus {
	for _, s := range o.Status() {
		if s.Name == name {
			return s
		}
	}
	return PeerStatus{}
}

// firstChange is when peer name first entered state at or after from.
func (o *speakerSide) firstChange(name string, s State, from time.Time) (time.Time, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, c := range o.changes {
		if c.Name == name && c.State == s && !c.Since.Before(from) {
			return c.Since, true
		}
	}
	return time.Time{}, false
}

var fastPeer = Config{DesiredMinTx: 100 * time.Millisecond, RequiredMinRx: 100 * time.Millisecond, DetectMult: 3}

func (p *pair) waitUp(o *speakerSide, names map[string]netip.Addr) {
	p.t.Helper()
	for name, addr := range names {
		testutil.Eventually(p.t, name+" Up on both sides", func() (bool, string) {
			f := p.frrPeers()[addr]
			st := o.state(name)
			return st.State == StateUp && f.Status == "up", fmt.Sprintf("local %+v, bfdd %+v", st, f)
		})
	}
}

func TestFRRInterop(t *testing.T) {
	p := newPair(t)
	p.startBFDD(frrPeerConf(spkV4, rtrV4) + frrPeerConf(spkV6, rtrV6))
	v4 := Peer{Name: "v4", Remote: rtrV4, Local: spkV4, Config: fastPeer}
	v6 := Peer{Name: "v6", Remote: rtrV6, Local: spkV6, Config: fastPeer}
	o := p.runOurs(v4, v6)
	both := map[string]netip.Addr{"v4": spkV4, "v6": spkV6}
	p.waitUp(o, both)

	t.Run("parameter change by poll sequence", func(t *testing.T) {
		slow := v4
		slow.DesiredMinTx = 300 * time.Millisecond
		o.Set([]Peer{slow, v6})
		testutil.Eventually(t, "bfdd sees the new transmit interval", func() (bool, string) {
			f := p.frrPeers()[spkV4]
			return f.RemoteTransmit == 300 && f.Status == "up", fmt.Sprintf("%+v", f)
		})
		o.Set([]Peer{v4, v6})
		testutil.Eventually(t, "bfdd sees the old transmit interval again", func() (bool, string) {
			f := p.frrPeers()[spkV4]
			return f.RemoteTransmit == 100 && f.Status == "up", fmt.Sprintf("%+v", f)
		})
	})

	t.Run("remote admin down", func(t *testing.T) {
		from := time.Now()
		conf := func(cmd string) {
			if out, err := p.vtysh("configure terminal", "bfd", "peer "+spkV4.String()+" local-address "+rtrV4.String(), cmd); err != nil {
				t.Fatalf("%s: %v\n%s", cmd, err, out)
			}
		}
		conf("shutdown")
		testutil.Eventually(t, "v4 Down after bfdd's shutdown", func() (bool, string) {
			st := o.state("v4")
			return st.State == StateDown && st.Diag == DiagNeighborDown, fmt.Sprintf("%+v", st)
		})
		if _, ok := o.firstChange("v6", StateDown, from); ok {
			t.Fatal("v6 went down with v4")
		}
		conf("no shutdown")
		p.waitUp(o, map[string]netip.Addr{"v4": spkV4})
	})

	t.Run("our admin down", func(t *testing.T) {
		o.Set([]Peer{v6}) // removing a session sends AdminDown
		testutil.Eventually(t, "bfdd sees v4 administratively down", func() (bool, string) {
			f := p.frrPeers()[spkV4]
			return f.Status == "down" && f.RemoteDiagnostic == "administratively down", fmt.Sprintf("%+v", f)
		})
		o.Set([]Peer{v4, v6})
		p.waitUp(o, both)
	})

	t.Run("path lost", func(t *testing.T) {
		for name, d := range p.losePath(t, o, both) {
			t.Logf("%s: %s", name, d)
		}
	})
}

// detection is how long after the packets were dropped each side saw
// the session Down. The drop comes at a random point of the transmit
// interval, so from the last packet received the detection time is
// 3 × 100ms, and from the drop it is 200–300ms (less jitter).
type detection struct{ ours, frr time.Duration }

func (d detection) String() string {
	return fmt.Sprintf("our side Down after %s, bfdd's after at most %s", d.ours.Round(time.Millisecond), d.frr.Round(time.Millisecond))
}

// losePath takes the veth down (the cable pulled: no packet passes either
// way) until both sides of every session are Down, then up again, and
// waits until the sessions are Up. bfdd's time is when vtysh first showed Down (an
// upper bound: vtysh is polled).
func (p *pair) losePath(t testing.TB, o *speakerSide, peers map[string]netip.Addr) map[string]detection {
	t.Helper()
	from := time.Now()
	testutil.Run(t, "ip", "-n", p.spk, "link", "set", "rtr", "down")
	out := map[string]detection{}
	frrDown := map[string]time.Duration{}
	testutil.Eventually(t, "every session Down on both sides", func() (bool, string) {
		frr := p.frrPeers()
		at := time.Since(from)
		done, why := true, ""
		for name, addr := range peers {
			if _, seen := frrDown[name]; !seen && frr[addr].Status == "down" {
				frrDown[name] = at
			}
			st := o.state(name)
			if _, seen := frrDown[name]; !seen || st.State != StateDown || st.Diag != DiagDetectionExpired {
				done, why = false, fmt.Sprintf("%s: local %+v, bfdd %+v", name, st, frr[addr])
			}
		}
		return done, why
	})
	for name := range peers {
		at, _ := o.firstChange(name, StateDown, from)
		out[name] = detection{ours: at.Sub(from), frr: frrDown[name]}
	}
	testutil.Run(t, "ip", "-n", p.spk, "link", "set", "rtr", "up")
	p.waitUp(o, peers)
	return out
}

// BenchmarkFRRDetection measures, per trial, how long after the path is
// lost each side declares the session Down (100ms intervals, multiplier
// 3), and reports the worst over the trials:
//
//	go test -run '^$' -bench FRRDetection -benchtime 10x ./internal/bfd
func BenchmarkFRRDetection(b *testing.B) {
	p := newPair(b)
	p.startBFDD(frrPeerConf(spkV4, rtrV4) + frrPeerConf(spkV6, rtrV6))
	o := p.runOurs(Peer{Name: "v4", Remote: rtrV4, Local: spkV4, Config: fastPeer},
		Peer{Name: "v6", Remote: rtrV6, Local: spkV6, Config: fastPeer})
	both := map[string]netip.Addr{"v4": spkV4, "v6": spkV6}
	p.waitUp(o, both)
	var worstOurs, worstFRR time.Duration
	for i := 0; b.Loop(); i++ {
		for name, d := range p.losePath(b, o, both) {
			b.Logf("trial %d %s: %s", i, name, d)
			worstOurs, worstFRR = max(worstOurs, d.ours), max(worstFRR, d.frr)
		}
	}
	b.ReportMetric(float64(worstOurs.Milliseconds()), "ms-ours-max")
	b.ReportMetric(float64(worstFRR.Milliseconds()), "ms-bfdd-max")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
