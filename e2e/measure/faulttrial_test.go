package measure

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ironlb/ironlb/e2e/lab"
	"github.com/ironlb/ironlb/e2e/traffic"
	"github.com/ironlb/ironlb/internal/election"
)

// record, macA, macB and macC are faults_test.go's and probe_test.go's.

var trialT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func ms(n int) time.Time { return trialT0.Add(time.Duration(n) * time.Millisecond) }

func TestFaultTrialOwnedAddrs(t *testing.T) {
	nodes := []string{"node1", "node2", "node3"}
	from := netip.MustParseAddr("203.0.113.72")
	addrs, owners, err := OwnedAddrs(from, lab.L2PoolNet, nodes)
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != len(nodes) || len(owners) != len(nodes) {
		t.Fatalf("addresses %v, owners %v: want one for each of %v", addrs, owners, nodes)
	}
	for i, a := range addrs {
		if !lab.L2PoolNet.Contains(a) || a.Less(from) {
			t.Errorf("%s: outside the pool %s or before %s", a, lab.L2PoolNet, from)
		}
		if w := election.Winner(election.ClaimV2, a, nodes); w != nodes[i] || owners[a] != nodes[i] {
			t.Errorf("address %d, %s: ranked first by %s, owner %q, want %s", i, a, w, owners[a], nodes[i])
		}
		// The first such address: none before it goes to the same node.
		for b := from; b.Less(a); b = b.Next() {
			if election.Winner(election.ClaimV2, b, nodes) == nodes[i] {
				t.Errorf("%s: %s ranks first already for %s", a, nodes[i], b)
			}
		}
	}
	if _, _, err := OwnedAddrs(from, netip.PrefixFrom(from, 32), nodes); err == nil {
		t.Error("a pool of one address gave an address to each of three nodes")
	}
}

