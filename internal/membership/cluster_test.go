package membership

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

var fourNodes = []string{"node-a", "node-b", "node-c", "node-d"}

// startAll starts every member of l, each joining all the others.
func startAll(l *mockLab) {
	l.t.Helper()
	for _, n := range l.names {
		l.start(n, Options{}, l.peers)
	}
}

func TestJoin(t *testing.T) {
	l := newMockLab(t, fourNodes...)
	startAll(l)
	waitViews(t, "every member sees all four", l.all(), fourNodes)
	for _, m := range l.all() {
		if got := m.gauge(t); got != 4 {
			t.Errorf("%s: ironlb_memberlist_members = %v, want 4", m.name, got)
		}
	}
}

// A member whose Run ends leaves: the others drop it through its leave
// message, never through failure detection (whose "Marking … as failed" a
// member logs when its suspicion timer runs out).
func TestLeave(t *testing.T) {
	l := newMockLab(t, fourNodes...)
	startAll(l)
	waitViews(t, "joined", l.all(), fourNodes)

	l.stop("node-d", true)
	rest := without(fourNodes, "node-d")
	waitViews(t, "node-d dropped after leaving", l.all(), rest)
	for _, m := range l.all()[:3] {
		if lines := m.logs.matching("Marking node-d as failed"); len(lines) > 0 {
			t.Errorf("%s detected node-d's failure instead of its leave: %q", m.name, lines)
		}
		if got := m.gauge(t); got != 3 {
			t.Errorf("%s: ironlb_memberlist_members = %v, want 3", m.name, got)
		}
	}
	if got := l.members["node-d"].gauge(t); got != 0 {
		t.Errorf("node-d: ironlb_memberlist_members after Run = %v, want 0", got)
	}
	if lines := l.members["node-d"].logs.matching("memberlist left"); len(lines) != 1 {
		t.Errorf("node-d logged %q, want one \"memberlist left\"", lines)
	}
}

// A member that vanishes without leaving is dropped by failure detection.
func TestFailure(t *testing.T) {
	l := newMockLab(t, fourNodes...)
	startAll(l)
	waitViews(t, "joined", l.all(), fourNodes)

	l.stop("node-b", false)
	waitViews(t, "node-b dropped after failing", l.all(), without(fourNodes, "node-b"))
	var detected []string
	for _, m := range l.all() {
		detected = append(detected, m.logs.matching("Marking node-b as failed")...)
	}
	if len(detected) == 0 {
		t.Errorf("no member logged detecting node-b's failure (\"Marking node-b as failed\")")
	}
}

// A speaker that restarts under the same name, after leaving or after
// failing, is a member again.
func TestRejoin(t *testing.T) {
	for _, tc := range []struct {
		name  string
		leave bool
	}{{"after leave", true}, {"after failure", false}} {
		t.Run(tc.name, func(t *testing.T) {
			l := newMockLab(t, fourNodes...)
			startAll(l)
			waitViews(t, "joined", l.all(), fourNodes)

			for round := range 2 {
				l.stop("node-c", tc.leave)
				waitViews(t, "node-c dropped", l.all(), without(fourNodes, "node-c"))
				l.start("node-c", Options{}, l.peers)
				waitViews(t, "node-c back", l.all(), fourNodes)
				for _, m := range l.all() {
					if lines := m.logs.matching("Conflicting address"); len(lines) > 0 {
						t.Fatalf("round %d: %s saw a name conflict %d times, first: %s", round, m.name, len(lines), lines[0])
					}
				}
			}
		})
	}
}

// A speaker that started before the others (its first joins fail, and it
// settles alone after its JoinTimeout) finds them through its rejoin loop.
// Only node-a knows any peers, so nothing but its retries can bring the
// cluster together.
func TestRejoinLoopFindsLateStarters(t *testing.T) {
	names := []string{"node-a", "node-b", "node-c"}
	l := newMockLab(t, names...)
	l.start("node-a", Options{JoinTimeout: 100 * time.Millisecond}, func() []string { return l.peers()[1:] })
	waitViews(t, "node-a settled alone", l.all(), names[:1])
	if lines := l.members["node-a"].logs.matching("cannot join peer"); len(lines) == 0 {
		t.Fatal("node-a settled alone without having failed to join")
	}
	l.start("node-b", Options{}, nil)
	l.start("node-c", Options{}, nil)
	waitViews(t, "node-a found the late starters", l.all(), names)
}

