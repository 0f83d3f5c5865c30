package suite

// The fault scenarios of issue 16: speakers that stay correct when they
// are restarted, cut off from each other, unplugged, left without an API
// server, or given a new memberlist key. Each runs on a lab of its own
// with a layer 2 Service owned by every node, a stream of requests to
// each (a new connection every 10 ms) and a few long-lived connections
// to each, and asserts only what the issue bounds; the rest it reports.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/e2e/lab"
	"github.com/ironlb/ironlb/internal/election"
	"github.com/ironlb/ironlb/internal/testutil"
)

const (
	// faultRequestTimeout is how long a request of the load may take
	// before it counts as failed: longer than any answer of a healthy lab
	// on a busy machine, shorter than the client's first SYN retry (1 s),
	// so a connection whose SYN was lost counts as failed.
	faultRequestTimeout = 900 * time.Millisecond
	// faultHoldTimeout is how long an exchange on a long-lived connection
	// may take before the connection counts as broken: a few
	// retransmissions' worth.
	faultHoldTimeout = 3 * time.Second
	// faultHeldPerAddr is how many long-lived connections each address
	// gets.
	faultHeldPerAddr = 3
	// maxDualAnswers bounds, per address, the time during which two
	// nodes answer the client over a whole partition trial (issue 16).
	maxDualAnswers = time.Second
	// maxAnswerAfterKill bounds how long after its owner's speaker is
	// killed another node answers for an address (issue 16).
	maxAnswerAfterKill = time.Second
	// speakerHealthPort is the speakers' /healthz port, as the chart sets
	// it (speaker.healthPort).
	speakerHealthPort = 7475
)

// faultLab is a lab of three nodes with the example configuration, a
// web pod on every node and one layer 2 Service for each node, asking for
// an address that node ranks first for.
type faultLab struct {
	l     *lab.Lab
	c     client.Client
	nodes []string
	// addrs are the Services' addresses, in the nodes' order; owners
	// maps each to its node.
	addrs   []netip.Addr
	owners  map[netip.Addr]string
	macs    map[string]net.HardwareAddr
	probers map[netip.Addr]*lab.Prober
}

// startFaultLab starts the lab, creates the pods and Services, starts
// probing every address from the client and waits until each is answered
// by its owner alone.
func startFaultLab(t *testing.T) *faultLab {
	t.Helper()
	l, c := startLab(t, 3)
	applyExample(t, c)
	return newFaultLab(t, l, c)
}

// newFaultLab does startFaultLab's work on a lab already configured.
func newFaultLab(t *testing.T, l *lab.Lab, c client.Client) *faultLab {
	t.Helper()
	f := &faultLab{l: l, c: c, nodes: nodeNames(l.Plan), owners: map[netip.Addr]string{}, macs: map[string]net.HardwareAddr{}}
	for _, n := range f.nodes {
		mac, err := lab.NodeMAC(l.Plan, n)
		if err != nil {
			t.Fatal(err)
		}
		f.macs[n] = mac
	}
	pods := podsOn(t, c, "web", f.nodes...)
	all := slices.Sorted(maps.Keys(pods))
	// The first address of the pool's upper part each node ranks first for.
	for a := netip.MustParseAddr("203.0.113.72"); len(f.owners) < len(f.nodes); a = a.Next() {
		if !lab.L2PoolNet.Contains(a) {
			t.Fatalf("the layer 2 pool %s has no address for every node: %v", lab.L2PoolNet, f.owners)
		}
		w := election.Winner(election.ClaimV2, a, f.nodes)
		if slices.Contains(slices.Collect(maps.Values(f.owners)), w) {
			continue
		}
		f.owners[a] = w
	}
	for _, n := range f.nodes {
		for a, w := range f.owners {
			if w == n {
				f.addrs = append(f.addrs, a)
			}
		}
	}
	for _, a := range f.addrs {
		name := "fault-" + f.owners[a]
		lbService(t, c, name, a, func(s *corev1.Service) { s.Spec.Selector = map[string]string{"app": "web"} })
		expectReady(t, c, name, a, all...)
	}
	f.probers = startProbers(t, l, f.addrs)
	waitOwners(t, l, c, f.probers, marks(f.probers), f.owners, f.nodes)
	t.Logf("addresses: %s", f.describe())
	return f
}

// describe lists the addresses with their owners.
func (f *faultLab) describe() string {
	var out []string
	for _, a := range f.addrs {
		out = append(out, fmt.Sprintf("%s on %s", a, f.owners[a]))
	}
	return strings.Join(out, ", ")
}

// others returns the nodes but one.
func (f *faultLab) others(node string) []string {
	return slices.DeleteFunc(slices.Clone(f.nodes), func(n string) bool { return n == node })
}

// load is the traffic of a fault scenario: a stream of requests to each
// address, and long-lived connections to each.
type load struct {
	ns      string
	streams map[netip.AddrPort]*lab.Stream
	holders map[netip.AddrPort][]*lab.Holder
}