func TestFaultTrialStepAtAndOpenIn(t *testing.T) {
	steps := []RestartStep{{Node: "a", From: ms(0), To: ms(100)}, {Node: "b", From: ms(150), To: ms(200)}}
	for at, want := range map[int]string{0: "a", 99: "a", 100: "", 149: "", 150: "b", 200: ""} {
		if got := StepAt(steps, ms(at)); got != want {
			t.Errorf("StepAt(+%dms) = %q, want %q", at, got, want)
		}
	}
	conns := []traffic.HeldConn{
		{Local: netip.MustParseAddrPort("192.0.2.1:1"), Opened: ms(0)},                    // held throughout
		{Local: netip.MustParseAddrPort("192.0.2.1:2"), Opened: ms(0), Broken: ms(50)},    // broke before the window
		{Local: netip.MustParseAddrPort("192.0.2.1:3"), Opened: ms(0), Broken: ms(120)},   // broke in it
		{Local: netip.MustParseAddrPort("192.0.2.1:4"), Opened: ms(250)},                  // opened after it
		{Local: netip.MustParseAddrPort("192.0.2.1:5"), Opened: ms(110), Broken: ms(300)}, // broke after it
		{Local: netip.MustParseAddrPort("192.0.2.1:6"), Opened: ms(100), Broken: ms(100)}, // broke as it began
		{Local: netip.MustParseAddrPort("192.0.2.1:7"), Opened: ms(199), Broken: ms(199)}, // broke at once, in it
	}
	open, broken := OpenIn(conns, ms(100), ms(200))
	ports := func(cs []traffic.HeldConn) []uint16 {
		var out []uint16
		for _, c := range cs {
			out = append(out, c.Local.Port())
		}
		return out
	}
	if diff := cmp.Diff([]uint16{1, 3, 5, 6, 7}, ports(open)); diff != "" {
		t.Errorf("open (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]uint16{3, 6, 7}, ports(broken)); diff != "" {
		t.Errorf("broken (-want +got):\n%s", diff)
	}
}

func TestFaultTrialJudgeRestart(t *testing.T) {
	macs := map[string]net.HardwareAddr{"a": macA, "b": macB, "c": macC}
	steps := []RestartStep{
		{Node: "a", From: ms(0), Ready: ms(50), To: ms(100)},
		{Node: "b", From: ms(100), Ready: ms(150), To: ms(200)},
		{Node: "c", From: ms(200), Ready: ms(250), To: ms(300)},
	}
	// The address is a's: b stands in while a restarts, a answers again
	// once ready; b, restarting, answers once with a, and c sends one
	// gratuitous ARP for it.
	script := []string{"b", "b", "b", "b", "b", "a", "a", "a", "a", "a",
		"a", "a", "a", "a", "a", "a", "ab", "a", "a", "a",
		"a", "a", "a", "a", "a", "aC", "a", "a", "a", "a"}
	probes := record(trialT0, script...)
	timeout := errors.New("timeout")
	reqs := []traffic.Request{
		{Sent: ms(20), Err: timeout},  // a's step: its own
		{Sent: ms(30), Pod: "web-a"},  // answered
		{Sent: ms(250), Err: timeout}, // c's step
		{Sent: ms(400), Err: timeout}, // after the last step
	}
	conns := []traffic.HeldConn{
		{Local: netip.MustParseAddrPort("192.0.2.1:1"), Opened: ms(0)},
		{Local: netip.MustParseAddrPort("192.0.2.1:2"), Opened: ms(0), Broken: ms(30)},
		{Local: netip.MustParseAddrPort("192.0.2.1:3"), Opened: ms(0), Broken: ms(120)},
	}
	addr := netip.MustParseAddr("203.0.113.72")
	j := JudgeRestart(steps, addr, "a", macs, reqs, conns, probes)
	if len(j.OwnFailed) != 1 || !j.OwnFailed[0].Sent.Equal(ms(20)) {
		t.Errorf("OwnFailed = %+v, want the request at +20ms", j.OwnFailed)
	}
	if len(j.Failed) != 2 || !j.Failed[0].Sent.Equal(ms(250)) || !j.Failed[1].Sent.Equal(ms(400)) {
		t.Errorf("Failed = %+v, want the requests at +250ms and +400ms", j.Failed)
	}
	if len(j.OwnBroken) != 1 || j.OwnBroken[0].Local.Port() != 2 || len(j.Broken) != 1 || j.Broken[0].Local.Port() != 3 || len(j.Conns) != 3 {
		t.Errorf("OwnBroken = %+v, Broken = %+v: want the connections broken at +30ms and +120ms", j.OwnBroken, j.Broken)
	}
	want := map[string]Answers{
		"b": {Solicited: 1, First: ms(161), Last: ms(161)},
		"c": {Unsolicited: 1, First: ms(251), Last: ms(251)},
	}
	if diff := cmp.Diff(want, j.Foreign); diff != "" {
		t.Errorf("Foreign (-want +got):\n%s", diff)
	}
	if total, sol := j.ForeignTotal(); total != 2 || sol != 1 {
		t.Errorf("ForeignTotal = %d, %d; want 2, 1", total, sol)
	}
	if diff := cmp.Diff(Answers{Solicited: 5, First: ms(51), Last: ms(91)}, j.Own); diff != "" {
		t.Errorf("Own (-want +got):\n%s", diff)
	}
}

func TestFaultTrialJudgePartition(t *testing.T) {
	// c's MAC is no node's here: it is named by its MAC.
	macs := map[string]net.HardwareAddr{"a": macA, "b": macB}
	rec := PartitionRecord{Victim: "a", Cut: ms(0), Heal: ms(100), Settled: ms(200), End: ms(300)}
	script := []string{"a", "a", "a", "ab", "b", "b", "b", "b", "b", "b",
		"b", "b", "ab", "a", "a", "a", "a", "a", "a", "a",
		"a", "a", "a", "a", "a", "", "a", "a", "c", "a"}
	j := JudgePartition(rec, netip.MustParseAddr("203.0.113.72"), "a", macs, record(trialT0, script...))
	want := PartitionJudgement{
		Addr: netip.MustParseAddr("203.0.113.72"), Owner: "a",
		Dual: 20 * time.Millisecond, DualAfterHeal: 10 * time.Millisecond,
		DualSpans:    []Interval{{ms(30), ms(40)}, {ms(120), ms(130)}},
		SettledHeard: []string{"a", macC.String()}, SettledProbes: 10, SettledUnanswered: 1,
	}
	if diff := cmp.Diff(want, j, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestFaultTrialJudgeCable(t *testing.T) {
	macs := map[string]net.HardwareAddr{"a": macA, "b": macB, "c": macC}
	rec := CableRecord{Victim: "a", Down: ms(50), Up: ms(150), Rejoined: ms(200), End: ms(300)}
	// a answers until the cut, no one for three probes, b stands in; a
	// sends one gratuitous ARP after the cable is back and before it has
	// rejoined, then takes the address back with one probe answered by
	// both.
	script := []string{"a", "a", "a", "a", "a", "", "", "", "b", "b",
		"b", "b", "b", "b", "b", "b", "b", "bA", "b", "b",
		"ab", "a", "a", "a", "a", "a", "a", "a", "a", "a"}
	probes := record(trialT0, script...)
	addr := netip.MustParseAddr("203.0.113.72")
	j := JudgeCable(rec, addr, "a", macs, probes)
	if diff := cmp.Diff(Answers{Unsolicited: 1, First: ms(171), Last: ms(171)}, j.Stale); diff != "" {
		t.Errorf("Stale (-want +got):\n%s", diff)
	}
	if j.DualAfterUp != 10*time.Millisecond {
		t.Errorf("DualAfterUp = %s, want 10ms", j.DualAfterUp)
	}
	if diff := cmp.Diff([]string{"b"}, j.StandIns); diff != "" {
		t.Errorf("StandIns (-want +got):\n%s", diff)
	}
	if j.FailoverErr != nil {
		t.Fatal(j.FailoverErr)
	}
	if f := j.Failover; !f.LastOld.Equal(ms(41)) || !f.FirstNew.Equal(ms(81)) || f.Gap != 40*time.Millisecond || f.Unanswered != 3 {
		t.Errorf("Failover = %+v, want from a's answer at +41ms to b's at +81ms, 3 probes unanswered", f)
	}

	// Another node's address: no stand-ins to look for.
	if j := JudgeCable(rec, addr, "b", macs, probes); j.StandIns != nil || j.FailoverErr != nil || j.Stale.Total() != 1 {
		t.Errorf("for b's address: %+v", j)
	}
	// Rejoined by the time the cable was back: nothing is stale.
	early := rec
	early.Rejoined = ms(140)
	if j := JudgeCable(early, addr, "a", macs, probes); j.Stale.Total() != 0 {
		t.Errorf("rejoined before the cable was back, yet stale answers: %+v", j.Stale)
	}
	// No one stood in.
	if j := JudgeCable(rec, addr, "a", macs, record(trialT0, "a", "a", "", "", "")); j.FailoverErr == nil || len(j.StandIns) != 0 {
		t.Errorf("no stand-in, yet %+v", j)
	}
}

func TestFaultTrialFirstAnswerAfter(t *testing.T) {
	probes := record(trialT0, "a", "aB", "a", "ab", "c")
	r, ok := FirstAnswerAfter(probes, macA, ms(5))
	if !ok || r.MAC.String() != macB.String() || !r.At.Equal(ms(31)) {
		t.Errorf("FirstAnswerAfter = %+v, %t; want b's solicited answer at +31ms (its gratuitous one at +11ms does not count)", r, ok)
	}
	if _, ok := FirstAnswerAfter(probes, macA, ms(45)); ok {
		t.Error("an answer after the last one")
	}
}

func TestFaultTrialSessionsDropped(t *testing.T) {
	x, y, z, w := netip.MustParseAddr("198.51.100.11"), netip.MustParseAddr("198.51.100.12"), netip.MustParseAddr("198.51.100.13"), netip.MustParseAddr("198.51.100.14")
	before := map[netip.Addr]lab.RouterSession{
		x: {State: "Established", Established: 1},
		y: {State: "Established", Established: 1},
		z: {State: "Established", Established: 1},
		w: {State: "Active"},
	}
	after := map[netip.Addr]lab.RouterSession{
		x: {State: "Established", Established: 1},
		y: {State: "Established", Established: 2, Dropped: 1}, // flapped between the readings
		z: {State: "Connect", Established: 1},
		w: {State: "Active"},
	}
	got := SessionsDropped(before, after, []netip.Addr{x, y, z})
	if diff := cmp.Diff([]netip.Addr{y, z}, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestFaultTrialKeyControlAndLowestMembers(t *testing.T) {
	refused := errors.New("connection refused")
	at := ms(0)
	samples := []lab.MemberSample{
		{Node: "n2", At: ms(-500), Members: 3}, // before the control
		{Node: "n1", At: ms(100), Err: refused},
		{Node: "n2", At: ms(1000), Members: 3}, // still counts the old n1: too early to tell
		{Node: "n1", At: ms(1500), Members: 1},
		{Node: "n2", At: ms(3000), Members: 2},
		{Node: "n3", At: ms(3000), Members: 2},
	}
	joined, seen := KeyControlJoined(samples, "n1", at, 3)
	if joined {
		t.Error("the control's victim joined, by these readings")
	}
	if diff := cmp.Diff([]string{"n2 3", "n1 1", "n2 2", "n3 2"}, seen); diff != "" {
		t.Errorf("seen (-want +got):\n%s", diff)
	}
	if joined, _ := KeyControlJoined(append(samples, lab.MemberSample{Node: "n3", At: ms(2500), Members: 3}), "n1", at, 3); !joined {
		t.Error("n3 counted three 2.5 s after the control, yet not joined")
	}
	if low, ok := LowestMembers(samples); !ok || low != 1 {
		t.Errorf("LowestMembers = %d, %t; want 1", low, ok)
	}
	if _, ok := LowestMembers([]lab.MemberSample{{Err: refused}, {Members: 0}}); ok {
		t.Error("a lowest count among readings that tell nothing")
	}
	if got := SamplesSince(samples, ms(1500)); len(got) != 3 {
		t.Errorf("SamplesSince(+1.5s) = %+v, want 3", got)
	}
	if got := DescribeSamples(samples[3:4], at); got != "+1.5s n1 counted 1" {
		t.Errorf("DescribeSamples = %q", got)
	}
}
