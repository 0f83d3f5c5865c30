package membership

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
)

// waitDeadline is how long a test waits for a condition before it fails.
// Conditions here take about a second; the deadline only has to catch a
// cluster that never gets there.
const waitDeadline = 30 * time.Second

// waitFor polls cond until it holds, or fails the test with what cond saw
// last.
func waitFor(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(waitDeadline)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %v; last seen:\n%s", what, waitDeadline, seen)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// logRecorder is a slog.Handler that keeps every line, for assertions on
// what memberlist and the Cluster said.
type logRecorder struct {
	mu    sync.Mutex
	lines []string // guarded by mu
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", rec.Level, rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	r.mu.Lock()
	r.lines = append(r.lines, b.String())
	r.mu.Unlock()
	return nil
}

// matching returns the lines that contain every one of subs.
func (r *logRecorder) matching(subs ...string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, l := range r.lines {
		if !slices.ContainsFunc(subs, func(s string) bool { return !strings.Contains(l, s) }) {
			out = append(out, l)
		}
	}
	return out
}

// member is one speaker of a test cluster. Its Cluster is replaced when it
// restarts; the transport (over MockNetwork) or the log stay.
type member struct {
	name string
	logs *logRecorder
	reg  *prometheus.Registry

	mu       sync.Mutex
	c        *Cluster                // guarded by mu; nil when not running
	cancel   context.CancelCauseFunc // guarded by mu
	done     chan error              // guarded by mu
	notified []string                // guarded by mu: Alive() when notify was last called
	// history is Alive() at every notify call of the current Run, and
	// notifiedMembers Members() at the last one; guarded by mu.
	history         [][]string
	notifiedMembers []Member
}

func newMember(name string) *member {
	return &member{name: name, logs: &logRecorder{}}
}

// start runs a Cluster with o (Name, Log and Metrics filled in) and
// returns once its memberlist exists.
func (m *member) start(t testing.TB, o Options, peers func() []string) {
	t.Helper()
	o.Name = m.name
	o.Log = slog.New(m.logs)
	m.reg = prometheus.NewRegistry()
	o.Metrics = NewMetrics(m.reg)
	c, err := New(o)
	if err != nil {
		t.Fatalf("New(%s): %v", m.name, err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	m.mu.Lock()
	m.c, m.cancel, m.done, m.notified = c, cancel, done, nil
	m.history, m.notifiedMembers = nil, nil
	m.mu.Unlock()
	go func() {
		done <- c.Run(ctx, peers, func() {
			alive, members := c.Alive(), c.Members()
			m.mu.Lock()
			m.notified, m.notifiedMembers = alive, members
			m.history = append(m.history, alive)
			m.mu.Unlock()
		})
	}()
	waitFor(t, m.name+" created its memberlist", func() (bool, string) {
		select {
		case err := <-done:
			t.Fatalf("Run(%s) returned early: %v", m.name, err)
		default:
		}
		return c.Addr().IsValid(), "no address yet"
	})
}

// stop ends Run, leaving the cluster or (leave false) vanishing as if
// the process had died, and waits for Run to return.
func (m *member) stop(t testing.TB, leave bool) {
	t.Helper()
	m.mu.Lock()
	c, cancel, done := m.c, m.cancel, m.done
	m.c = nil
	m.mu.Unlock()
	if c == nil {
		return
	}
	if leave {
		cancel(nil)
	} else {
		cancel(errCrash)
	}
	if err := <-done; err != nil {
		t.Errorf("Run(%s): %v", m.name, err)
	}
	if got := c.Alive(); got != nil {
		t.Errorf("%s: Alive after Run returned = %v, want nil", m.name, got)
	}
}

func (m *member) cluster() *Cluster {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.c
}

func (m *member) lastNotified() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.notified
}

// notifyHistory returns Alive() at every notify call of the current Run.
func (m *member) notifyHistory() [][]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.history)
}

func (m *member) lastNotifiedMembers() []Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.notifiedMembers
}

// gauge reads ironlb_memberlist_members from the member's registry.
func (m *member) gauge(t testing.TB) float64 {
	t.Helper()
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "ironlb_memberlist_members" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("ironlb_memberlist_members not registered")
	return 0
}

// waitViews waits until every running member in ms sees exactly want
// alive, and was notified of that set.
func waitViews(t testing.TB, what string, ms []*member, want []string) {
	t.Helper()
	waitFor(t, what, func() (bool, string) {
		ok := true
		var b strings.Builder
		for _, m := range ms {
			c := m.cluster()
			if c == nil {
				continue
			}
			alive, notified := c.Alive(), m.lastNotified()
			if !slices.Equal(alive, want) || !slices.Equal(notified, want) {
				ok = false
			}
			fmt.Fprintf(&b, "  %s: alive %v, at last notify %v\n", m.name, alive, notified)
		}
		return ok, fmt.Sprintf("want %v\n%s", want, b.String())
	})
}