func TestRunTwice(t *testing.T) {
	l := newMockLab(t, "node-a")
	l.start("node-a", Options{}, nil)
	waitViews(t, "alone", l.all(), []string{"node-a"})
	if err := l.members["node-a"].cluster().Run(t.Context(), nil, nil); err == nil {
		t.Error("second Run returned nil, want an error")
	}
}

// Every member sees the metadata of every other, members without any
// (as of a release before metadata) among them, and sees it change when
// a member restarts with other metadata.
func TestMeta(t *testing.T) {
	names := []string{"node-a", "node-b", "node-c"}
	l := newMockLab(t, names...)
	long := bytes.Repeat([]byte{0xa5}, 512) // memberlist.MetaMaxSize
	meta := map[string][]byte{"node-a": []byte("release 2: a"), "node-b": nil, "node-c": long}
	for _, n := range names {
		l.start(n, Options{Meta: meta[n]}, l.peers)
	}
	want := []Member{{"node-a", meta["node-a"]}, {"node-b", nil}, {"node-c", long}}
	waitMembers(t, "every member sees every member's metadata", l.all(), want)

	// Members returns copies.
	got := l.members["node-a"].cluster().Members()
	got[2].Meta[0] = 0
	if again := l.members["node-a"].cluster().Members(); again[2].Meta[0] != 0xa5 {
		t.Error("changing what Members returned changed the Cluster's state")
	}

	// node-b is upgraded: it crashes and comes back at once with metadata
	// (the others may or may not have noticed the crash), node-a is
	// downgraded: it leaves and comes back without.
	l.stop("node-b", false)
	l.start("node-b", Options{Meta: []byte("release 2: b")}, l.peers)
	l.stop("node-a", true)
	l.start("node-a", Options{}, l.peers)
	want = []Member{{"node-a", nil}, {"node-b", []byte("release 2: b")}, {"node-c", long}}
	waitMembers(t, "every member sees the new metadata", l.all(), want)
}

// gatedPeers is a peers function that blocks until release is called, as
// a speaker's peer discovery may take a while, and then returns what
// release was given.
type gatedPeers struct {
	gate  chan struct{}
	once  sync.Once
	peers func() []string // set before gate is closed
}

func newGatedPeers(t *testing.T) *gatedPeers {
	g := &gatedPeers{gate: make(chan struct{})}
	// Registered after the lab, so it runs before the lab stops members.
	t.Cleanup(func() { g.release(func() []string { return nil }) })
	return g
}

func (g *gatedPeers) release(peers func() []string) {
	g.once.Do(func() { g.peers = peers; close(g.gate) })
}

func (g *gatedPeers) get() []string {
	<-g.gate
	return g.peers()
}

// A member whose peers are alive publishes nothing until it has joined
// them: Alive and Members are nil and notify is not called, even once the
// others have found it and it has heard of all of them. Its first notify
// holds every member, never itself alone (which would make a restarting
// speaker claim every address). What it heard before settling counts: it
// is complete even when it settles because its peers name only itself.
func TestJoinGate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		peers func(l *mockLab) func() []string
	}{
		{"joins a peer", func(l *mockLab) func() []string { return l.peers }},
		{"peers name only itself", func(l *mockLab) func() []string {
			return func() []string { return []string{l.addr["node-d"]} }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newMockLab(t, fourNodes...)
			for _, n := range fourNodes[:3] {
				l.start(n, Options{}, l.peers)
			}
			waitViews(t, "three joined", l.all()[:3], fourNodes[:3])

			d := l.members["node-d"]
			gate := newGatedPeers(t)
			l.start("node-d", Options{}, gate.get)
			c := d.cluster()
			checkSilent := func(when string) {
				t.Helper()
				if a, m, j := c.Alive(), c.Members(), c.Joined(); a != nil || m != nil || j {
					t.Errorf("%s: Alive %v, Members %v, Joined %v; want nil, nil, false", when, a, m, j)
				}
				if h := d.notifyHistory(); len(h) > 0 {
					t.Errorf("%s: notify called with %v", when, h)
				}
				if g := d.gauge(t); g != 0 {
					t.Errorf("%s: ironlb_memberlist_members = %v, want 0", when, g)
				}
			}
			checkSilent("list created, peers not answered yet")

			// The others' rejoin loops find node-d; it hears of them all.
			waitViews(t, "the others see node-d", l.all()[:3], fourNodes)
			waitFor(t, "node-d heard of every member", func() (bool, string) {
				n := len(c.memberAddrs())
				return n == 4, fmt.Sprintf("%d members", n)
			})
			checkSilent("every member known, peers not answered yet")

			gate.release(tc.peers(l))
			waitViews(t, "node-d settled", l.all(), fourNodes)
			if !c.Joined() {
				t.Error("Joined false after settling")
			}
			h := d.notifyHistory()
			if !slices.Equal(h[0], fourNodes) {
				t.Errorf("first notify saw %v, want %v", h[0], fourNodes)
			}
			for i, alive := range h {
				if slices.Equal(alive, []string{"node-d"}) {
					t.Errorf("notify %d saw node-d alone; history %v", i, h)
				}
			}
		})
	}
}

