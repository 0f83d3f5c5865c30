package bgp

// Network tests: a real Server in a speaker namespace, peering with FRR
// routers in namespaces of their own over veth pairs; what the routers
// received is read from FRR's JSON.
//
// A network namespace belongs to an OS thread, and GoBGP dials from
// goroutines of its own, so the speaker cannot share the test's process.
// The test binary re-executes itself under `ip netns exec <spk>`: the
// whole child lives in the namespace and runs the production code
// unchanged (runHelper), taking commands as JSON lines on stdin.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ironlb/ironlb/internal/testutil"
)

// helperEnv, when set, makes the test binary the speaker helper; its value
// is the log level ("debug" or "info").
const helperEnv = "IRONLB_BGP_HELPER"

func TestMain(m *testing.M) {
	if level := os.Getenv(helperEnv); level != "" {
		os.Exit(runHelper(level, os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// helperOptions are the speaker's options in every network test: short
// retries, so that a restarted router is dialled again soon, and a quick
// backoff for sessions that stay down.
var helperOptions = Options{
	RetryInterval:   time.Second,
	ConnectRetry:    time.Second,
	BackoffStep:     2 * time.Second,
	MaxConnectRetry: 4 * time.Second,
}

type helperCommand struct {
	Op      string   `json:"op"` // "set", "update", "status" or "stats"
	Desired *Desired `json:"desired,omitempty"`
	Changes Changes  `json:"changes,omitempty"`
}

type helperReply struct {
	Status []PeerStatus  `json:"status,omitempty"`
	Stats  *helperMemory `json:"stats,omitempty"`
}

// helperMemory is the helper process's memory use, in bytes.
type helperMemory struct {
	HeapInuse, RSS uint64
}

// runHelper runs a real Server in the process's namespace until in ends,
// and exits 0 only if Run then returns nil.
func runHelper(level string, in io.Reader, out, logw io.Writer) int {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: l}))
	o := helperOptions
	o.Log = log
	s := New(o)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }()
	err := testutil.ServeCommands(in, out, func(c helperCommand) (any, error) {
		var r helperReply
		switch c.Op {
		case "set":
			s.Set(*c.Desired)
		case "update":
			s.Update(c.Changes)
		case "status":
			r.Status = s.Status()
		case "stats":
			r.Stats = memory()
		default:
			return nil, fmt.Errorf("unknown command %q", c.Op)
		}
		return r, nil
	})
	if err != nil {
		log.Error("helper", "error", err)
		return 2
	}
	cancel()
	if err := <-ran; err != nil {
		log.Error("helper: Run", "error", err)
		return 1
	}
	log.Info("helper: Run returned nil")
	return 0
}

func memory() *helperMemory {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := &helperMemory{HeapInuse: ms.HeapInuse}
	status, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" && f[2] == "kB" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			m.RSS = kb << 10
		}
	}
	return m
}

// needNet skips (outside CI) or fails (in CI) a test that lacks root or a
// tool.
func needNet(t testing.TB) {
	t.Helper()
	testutil.NeedNet(t, "ip", "vtysh", bgpdPath, "tcpdump")
}

// The lab's addresses: the speaker's namespace has a /30 and a /64 to each
// router; r1 is an eBGP router, r2 an iBGP one.
const (
	asR1      = 64500
	asSpeaker = 64512 // r2's too
)

var (
	r1v4  = netip.MustParseAddr("198.51.100.1")
	spk1  = netip.MustParseAddr("198.51.100.2") // the speaker's, towards r1
	r2v4  = netip.MustParseAddr("198.51.100.5")
	spk2  = netip.MustParseAddr("198.51.100.6") // the speaker's, towards r2
	r1v6  = netip.MustParseAddr("2001:db8:b6:1::1")
	spk16 = netip.MustParseAddr("2001:db8:b6:1::2")
	r2v6  = netip.MustParseAddr("2001:db8:b6:2::1")
	spk26 = netip.MustParseAddr("2001:db8:b6:2::2")
)

var labSeq atomic.Int64

// lab is the speaker's namespace linked to two router namespaces. Inside
// each namespace the interface is named after the other end ("r1" in the
// speaker's, "spk" in r1's).
type lab struct {
	t      testing.TB
	prefix string
	spk    string
	r1, r2 *router
}

// newLab makes the namespaces and links; the routers start when the test
// starts them, with the neighbors it needs. Names carry the test process's pid, so parallel test
// binaries do not collide, and leftovers of dead processes are removed
// first.
func newLab(t testing.TB) *lab {
	t.Helper()
	removeLeftovers(t)
	l := &lab{t: t, prefix: fmt.Sprintf("bgpt-%d-%d", os.Getpid(), labSeq.Add(1))}
	l.spk = l.netns("spk")
	l.r1 = &router{t: t, ns: l.netns("r1"), asn: asR1, id: r1v4}
	l.r2 = &router{t: t, ns: l.netns("r2"), asn: asSpeaker, id: r2v4}
	l.link(l.r1, "198.51.100.1/30", "198.51.100.2/30", "2001:db8:b6:1::1/64", "2001:db8:b6:1::2/64")
	l.link(l.r2, "198.51.100.5/30", "198.51.100.6/30", "2001:db8:b6:2::1/64", "2001:db8:b6:2::2/64")
	return l
}

