package membership

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// directory lists the addresses of the running members of a loopback test,
// as a speaker's peer discovery would.
type directory struct {
	mu      sync.Mutex
	members []*member // guarded by mu
}

func (d *directory) add(m *member) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.members = append(d.members, m)
}

func (d *directory) peers() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, m := range d.members {
		if c := m.cluster(); c != nil {
			out = append(out, c.Addr().String())
		}
	}
	return out
}

// startLoopback starts m on 127.0.0.1:port (0: any free port), joining
// the members of d, and adds it to d. A member that can join none of them
// (another key) settles alone after a second.
func startLoopback(t testing.TB, d *directory, m *member, key []byte, port int) {
	t.Helper()
	m.start(t, Options{BindAddr: loopback, Port: port, Key: key, RejoinInterval: 250 * time.Millisecond, JoinTimeout: time.Second}, d.peers)
	d.add(m)
	t.Cleanup(func() { m.stop(t, true) })
}

// freePort returns a port, other than not, on which 127.0.0.1 had both a
// TCP and a UDP port free a moment ago.
func freePort(t testing.TB, not int) int {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		ln.Close()
		if err == nil {
			pc.Close()
			if port != not {
				return port
			}
		}
	}
	t.Fatal("no free port on 127.0.0.1")
	return 0
}

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// Encrypted members over real sockets: they join, drop a member whose
// process died, and take it back when it restarts under its name at
// another port, without a name conflict.
func TestLoopback(t *testing.T) {
	var d directory
	ms := []*member{newMember("node-a"), newMember("node-b"), newMember("node-c")}
	names := []string{"node-a", "node-b", "node-c"}
	key := testKey(1)
	for _, m := range ms {
		startLoopback(t, &d, m, key, 0)
	}
	waitViews(t, "joined", ms, names)

	c := ms[2]
	oldPort := int(c.cluster().Addr().Port())
	c.stop(t, false)
	waitViews(t, "node-c dropped after failing", ms, names[:2])

	c.start(t, Options{BindAddr: loopback, Port: freePort(t, oldPort), Key: key, RejoinInterval: 250 * time.Millisecond}, d.peers)
	waitViews(t, "node-c back at another port", ms, names)
	for _, m := range ms {
		if lines := m.logs.matching("Conflicting address"); len(lines) > 0 {
			t.Errorf("%s rejected node-c's new address %d times, first: %s", m.name, len(lines), lines[0])
		}
		if lines := m.logs.matching("memberlist started", "encrypted=true"); len(lines) == 0 {
			t.Errorf("%s did not log starting encrypted", m.name)
		}
	}
}

// A member with another key, or none, cannot join, and the logs of both
// sides say why.
func TestWrongKey(t *testing.T) {
	var d directory
	a, b := newMember("node-a"), newMember("node-b")
	other, plain := newMember("node-other-key"), newMember("node-no-key")
	startLoopback(t, &d, a, testKey(1), 0)
	startLoopback(t, &d, b, testKey(1), 0)
	waitViews(t, "same key joined", []*member{a, b}, []string{"node-a", "node-b"})
	startLoopback(t, &d, other, testKey(2), 0)
	startLoopback(t, &d, plain, nil, 0)

	// Each outsider retries every peer; after several failed rounds they
	// are still alone and the others never saw them.
	for _, m := range []*member{other, plain} {
		waitFor(t, m.name+" failed joins", func() (bool, string) {
			lines := m.logs.matching("cannot join peer")
			return len(lines) >= 6, fmt.Sprintf("alive %v; failed joins:\n%s", m.cluster().Alive(), strings.Join(lines, "\n"))
		})
	}
	waitViews(t, "keyed members by themselves", []*member{a, b}, []string{"node-a", "node-b"})
	waitViews(t, "other key alone", []*member{other}, []string{"node-other-key"})
	waitViews(t, "no key alone", []*member{plain}, []string{"node-no-key"})

	// Both sides name the cause: the keyed members when refusing the
	// outsiders, the outsiders in the warning about their failed join.
	for _, want := range []struct {
		m    *member
		subs []string
	}{
		{a, []string{"ERROR", "no installed keys could decrypt the message"}},
		{a, []string{"ERROR", "encryption is configured but remote state is not encrypted"}},
		{other, []string{"WARN", "cannot join peer", "no installed keys could decrypt the message"}},
		{plain, []string{"WARN", "cannot join peer", "remote state is encrypted and encryption is not configured"}},
	} {
		if len(want.m.logs.matching(want.subs...)) == 0 {
			t.Errorf("%s logged no line with %q; its errors and warnings:\n%s", want.m.name, want.subs,
				strings.Join(append(want.m.logs.matching("ERROR"), want.m.logs.matching("WARN")...), "\n"))
		}
	}
}