// startLoad streams requests from namespace ns to every target, waits
// until every stream is answered, and holds connections to each (see
// hold); it stops them all when the test ends.
func startLoad(t *testing.T, ns string, targets ...netip.AddrPort) *load {
	t.Helper()
	ld := &load{ns: ns, streams: map[netip.AddrPort]*lab.Stream{}, holders: map[netip.AddrPort][]*lab.Holder{}}
	t.Cleanup(func() { ld.stop() })
	for _, tg := range targets {
		ld.streams[tg] = lab.StartStream(context.Background(), ns, tg, lab.StreamInterval, faultRequestTimeout)
	}
	for _, tg := range targets {
		s := ld.streams[tg]
		testutil.Eventually(t, fmt.Sprintf("the stream to %s answered", tg), func() (bool, string) {
			reqs := s.Finished()
			if len(reqs) < lab.AnsweredRun {
				return false, fmt.Sprintf("%d requests finished", len(reqs))
			}
			for _, r := range reqs[len(reqs)-lab.AnsweredRun:] {
				if !r.Answered() {
					return false, fmt.Sprintf("a recent request failed: %v", r.Err)
				}
			}
			return true, ""
		})
	}
	ld.hold(t)
	return ld
}

// hold opens faultHeldPerAddr new long-lived connections to every
// target, beside those opened before (a broken one is not dialled
// again; a test that wants live connections for its next step holds
// new ones).
func (ld *load) hold(t *testing.T) {
	t.Helper()
	for tg := range ld.streams {
		h, err := lab.HoldConns(context.Background(), ld.ns, tg, faultHeldPerAddr, lab.HoldInterval, faultHoldTimeout)
		if err != nil {
			t.Fatal(err)
		}
		ld.holders[tg] = append(ld.holders[tg], h)
	}
}

// stop ends the traffic and returns what each target's stream and
// connections saw. Safe to call twice.
func (ld *load) stop() (map[netip.AddrPort][]lab.Request, map[netip.AddrPort][]lab.HeldConn) {
	reqs, conns := map[netip.AddrPort][]lab.Request{}, map[netip.AddrPort][]lab.HeldConn{}
	for tg, s := range ld.streams {
		reqs[tg] = s.Stop()
	}
	for tg, hs := range ld.holders {
		for _, h := range hs {
			conns[tg] = append(conns[tg], h.Stop()...)
		}
	}
	return reqs, conns
}

// summary describes what the load to one target saw from `from` until
// `to`: requests sent and failed (by kind), the slowest answer, and the
// long-lived connections that broke.
func summary(reqs []lab.Request, conns []lab.HeldConn, from, to time.Time) string {
	st := lab.AnalyzeStream(reqs, from, to)
	var slowest time.Duration
	for _, r := range reqs {
		if r.Answered() && !r.Sent.Before(from) && r.Sent.Before(to) {
			slowest = max(slowest, r.Took)
		}
	}
	// The connections open at some moment of the window, and those of
	// them that broke in it.
	open, broken := 0, 0
	for _, c := range conns {
		if !c.Opened.Before(to) || (!c.Held() && c.Broken.Before(from)) {
			continue
		}
		open++
		if !c.Held() && c.Broken.Before(to) {
			broken++
		}
	}
	return fmt.Sprintf("%d requests, %d failed %v, slowest answer %s, longest gap %s; %d of %d long-lived connections broke",
		st.Sent, st.Lost, st.Errors, slowest.Round(time.Millisecond), st.LongestGap.Round(time.Millisecond), broken, open)
}