// A member that knows of peers but reaches none of them stays silent for
// JoinTimeout, then settles alone and says which peers it could not reach.
func TestJoinTimeout(t *testing.T) {
	l := newMockLab(t, "node-a", "node-b") // node-b never runs
	const timeout = 300 * time.Millisecond
	start := time.Now()
	l.start("node-a", Options{JoinTimeout: timeout, JoinRetry: 50 * time.Millisecond}, l.peers)
	a := l.members["node-a"]
	waitViews(t, "node-a settled alone", l.all(), []string{"node-a"})
	// A lower bound only: it cannot have settled before the timeout.
	if took := time.Since(start); took < timeout {
		t.Errorf("settled alone after %v, before JoinTimeout %v", took, timeout)
	}
	if h := a.notifyHistory(); !slices.Equal(h[0], []string{"node-a"}) {
		t.Errorf("first notify saw %v, want [node-a]", h[0])
	}
	if lines := a.logs.matching("WARN", "joined none of its peers", l.addr["node-b"]); len(lines) != 1 {
		t.Errorf("want one warning naming the unreachable node-b (%s); got %q", l.addr["node-b"], lines)
	}
	if lines := a.logs.matching("cannot join peer", l.addr["node-a"]); len(lines) > 0 {
		t.Errorf("node-a tried to join itself: %q", lines)
	}
}

// A member with no peer but itself settles at once: a JoinTimeout of an
// hour cannot be what settled it.
func TestNoPeersSettlesAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		peers func(l *mockLab) func() []string
	}{
		{"no peers function", func(*mockLab) func() []string { return nil }},
		{"no peers", func(*mockLab) func() []string { return func() []string { return nil } }},
		{"only itself", func(l *mockLab) func() []string { return l.peers }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newMockLab(t, "node-a")
			l.start("node-a", Options{JoinTimeout: time.Hour}, tc.peers(l))
			waitViews(t, "node-a settled alone", l.all(), []string{"node-a"})
			a := l.members["node-a"]
			if !a.cluster().Joined() {
				t.Error("Joined false after settling")
			}
			if lines := a.logs.matching("WARN", "joined none of its peers"); len(lines) > 0 {
				t.Errorf("warned: %q", lines)
			}
		})
	}
}

// A member whose peers function answers only after JoinTimeout has passed
// still tries every peer once before it concludes that it is alone.
// node-a knows no peers, so only node-b's own join can bring them together.
func TestSlowPeers(t *testing.T) {
	names := []string{"node-a", "node-b"}
	l := newMockLab(t, names...)
	l.start("node-a", Options{}, nil)
	const timeout = 50 * time.Millisecond
	gate := newGatedPeers(t)
	l.start("node-b", Options{JoinTimeout: timeout}, gate.get)
	time.Sleep(2 * timeout) // peers answers only once the deadline is past
	gate.release(l.peers)
	waitViews(t, "node-b joined node-a", l.all(), names)
	b := l.members["node-b"]
	if h := b.notifyHistory(); !slices.Equal(h[0], names) {
		t.Errorf("node-b's first notify saw %v, want %v", h[0], names)
	}
	if lines := b.logs.matching("joined none of its peers"); len(lines) > 0 {
		t.Errorf("node-b settled alone: %q", lines)
	}
}