var leftover = regexp.MustCompile(`^bgpt-(\d+)-\d+-\S+`)

// removeLeftovers removes what a test process that died left behind: the
// processes in its namespaces (bgpd drops its privileges, which clears
// the parent-death signal), the namespaces and FRR's folders.
func removeLeftovers(t testing.TB) {
	dead := func(name string) bool {
		m := leftover.FindStringSubmatch(name)
		if m == nil || m[1] == strconv.Itoa(os.Getpid()) {
			return false
		}
		_, err := os.Stat("/proc/" + m[1])
		return err != nil
	}
	for _, line := range strings.Split(testutil.Run(t, "ip", "netns", "list"), "\n") {
		if line == "" || !dead(line) {
			continue
		}
		ns := strings.Fields(line)[0]
		killAllIn(ns)
		_ = exec.Command("ip", "netns", "del", ns).Run()
	}
	dirs, _ := os.ReadDir(frrRunDir)
	for _, d := range dirs {
		if dead(d.Name()) {
			_ = os.RemoveAll(frrRunDir + "/" + d.Name())
		}
	}
}

// killAllIn kills whatever still runs in one of the tests' namespaces.
func killAllIn(ns string) {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// netns makes a namespace, with duplicate address detection off (so that
// addresses are usable at once), deleted when the test ends together with
// its veths and whatever still runs in it.
func (l *lab) netns(role string) string {
	ns := l.prefix + "-" + role
	testutil.Run(l.t, "ip", "netns", "add", ns)
	l.t.Cleanup(func() {
		killAllIn(ns)
		_ = exec.Command("ip", "netns", "del", ns).Run()
	})
	for _, s := range []string{"all", "default"} {
		testutil.Run(l.t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf."+s+".accept_dad=0")
	}
	testutil.Run(l.t, "ip", "-n", ns, "link", "set", "lo", "up")
	return ns
}

// link connects the speaker's namespace with r's.
func (l *lab) link(r *router, rv4, sv4, rv6, sv6 string) {
	name := strings.TrimPrefix(r.ns, l.prefix+"-")
	testutil.Run(l.t, "ip", "-n", l.spk, "link", "add", name, "type", "veth", "peer", "name", "spk", "netns", r.ns)
	for _, a := range []struct{ ns, ifname, v4, v6 string }{{l.spk, name, sv4, sv6}, {r.ns, "spk", rv4, rv6}} {
		testutil.Run(l.t, "ip", "-n", a.ns, "addr", "add", a.v4, "dev", a.ifname)
		testutil.Run(l.t, "ip", "-n", a.ns, "addr", "add", a.v6, "dev", a.ifname, "nodad")
		testutil.Run(l.t, "ip", "-n", a.ns, "link", "set", a.ifname, "up")
	}
}

// speaker is a helper process running a Server in the lab's speaker
// namespace.
type speaker struct {
	*testutil.Helper
	t testing.TB
}

// startSpeaker starts the helper at the given log level. When the test
// ends it is stopped (if the test did not) and must exit 0; its log is
// shown if the test failed.
func (l *lab) startSpeaker(level string) *speaker {
	l.t.Helper()
	return &speaker{Helper: testutil.StartHelper(l.t, "speaker", l.spk, helperEnv+"="+level), t: l.t}
}

func (s *speaker) do(c helperCommand) helperReply {
	s.t.Helper()
	var r helperReply
	s.Do(c, &r)
	return r
}

// set hands d to Set.
func (s *speaker) set(d Desired) {
	s.t.Helper()
	s.do(helperCommand{Op: "set", Desired: &d})
}

// update hands c to Update.
func (s *speaker) update(c Changes) {
	s.t.Helper()
	s.do(helperCommand{Op: "update", Changes: c})
}

func (s *speaker) status() []PeerStatus {
	s.t.Helper()
	return s.do(helperCommand{Op: "status"}).Status
}

func (s *speaker) memory() helperMemory {
	s.t.Helper()
	return *s.do(helperCommand{Op: "stats"}).Stats
}

// peerStatus is one peer's Status; ok is false when Status lacks it.
func (s *speaker) peerStatus(name string) (st PeerStatus, ok bool) {
	s.t.Helper()
	for _, st := range s.status() {
		if st.Name == name {
			return st, true
		}
	}
	return PeerStatus{}, false
}

// waitEstablished waits until Status shows every named peer Established.
func (s *speaker) waitEstablished(names ...string) {
	s.t.Helper()
	testutil.Eventually(s.t, fmt.Sprintf("sessions %v established", names), func() (bool, string) {
		st := s.status()
		for _, name := range names {
			found := false
			for _, p := range st {
				if p.Name == name {
					found = p.State == StateEstablished
				}
			}
			if !found {
				return false, fmt.Sprintf("%+v", st)
			}
		}
		return true, ""
	})
}
