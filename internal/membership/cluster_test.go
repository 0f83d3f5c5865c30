package membership

import (
	"strings"
	"testing"
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

// A speaker that started before the others (its first joins fail) finds
// them through its rejoin loop. Only node-a knows any peers, so nothing but
// its retries can bring the cluster together.
func TestRejoinLoopFindsLateStarters(t *testing.T) {
	names := []string{"node-a", "node-b", "node-c"}
	l := newMockLab(t, names...)
	l.start("node-a", Options{}, func() []string { return l.peers()[1:] })
	waitFor(t, "node-a failed to join the peers that are not up", func() (bool, string) {
		lines := l.members["node-a"].logs.matching("cannot join peer")
		return len(lines) >= 2, strings.Join(lines, "\n")
	})
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