// waitSpeakerReady waits until a node's speaker answers /readyz and
// returns when it first did; it fails the test, with the end of the
// speaker's log, when it does not within testutil.WaitLimit.
func waitSpeakerReady(t *testing.T, l *lab.Lab, node string) time.Time {
	t.Helper()
	deadline := time.Now().Add(testutil.WaitLimit)
	for {
		err := l.SpeakerReady(node)
		if err == nil {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("the speaker of %s not ready within %s: %v; its log ends:\n%s", node, testutil.WaitLimit, err, logTail(l, "speaker-"+node, 15))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logTail returns the last n lines of one of the lab's logs.
func logTail(l *lab.Lab, name string, n int) string {
	b, err := os.ReadFile(filepath.Join(l.Dir, name+".log"))
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// logLines returns the lines of one of the lab's logs, logged at since
// or later (the speakers' text log format: time=RFC 3339 first), that
// hold any of words, joined.
func logLines(l *lab.Lab, name string, since time.Time, words ...string) string {
	b, err := os.ReadFile(filepath.Join(l.Dir, name+".log"))
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		ts, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || at.Before(since) {
			continue
		}
		if slices.ContainsFunc(words, func(w string) bool { return strings.Contains(line, w) }) {
			out = append(out, line)
		}
	}
	if len(out) == 0 {
		return "nothing of " + strings.Join(words, ", ")
	}
	return "\n\t" + strings.Join(out, "\n\t")
}

// firstLogAt returns the time of the first line of one of the lab's logs
// logged at since or later that match accepts; zero when none does.
func firstLogAt(l *lab.Lab, name string, since time.Time, match func(string) bool) time.Time {
	b, err := os.ReadFile(filepath.Join(l.Dir, name+".log"))
	if err != nil {
		return time.Time{}
	}
	for _, line := range strings.Split(string(b), "\n") {
		ts, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		if at, err := time.Parse(time.RFC3339Nano, ts); err == nil && !at.Before(since) && match(line) {
			return at
		}
	}
	return time.Time{}
}

// after prints t relative to t0, or "none" for the zero time.
func after(t, t0 time.Time) string {
	if t.IsZero() {
		return "none"
	}
	return "+" + t.Sub(t0).Round(time.Millisecond).String()
}

// clip shortens a long description for a failure message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n/2] + " … " + s[len(s)-n/2:]
}

// spans prints intervals relative to t0.
func spans(is []lab.Interval, t0 time.Time) string {
	var out []string
	for _, i := range is {
		out = append(out, fmt.Sprintf("+%s for %s", i.From.Sub(t0).Round(time.Millisecond), i.Duration().Round(time.Millisecond)))
	}
	if len(out) > 12 {
		out = append(out[:12], fmt.Sprintf("and %d more", len(out)-12))
	}
	return strings.Join(out, ", ")
}

// TestFaultRollingRestart: the speakers are stopped gracefully and
// started again one at a time, each ready (joined) before the next, as a
// DaemonSet rollout does. An address owned by a node whose speaker is not
// the one restarting loses no request and no long-lived connection, and
// the restarting node never answers the client for an address it does not
// own.
func TestFaultRollingRestart(t *testing.T) {
	f := startFaultLab(t)
	client := f.l.Plan.Client
	var targets []netip.AddrPort
	for _, a := range f.addrs {
		targets = append(targets, netip.AddrPortFrom(a, 80))
	}
	ld := startLoad(t, client.NetNS, targets...)
	start := time.Now()

	type step struct {
		node            string
		from, ready, to time.Time
		since           map[netip.Addr]int
	}
	var steps []step
	for i, r := range f.nodes {
		if i > 0 {
			// Fresh long-lived connections to every address, so each
			// step has some also to the addresses whose earlier ones
			// broke when their own node restarted.
			ld.hold(t)
		}
		s := step{node: r, from: time.Now(), since: marks(f.probers)}
		if err := f.l.StopSpeaker(r); err != nil {
			t.Fatal(err)
		}
		stopped := time.Now()
		if err := f.l.StartSpeaker(r); err != nil {
			t.Fatal(err)
		}
		s.ready = waitSpeakerReady(t, f.l, r)
		// Back in place: every address answered by its owner alone, every
		// speaker counting three.
		waitOwners(t, f.l, f.c, f.probers, s.since, f.owners, f.nodes)
		// A moment more, so whatever the step disturbed shows within it.
		time.Sleep(time.Second)
		s.to = time.Now()
		t.Logf("%s: stopped in %s, ready %s after its start, back in place %s after that", r,
			stopped.Sub(s.from).Round(time.Millisecond), s.ready.Sub(stopped).Round(time.Millisecond), s.to.Sub(s.ready).Round(time.Millisecond))
		steps = append(steps, s)
	}
	end := time.Now()
	reqs, conns := ld.stop()

	// stepAt names the node restarting at t, "" between steps.
	stepAt := func(at time.Time) string {
		for _, s := range steps {
			if !at.Before(s.from) && at.Before(s.to) {
				return s.node
			}
		}
		return ""
	}
	for _, a := range f.addrs {
		tg := netip.AddrPortFrom(a, 80)
		owner := f.owners[a]
		for _, s := range steps {
			t.Logf("%s (owned by %s) while %s restarted: %s", a, owner, s.node, summary(reqs[tg], conns[tg], s.from, s.to))
		}
		// A failed request or a broken connection is allowed only while
		// the address's own node restarts.
		var failed []string
		for _, r := range reqs[tg] {
			if r.Answered() || stepAt(r.Sent) == owner {
				continue
			}
			failed = append(failed, fmt.Sprintf("+%s (while %s restarted): %s", r.Sent.Sub(start).Round(time.Millisecond), nameOr(stepAt(r.Sent), "no one"), lab.ErrorKind(r.Err)))
		}
		if len(failed) > 0 {
			t.Errorf("%s, owned by %s: %d requests failed while another node restarted:\n\t%s", a, owner, len(failed), strings.Join(failed[:min(len(failed), 10)], "\n\t"))
		}
		for _, c := range conns[tg] {
			if !c.Held() && stepAt(c.Broken) != owner {
				t.Errorf("%s, owned by %s: the long-lived connection from %s (to %s) broke at +%s, while %s restarted: %v",
					a, owner, c.Local, c.Pod, c.Broken.Sub(start).Round(time.Millisecond), nameOr(stepAt(c.Broken), "no one"), c.Err)
			}
		}
	}
	// The restarting node answers for no address it does not own, neither
	// before it is ready (it has not joined) nor after.
	for _, s := range steps {
		for _, a := range f.addrs {
			ps := lab.RepliesBetween(f.probers[a].ProbesSince(s.since[a]), s.from, s.to)
			if f.owners[a] == s.node {
				// Its own: the check below sees answers when there are some.
				got := lab.AnswersFrom(lab.RepliesBetween(ps, s.ready, s.to), f.macs[s.node])
				t.Logf("%s answered for its own %s %d times (%d solicited) once ready", s.node, a, got.Total(), got.Solicited)
				continue
			}
			if got := lab.AnswersFrom(ps, f.macs[s.node]); got.Total() > 0 {
				t.Errorf("%s restarting answered the client %d times (%d solicited) for %s, owned by %s: first %s, last %s after it was ready; answers: %s",
					s.node, got.Total(), got.Solicited, a, f.owners[a], got.First.Sub(s.ready).Round(time.Millisecond), got.Last.Sub(s.ready).Round(time.Millisecond), clip(timeline(f.l, ps), 600))
			}
		}
	}
	t.Logf("rolling restart of %d speakers took %s", len(steps), end.Sub(start).Round(time.Millisecond))
}

// TestFaultMemberlistPartition: the owner of an address loses its
// memberlist traffic (and nothing else) for 30 s. Over the whole trial no
// address is answered by two nodes for more than a second in all, and
// once the owners are back in place exactly one node answers each.
func TestFaultMemberlistPartition(t *testing.T) {
	f := startFaultLab(t)
	ctx := context.Background()
	var targets []netip.AddrPort
	for _, a := range f.addrs {
		targets = append(targets, netip.AddrPortFrom(a, 80))
	}
	ld := startLoad(t, f.l.Plan.Client.NetNS, targets...)
	target := f.addrs[0]
	victim, err := f.l.Owner(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	since := marks(f.probers)
	t0 := time.Now()
	if err := f.l.PortCut(victim); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.l.PortHeal(victim) })
	time.Sleep(30 * time.Second)
	tHeal := time.Now()
	if err := f.l.PortHeal(victim); err != nil {
		t.Fatal(err)
	}
	waitOwners(t, f.l, f.c, f.probers, marks(f.probers), f.owners, f.nodes)
	tSettled := time.Now()
	time.Sleep(2 * time.Second)
	tEnd := time.Now()
	reqs, conns := ld.stop()
	t.Logf("%s cut off for %s; back in place %s after the heal", victim, tHeal.Sub(t0).Round(time.Millisecond), tSettled.Sub(tHeal).Round(time.Millisecond))

	for _, a := range f.addrs {
		ps := f.probers[a].ProbesSince(since[a])
		tg := netip.AddrPortFrom(a, 80)
		t.Logf("%s (owned by %s): during the cut %s; after the heal %s", a, f.owners[a], summary(reqs[tg], conns[tg], t0, tHeal), summary(reqs[tg], conns[tg], tHeal, tEnd))
		t.Logf("%s answered during the cut by: %s", a, clip(timeline(f.l, lab.ProbesBetween(ps, t0, tHeal)), 800))
		total, dual := lab.DualAnswers(ps)
		t.Logf("%s: two nodes answered for %s in all (bound %s)", a, total.Round(time.Millisecond), maxDualAnswers)
		if total > maxDualAnswers {
			t.Errorf("%s, owned by %s, cut off at +0 and healed at +%s: two nodes answered for %s in all, more than %s: %s",
				a, f.owners[a], tHeal.Sub(t0).Round(time.Millisecond), total.Round(time.Millisecond), maxDualAnswers, spans(dual, t0))
		}
		// Settled: exactly one node, the owner, answers.
		after := lab.ProbesBetween(ps, tSettled, tEnd)
		var heard []string
		for _, p := range after {
			for _, r := range p.Replies {
				if n := nameOr(f.l.NodeOfMAC(r.MAC), r.MAC.String()); !slices.Contains(heard, n) {
					heard = append(heard, n)
				}
			}
		}
		if len(heard) != 1 || heard[0] != f.owners[a] {
			t.Errorf("%s: in the %d probes after the owners were back in place, answered by %v, want %s alone: %s", a, len(after), heard, f.owners[a], timeline(f.l, after))
		}
		if n := lab.Unanswered(after, lab.AnswerWithin); n > 0 {
			t.Logf("%s: %d of %d probes after settling were not answered within %s", a, n, len(after), lab.AnswerWithin)
		}
	}
}

// TestFaultCablePull: the owner of an address loses its LAN link for
// 10 s. Once the link is back, the node answers the client for no address
// until its speaker has rejoined the others (its memberlist counts them
// all again): an isolated node that came back must not answer with a
// stale view.
func TestFaultCablePull(t *testing.T) {
	f := startFaultLab(t)
	ctx := context.Background()
	var targets []netip.AddrPort
	for _, a := range f.addrs {
		targets = append(targets, netip.AddrPortFrom(a, 80))
	}
	ld := startLoad(t, f.l.Plan.Client.NetNS, targets...)
	target := f.addrs[0]
	victim, err := f.l.Owner(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	mac := f.macs[victim]
	since := marks(f.probers)
	t0 := time.Now()
	if err := lab.LinkDown(f.l.Plan, victim); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lab.LinkUp(f.l.Plan, victim) })
	time.Sleep(10 * time.Second)
	tUp := time.Now()
	if err := lab.LinkUp(f.l.Plan, victim); err != nil {
		t.Fatal(err)
	}
	// Read the node's member count until it counts everyone: lastAlone is
	// when the last reading that still counted fewer was asked for, so it
	// had not rejoined then.
	n := len(f.nodes)
	var lastAlone, joined time.Time
	var readings []string
	last := ""
	deadline := time.Now().Add(testutil.WaitLimit)
	for joined.IsZero() {
		at := time.Now()
		m, err := f.l.SpeakerMembers(victim)
		switch {
		case err == nil && m >= n:
			joined = at
		case err == nil:
			lastAlone = at
		}
		if r := fmt.Sprintf("%d (%v)", m, err); r != last {
			readings = append(readings, fmt.Sprintf("+%s: %s", at.Sub(tUp).Round(time.Millisecond), r))
			last = r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's speaker did not count %d members within %s of the link coming back: %s", victim, n, testutil.WaitLimit, strings.Join(readings, "; "))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%s's link down for %s; its speaker's member count after the link came back: %s", victim, tUp.Sub(t0).Round(time.Millisecond), clip(strings.Join(readings, "; "), 1000))
	// The readings bound the moment it rejoined from below; its log
	// tells the moment itself (the first "speakers alive" counting
	// everyone), which leaves no gap between readings unchecked.
	until := lastAlone
	logged := firstLogAt(f.l, "speaker-"+victim, tUp, func(line string) bool {
		return strings.Contains(line, `msg="speakers alive"`) && strings.Contains(line, fmt.Sprintf(" count=%d ", n))
	})
	if logged.After(until) {
		until = logged
	}
	if until.After(tUp) {
		t.Logf("%s's speaker rejoined %s after the link came back (last reading counting fewer: %s; its log: %s)", victim, until.Sub(tUp).Round(time.Millisecond), after(lastAlone, tUp), after(logged, tUp))
	} else {
		t.Logf("%s's speaker had rejoined by the time the link came back (a join under way went through at once): nothing to check this time", victim)
	}
	t.Logf("%s's speaker said: %s", victim, logLines(f.l, "speaker-"+victim, t0, "fenced", "quorum", "speakers alive"))
	waitOwners(t, f.l, f.c, f.probers, marks(f.probers), f.owners, f.nodes)
	tEnd := time.Now()
	reqs, conns := ld.stop()

	for _, a := range f.addrs {
		ps := f.probers[a].ProbesSince(since[a])
		tg := netip.AddrPortFrom(a, 80)
		t.Logf("%s (owned by %s): link down %s; link up %s", a, f.owners[a], summary(reqs[tg], conns[tg], t0, tUp), summary(reqs[tg], conns[tg], tUp, tEnd))
		// Not bounded by the issue for this fault; reported.
		if total, dual := lab.DualAnswers(lab.ProbesBetween(ps, tUp, tEnd)); total > 0 {
			t.Logf("%s: after the link came back two nodes answered for %s in all: %s (relative to the link coming back)", a, total.Round(time.Millisecond), spans(dual, tUp))
		}
		if until.After(tUp) {
			got := lab.AnswersFrom(lab.RepliesBetween(ps, tUp, until), mac)
			if got.Total() > 0 {
				t.Errorf("%s answered the client for %s %d times (%d solicited) after its link came back and before its speaker had rejoined: first +%s, last +%s after the link came back; it rejoined at +%s; answers: %s",
					victim, a, got.Total(), got.Solicited, got.First.Sub(tUp).Round(time.Millisecond), got.Last.Sub(tUp).Round(time.Millisecond), until.Sub(tUp).Round(time.Millisecond),
					clip(timeline(f.l, lab.ProbesBetween(ps, tUp, until)), 600))
			}
		}
		if f.owners[a] == victim {
			// Not vacuous: someone else answered while the owner was away.
			var others []string
			for _, p := range lab.RepliesBetween(ps, t0, tUp) {
				for _, r := range p.Replies {
					if n := f.l.NodeOfMAC(r.MAC); n != victim && !slices.Contains(others, n) {
						others = append(others, n)
					}
				}
			}
			if len(others) == 0 {
				t.Errorf("%s: no other node answered while its owner %s was unplugged", a, victim)
			}
		}
	}
}

// TestFaultAPIServerOutage: with BGP sessions to the router protected by
// a password, the API server hangs for two minutes and, inside that, the
// speaker owning a layer 2 address is killed. Another node answers for
// the address within a second of the kill; the router keeps the
// surviving nodes' sessions and paths throughout; no surviving speaker
// would be restarted (it keeps running and its /healthz, probed as the
// chart's liveness probe does, never fails three times in a row); after
// the thaw the killed speaker starts again and everything is back in
// place.
func TestFaultAPIServerOutage(t *testing.T) {
	l, c := startLab(t, 3)
	ctx := context.Background()
	const password = "ironlb-lab-md5"
	if err := lab.RouterPassword(l.Plan, password); err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: lab.ChartNamespace, Name: "lab-bgp-password"}, Data: map[string][]byte{"password": []byte(password)}}
	if err := c.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	objs, err := lab.ExampleObjects()
	if err != nil {
		t.Fatal(err)
	}
	peers := 0
	for _, o := range objs {
		if o.GetKind() == "BGPPeer" {
			ref := map[string]any{"name": secret.Name, "namespace": secret.Namespace, "key": "password"}
			if err := unstructured.SetNestedMap(o.Object, ref, "spec", "passwordSecretRef"); err != nil {
				t.Fatal(err)
			}
			peers++
		}
		if err := c.Create(ctx, o); err != nil {
			t.Fatalf("creating %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	if peers == 0 {
		t.Fatal("the example configuration has no BGPPeer to give a password")
	}
	var sessionAddrs []netip.Addr
	nodeOf := map[netip.Addr]string{}
	for _, n := range l.Plan.Nodes {
		sessionAddrs = append(sessionAddrs, n.Addr.Addr(), n.Addr6.Addr())
		nodeOf[n.Addr.Addr()], nodeOf[n.Addr6.Addr()] = n.Name, n.Name
	}
	testutil.Eventually(t, "every session with the router established, with its password", func() (bool, string) {
		ss, err := lab.RouterSessions(l.Plan)
		if err != nil {
			return false, err.Error()
		}
		up := 0
		for _, a := range sessionAddrs {
			if ss[a].State == "Established" {
				up++
			}
		}
		return up == len(sessionAddrs), fmt.Sprint(ss)
	})

	f := newFaultLab(t, l, c)
	bgpAddr := netip.MustParseAddr("203.0.113.100")
	pfx := netip.PrefixFrom(bgpAddr, 32)
	lbService(t, c, "fault-bgp", bgpAddr, func(s *corev1.Service) { s.Spec.Selector = map[string]string{"app": "web"} })
	var all []netip.Addr
	for _, n := range l.Plan.Nodes {
		all = append(all, n.Addr.Addr())
	}
	expectPaths(t, l, c, pfx, all...)
	var targets []netip.AddrPort
	for _, a := range f.addrs {
		targets = append(targets, netip.AddrPortFrom(a, 80))
	}
	ld := startLoad(t, l.Plan.Client.NetNS, targets...)
	remote := startLoad(t, l.Plan.Remote.NetNS, netip.AddrPortFrom(bgpAddr, 80))

	target := f.addrs[0]
	victim := f.owners[target]
	survivors := f.others(victim)
	var survivorHops []netip.Addr
	for _, n := range l.Plan.Nodes {
		if n.Name != victim {
			survivorHops = append(survivorHops, n.Addr.Addr())
		}
	}
	pids := map[string]int{}
	for _, n := range survivors {
		pids[n] = l.SpeakerPID(n)
	}
	before, err := lab.RouterSessions(l.Plan)
	if err != nil {
		t.Fatal(err)
	}

	if err := l.FreezeAPIServer(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.ThawAPIServer() })
	tFreeze := time.Now()
	const freeze = 2 * time.Minute
	// Long enough into the freeze that every client's requests hang.
	time.Sleep(10 * time.Second)
	since := marks(f.probers)
	tKill := time.Now()
	if err := l.KillSpeaker(victim); err != nil {
		t.Fatal(err)
	}
	// Through the freeze: the router's paths for the BGP address, twice a
	// second, and the survivors' liveness, as a kubelet would probe it
	// (every 10 s, 1 s timeout, restarted after 3 failures in a row).
	var pathFaults []string
	failedInRow := map[string]int{}
	restartedBy := map[string]string{}
	nextLiveness := time.Now()
	for time.Since(tFreeze) < freeze {
		hops, err := lab.RouterPaths(l.Plan, pfx)
		missing := slices.DeleteFunc(slices.Clone(survivorHops), func(a netip.Addr) bool { return slices.Contains(hops, a) })
		if err != nil || len(missing) > 0 {
			pathFaults = append(pathFaults, fmt.Sprintf("+%s: paths %v (%v), missing %v", time.Since(tFreeze).Round(time.Millisecond), hops, err, missing))
		}
		if time.Now().After(nextLiveness) {
			nextLiveness = nextLiveness.Add(10 * time.Second)
			for _, n := range survivors {
				node, _ := l.Plan.Node(n)
				_, err := lab.HTTPGetFrom(l.Plan.ControlPlane.NetNS, fmt.Sprintf("http://%s/healthz", netip.AddrPortFrom(node.Addr.Addr(), speakerHealthPort)), time.Second)
				if err == nil {
					failedInRow[n] = 0
					continue
				}
				if failedInRow[n]++; failedInRow[n] >= 3 && restartedBy[n] == "" {
					restartedBy[n] = fmt.Sprintf("+%s: %v", time.Since(tFreeze).Round(time.Millisecond), err)
				}
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	during, err := lab.RouterSessions(l.Plan)
	if err != nil {
		t.Error(err)
	}
	if err := l.ThawAPIServer(); err != nil {
		t.Fatal(err)
	}
	tThaw := time.Now()
	t.Logf("API server frozen for %s; %s's speaker killed at +%s", tThaw.Sub(tFreeze).Round(time.Millisecond), victim, tKill.Sub(tFreeze).Round(time.Millisecond))

	// Another node answered each of the victim's addresses within a
	// second of the kill.
	for _, a := range f.addrs {
		if f.owners[a] != victim {
			continue
		}
		ps := f.probers[a].ProbesSince(since[a])
		var first time.Time
		var who string
		for _, p := range ps {
			for _, r := range p.Replies {
				if n := f.l.NodeOfMAC(r.MAC); n != victim && r.Solicited && r.At.After(tKill) && (first.IsZero() || r.At.Before(first)) {
					first, who = r.At, n
				}
			}
		}
		if first.IsZero() {
			t.Errorf("%s: no other node answered after %s's speaker was killed: %s", a, victim, clip(timeline(f.l, ps), 600))
			continue
		}
		t.Logf("%s: %s answered %s after %s's speaker was killed", a, who, first.Sub(tKill).Round(time.Millisecond), victim)
		if took := first.Sub(tKill); took > maxAnswerAfterKill {
			t.Errorf("%s: %s answered only %s after %s's speaker was killed, more than %s: %s", a, who, took.Round(time.Millisecond), victim, maxAnswerAfterKill, clip(timeline(f.l, lab.ProbesBetween(ps, tKill, first.Add(time.Second))), 600))
		}
	}
	if len(pathFaults) > 0 {
		t.Errorf("the router lost the surviving nodes' paths for %s (%v) during the freeze, %d of its readings:\n\t%s", pfx, survivorHops, len(pathFaults), strings.Join(pathFaults[:min(10, len(pathFaults))], "\n\t"))
	}
	sessionDrops := func(when string, after map[netip.Addr]lab.RouterSession) {
		for _, a := range sessionAddrs {
			if nodeOf[a] == victim {
				continue
			}
			b, s := before[a], after[a]
			if s.Dropped != b.Dropped || s.State != "Established" {
				t.Errorf("%s: the router's session with %s (%s) went from %+v to %+v", when, a, nodeOf[a], b, s)
			}
		}
	}
	if during != nil {
		sessionDrops("during the freeze", during)
	}
	for _, n := range survivors {
		if restartedBy[n] != "" {
			t.Errorf("%s's /healthz failed three liveness probes in a row during the freeze (a kubelet would have restarted it): %s", n, restartedBy[n])
		}
	}

	// After the thaw: the killed speaker starts again, the owners and the
	// router's paths are back, and the survivors ran throughout.
	if err := l.StartSpeaker(victim); err != nil {
		t.Fatal(err)
	}
	ready := waitSpeakerReady(t, l, victim)
	waitOwners(t, l, c, f.probers, marks(f.probers), f.owners, f.nodes)
	expectPaths(t, l, c, pfx, all...)
	t.Logf("after the thaw: %s ready %s after its start, everything back in place %s after the thaw", victim, ready.Sub(tThaw).Round(time.Millisecond), time.Since(tThaw).Round(time.Millisecond))
	for _, n := range survivors {
		if pid := l.SpeakerPID(n); pid != pids[n] {
			t.Errorf("%s's speaker did not run throughout: process %d before the freeze, %d now; its log ends:\n%s", n, pids[n], pid, logTail(l, "speaker-"+n, 15))
		}
	}
	if final, err := lab.RouterSessions(l.Plan); err == nil {
		sessionDrops("after the thaw", final)
	} else {
		t.Error(err)
	}
	// The controller is not under test here, but an operator would want
	// to know how it took the outage (leader election lost?).
	t.Logf("the controller's log ends:\n%s", logTail(l, "controller", 3))
	tEnd := time.Now()
	reqs, conns := ld.stop()
	for _, a := range f.addrs {
		tg := netip.AddrPortFrom(a, 80)
		t.Logf("%s (owned by %s): frozen %s; after the thaw %s", a, f.owners[a], summary(reqs[tg], conns[tg], tFreeze, tThaw), summary(reqs[tg], conns[tg], tThaw, tEnd))
	}
	rreqs, rconns := remote.stop()
	tg := netip.AddrPortFrom(bgpAddr, 80)
	t.Logf("%s from the remote client: frozen %s; after the thaw %s", bgpAddr, summary(rreqs[tg], rconns[tg], tFreeze, tThaw), summary(rreqs[tg], rconns[tg], tThaw, tEnd))
}

// TestFaultKeyRotation rotates the memberlist key in three rollouts, each
// restarting the speakers one at a time (they read the key's Secret only
// when they start): (a) key OLD with NEW as a secondary key, accepted but
// not sent with; (b) key NEW with OLD as the secondary; (c) key NEW
// alone. No running speaker ever counts fewer than all but one of the
// speakers. First a negative control proves that a speaker restarted with
// NEW alone while the others know only OLD is split off, so a rotation
// that broke the cluster would be seen.
func TestFaultKeyRotation(t *testing.T) {
	f := startFaultLab(t)
	ctx := context.Background()
	var targets []netip.AddrPort
	for _, a := range f.addrs {
		targets = append(targets, netip.AddrPortFrom(a, 80))
	}
	ld := startLoad(t, f.l.Plan.Client.NetNS, targets...)
	n := len(f.nodes)

	ns, name, err := f.l.MemberlistSecret()
	if err != nil {
		t.Fatal(err)
	}
	var secret corev1.Secret
	if err := f.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &secret); err != nil {
		t.Fatal(err)
	}
	oldKey := strings.TrimSpace(string(secret.Data["key"]))
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	newKey := base64.StdEncoding.EncodeToString(raw)
	setKeys := func(key string, secondary ...string) {
		t.Helper()
		if err := f.c.Get(ctx, client.ObjectKeyFromObject(&secret), &secret); err != nil {
			t.Fatal(err)
		}
		secret.Data = map[string][]byte{"key": []byte(key)}
		if len(secondary) > 0 {
			secret.Data["secondaryKeys"] = []byte(strings.Join(secondary, "\n"))
		}
		if err := f.c.Update(ctx, &secret); err != nil {
			t.Fatal(err)
		}
	}

	watch := f.l.WatchMembers(ctx, 100*time.Millisecond)
	t.Cleanup(func() { watch.Stop() })
	// allCount waits until every speaker counts n members.
	allCount := func(limit time.Duration) bool {
		deadline := time.Now().Add(limit)
		for time.Now().Before(deadline) {
			ok := 0
			for _, node := range f.nodes {
				if m, err := f.l.SpeakerMembers(node); err == nil && m == n {
					ok++
				}
			}
			if ok == n {
				return true
			}
			time.Sleep(100 * time.Millisecond)
		}
		return false
	}
	if !allCount(30 * time.Second) {
		t.Fatalf("not every speaker counts %d members before the rotation: %v", n, lab.LatestMembers(watch.Samples()))
	}
	restart := func(node string) {
		t.Helper()
		if err := f.l.StopSpeaker(node); err != nil {
			t.Fatal(err)
		}
		if err := f.l.StartSpeaker(node); err != nil {
			t.Fatal(err)
		}
	}

	// The negative control: NEW alone on one speaker, OLD on the others.
	victim := f.nodes[0]
	setKeys(newKey)
	restart(victim)
	tControl := time.Now()
	time.Sleep(15 * time.Second)
	control := watch.Samples()
	joinedAll := false
	var seen []string
	for _, s := range control {
		if s.At.Before(tControl) || s.Err != nil {
			continue
		}
		// The others may take a moment to hear that the old speaker left;
		// a speaker that could join would have joined within 2 s and
		// stayed.
		if s.Node != victim && s.Members >= n && s.At.After(tControl.Add(2*time.Second)) {
			joinedAll = true
		}
		if r := fmt.Sprintf("%s %d", s.Node, s.Members); !slices.Contains(seen, r) {
			seen = append(seen, r)
		}
	}
	t.Logf("negative control: %s restarted with the new key alone; readings in the next 15 s: %v", victim, seen)
	if joinedAll {
		t.Errorf("negative control: %s, restarted with a key the others do not know, was counted by them as a member: the lab cannot tell a working rotation from a broken one (is the key read from %s/%s data.key?)", victim, ns, name)
	}
	setKeys(oldKey)
	restart(victim)
	waitSpeakerReady(t, f.l, victim)
	if !allCount(30 * time.Second) {
		t.Fatalf("not every speaker counts %d members after %s was restarted with the old key again: %v", n, victim, lab.LatestMembers(watch.Samples()))
	}

	// The rotation.
	tRotation := time.Now()
	for _, ro := range []struct {
		name      string
		key       string
		secondary []string
	}{
		{"(a) old key, new secondary", oldKey, []string{newKey}},
		{"(b) new key, old secondary", newKey, []string{oldKey}},
		{"(c) new key alone", newKey, nil},
	} {
		setKeys(ro.key, ro.secondary...)
		for _, node := range f.nodes {
			t0 := time.Now()
			restart(node)
			ready := waitSpeakerReady(t, f.l, node)
			if !allCount(20 * time.Second) {
				below := lab.MembersBelow(watch.Samples(), n-1)
				t.Fatalf("rollout %s, %s restarted: not every speaker counts %d members within 20 s; readings below %d since the rotation began: %s",
					ro.name, node, n, n-1, describeSamples(below, tRotation))
			}
			t.Logf("rollout %s: %s restarted, ready after %s, all counting %d after %s", ro.name, node, ready.Sub(t0).Round(time.Millisecond), n, time.Since(t0).Round(time.Millisecond))
		}
	}
	tEnd := time.Now()
	samples := watch.Stop()
	var during []lab.MemberSample
	for _, s := range samples {
		if !s.At.Before(tRotation) {
			during = append(during, s)
		}
	}
	if below := lab.MembersBelow(during, n-1); len(below) > 0 {
		t.Errorf("during the rotation %d readings of running speakers counted fewer than %d members: %s", len(below), n-1, describeSamples(below, tRotation))
	}
	t.Logf("rotation: %d readings of the speakers' member counts over %s, none of a joined speaker below %d", len(during), tEnd.Sub(tRotation).Round(time.Millisecond), n-1)
	reqs, conns := ld.stop()
	for _, a := range f.addrs {
		tg := netip.AddrPortFrom(a, 80)
		t.Logf("%s (owned by %s) during the rotation: %s", a, f.owners[a], summary(reqs[tg], conns[tg], tRotation, tEnd))
	}
}

// describeSamples lists readings relative to t0, at most 12.
func describeSamples(ss []lab.MemberSample, t0 time.Time) string {
	var out []string
	for _, s := range ss {
		out = append(out, fmt.Sprintf("+%s %s counted %d", s.At.Sub(t0).Round(time.Millisecond), s.Node, s.Members))
	}
	if len(out) > 12 {
		out = append(out[:12], fmt.Sprintf("and %d more", len(out)-12))
	}
	return strings.Join(out, ", ")
}