// rollout restarts the members one at a time with new keys, waiting until
// each has joined the others again, and returns every view of the alive
// set that any member published meanwhile. seen counts, per member, the
// views of its current run already returned (or to be ignored).
func rollout(t *testing.T, d *directory, ms []*member, names []string, seen map[*member]int, primary []byte, secondary ...[]byte) [][]string {
	t.Helper()
	var views [][]string
	collect := func(m *member) {
		h := m.notifyHistory()
		views = append(views, h[seen[m]:]...)
		seen[m] = len(h)
	}
	for _, m := range ms {
		collect(m)
		port := int(m.cluster().Addr().Port())
		m.stop(t, true)
		m.start(t, Options{BindAddr: loopback, Port: port, Key: primary, SecondaryKeys: secondary,
			RejoinInterval: 250 * time.Millisecond, JoinTimeout: time.Second}, d.peers)
		seen[m] = 0
		waitViews(t, m.name+" back", ms, names)
	}
	for _, m := range ms {
		collect(m)
	}
	return views
}

// smallest returns the fewest members in any of views.
func smallest(views [][]string) (int, []string) {
	n, which := -1, []string(nil)
	for _, v := range views {
		if n < 0 || len(v) < n {
			n, which = len(v), v
		}
	}
	return n, which
}

// TestKeyRotation: a key is rotated in three rollouts, one member
// restarting at a time (the new key as secondary, then primary with the
// old one secondary, then alone), and the members stay one cluster
// throughout: no member ever sees fewer than all but the restarting one.
// Rolled out directly, the new key splits the cluster.
func TestKeyRotation(t *testing.T) {
	oldKey, newKey := testKey(1), testKey(2)
	names := []string{"node-a", "node-b", "node-c"}
	start := func(d *directory) []*member {
		ms := []*member{newMember(names[0]), newMember(names[1]), newMember(names[2])}
		for _, m := range ms {
			startLoopback(t, d, m, oldKey, 0)
		}
		waitViews(t, "joined", ms, names)
		return ms
	}

	t.Run("in three steps", func(t *testing.T) {
		var d directory
		ms := start(&d)
		// What the members saw while they started is not the rotation's.
		seen := map[*member]int{}
		for _, m := range ms {
			seen[m] = len(m.notifyHistory())
		}
		var views [][]string
		views = append(views, rollout(t, &d, ms, names, seen, oldKey, newKey)...)
		views = append(views, rollout(t, &d, ms, names, seen, newKey, oldKey)...)
		views = append(views, rollout(t, &d, ms, names, seen, newKey)...)
		if len(views) < 9 {
			t.Errorf("only %d views published during three rollouts of three members", len(views))
		}
		if n, v := smallest(views); n < len(names)-1 {
			t.Errorf("a member saw only %v during the rotation", v)
		}
		for _, m := range ms {
			if lines := m.logs.matching("memberlist started", "secondaryKeys=0"); len(lines) == 0 {
				t.Errorf("%s did not end with the new key alone", m.name)
			}
		}
	})

	t.Run("at once, which splits", func(t *testing.T) {
		var d directory
		ms := start(&d)
		m := ms[0]
		port := int(m.cluster().Addr().Port())
		m.stop(t, true)
		m.start(t, Options{BindAddr: loopback, Port: port, Key: newKey, RejoinInterval: 250 * time.Millisecond, JoinTimeout: time.Second}, d.peers)
		waitViews(t, "the new key alone", ms[:1], names[:1])
		waitViews(t, "the old key without it", ms[1:], names[1:])
	})
}

// Secondary keys need a primary and valid lengths.
func TestSecondaryKeysChecked(t *testing.T) {
	for _, o := range []Options{
		{Name: "a", BindAddr: loopback, SecondaryKeys: [][]byte{testKey(1)}},
		{Name: "a", BindAddr: loopback, Key: testKey(1), SecondaryKeys: [][]byte{[]byte("short")}},
	} {
		if _, err := New(o); err == nil || !strings.Contains(err.Error(), "SecondaryKeys") {
			t.Errorf("New with secondary keys %q and key %v: %v, want an error naming SecondaryKeys", o.SecondaryKeys, o.Key != nil, err)
		}
	}
}

// TestReachable: Reachable pings the alive members at once; a member that
// stopped answering is left out at once, before memberlist declares it
// dead.
func TestReachable(t *testing.T) {
	var d directory
	names := []string{"node-a", "node-b", "node-c"}
	ms := []*member{newMember(names[0]), newMember(names[1]), newMember(names[2])}
	for _, m := range ms {
		startLoopback(t, &d, m, testKey(1), 0)
	}
	waitViews(t, "joined", ms, names)
	if got := ms[0].cluster().Reachable(0); !slices.Equal(got, names) {
		t.Fatalf("Reachable = %v, want %v", got, names)
	}
	ms[2].stop(t, false)
	if got := ms[0].cluster().Reachable(0); !slices.Equal(got, names[:2]) {
		t.Errorf("Reachable right after node-c crashed = %v, want %v", got, names[:2])
	}
	// Two answers are enough: node-a's own and node-b's, without waiting
	// for node-c's missing one.
	if got := ms[0].cluster().Reachable(2); !slices.Equal(got, names[:2]) {
		t.Errorf("Reachable(2) = %v, want %v", got, names[:2])
	}
	if got := (&Cluster{}).Reachable(0); got != nil {
		t.Errorf("Reachable of a cluster not running = %v, want nil", got)
	}
}