// waitMembers waits until every running member in ms sees exactly want
// through Members, and was notified of it.
func waitMembers(t testing.TB, what string, ms []*member, want []Member) {
	t.Helper()
	waitFor(t, what, func() (bool, string) {
		ok := true
		var b strings.Builder
		for _, m := range ms {
			c := m.cluster()
			if c == nil {
				continue
			}
			got, notified := c.Members(), m.lastNotifiedMembers()
			if d := cmp.Diff(want, got); d != "" {
				ok = false
				fmt.Fprintf(&b, "  %s: Members (-want +got):\n%s", m.name, d)
			} else if d := cmp.Diff(want, notified); d != "" {
				ok = false
				fmt.Fprintf(&b, "  %s: Members at last notify (-want +got):\n%s", m.name, d)
			}
		}
		return ok, b.String()
	})
}

// mockLab is a cluster of members over one memberlist.MockNetwork. Every
// transport is made up front (MockNetwork is not safe for adding transports
// while others send) and is drained while its member is not running, the
// way a host whose speaker died swallows datagrams and refuses connections
// (a MockTransport nobody reads would block its senders forever). Packets
// go through a udpTransport, so a busy member never blocks its senders.
type mockLab struct {
	t       testing.TB
	members map[string]*member
	names   []string
	tr      map[string]*udpTransport
	addr    map[string]string
	// undrain stops the drain of a member's transport; guarded by
	// the test goroutine (only it starts and stops members).
	undrain map[string]func()
}

func newMockLab(t testing.TB, names ...string) *mockLab {
	l := &mockLab{
		t:       t,
		members: map[string]*member{},
		names:   names,
		tr:      map[string]*udpTransport{},
		addr:    map[string]string{},
		undrain: map[string]func(){},
	}
	var mn memberlist.MockNetwork
	for _, n := range names {
		tr := newUDPTransport(t, mn.NewTransport(n))
		ip, port, err := tr.FinalAdvertiseAddr("", 0)
		if err != nil {
			t.Fatal(err)
		}
		l.tr[n] = tr
		l.addr[n] = netip.AddrPortFrom(netip.MustParseAddr(ip.String()), uint16(port)).String()
		l.members[n] = newMember(n)
		l.undrain[n] = drain(tr)
	}
	t.Cleanup(func() {
		// Stopped members' transports are drained so that the members
		// still running never block on them.
		for _, n := range names {
			if l.members[n].cluster() != nil {
				l.stop(n, true)
			}
		}
		for _, n := range names {
			l.undrain[n]()
		}
	})
	return l
}

// peers returns the addresses of every transport, running or not.
func (l *mockLab) peers() []string {
	var out []string
	for _, n := range l.names {
		out = append(out, l.addr[n])
	}
	return out
}

func (l *mockLab) start(name string, o Options, peers func() []string) {
	l.t.Helper()
	l.undrain[name]()
	l.undrain[name] = nil
	o.Transport = l.tr[name]
	if o.RejoinInterval == 0 {
		o.RejoinInterval = 250 * time.Millisecond
	}
	l.members[name].start(l.t, o, peers)
}

func (l *mockLab) stop(name string, leave bool) {
	l.t.Helper()
	l.members[name].stop(l.t, leave)
	l.undrain[name] = drain(l.tr[name])
}

func (l *mockLab) all() []*member {
	var out []*member
	for _, n := range l.names {
		out = append(out, l.members[n])
	}
	return out
}

// udpTransport is a MockTransport whose packets, like UDP datagrams, never
// make the sender wait for the receiver. MockTransport hands each packet
// over an unbuffered channel, and memberlist answers a ping (or relays an
// indirect one) from the goroutine that reads them; members answering each
// other at the same moment then block each other for good, which a CPU-
// starved test machine hit (probes stop, a dead member is never dropped).
// A goroutine here always reads, queueing up to udpQueue packets and
// dropping the rest, as a full socket buffer does.
type udpTransport struct {
	*memberlist.MockTransport
	packets chan *memberlist.Packet
}

const udpQueue = 256

func newUDPTransport(t testing.TB, tr *memberlist.MockTransport) *udpTransport {
	u := &udpTransport{MockTransport: tr, packets: make(chan *memberlist.Packet, udpQueue)}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case p := <-tr.PacketCh():
				select {
				case u.packets <- p:
				default: // dropped
				}
			case <-quit:
				return
			}
		}
	}()
	t.Cleanup(func() { close(quit); <-done })
	return u
}

func (u *udpTransport) PacketCh() <-chan *memberlist.Packet { return u.packets }

// drain reads and drops everything sent to tr until the returned function
// is called.
func drain(tr memberlist.Transport) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-tr.PacketCh():
			case conn := <-tr.StreamCh():
				conn.Close()
			case <-quit:
				return
			}
		}
	}()
	return func() { close(quit); <-done }
}

// without returns names minus drop.
func without(names []string, drop string) []string {
	return slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == drop })
}

// atomicPeers is a peers function whose answer a test changes.
type atomicPeers struct{ v atomic.Pointer[[]string] }

func (p *atomicPeers) set(addrs ...string) { p.v.Store(&addrs) }
func (p *atomicPeers) get() []string {
	if v := p.v.Load(); v != nil {
		return *v
	}
	return nil
}
