package measure

// This file is the layer 2 failover trial (FailoverTrial): a fault on
// the node answering for an address, as the client's prober sees it; and
// who answers for an address (Owner, SettledSince, FirstAnswer).

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/ironlb/ironlb/e2e/lab"
	"github.com/ironlb/ironlb/e2e/traffic"
)

// Fault is something that happens to the node announcing an address.
type Fault string

const (
	// FaultKill kills the owner's speaker with SIGKILL, then starts it again.
	FaultKill Fault = "speaker SIGKILL"
	// FaultLink pulls the owner's LAN cable, then plugs it back in.
	FaultLink Fault = "node link down"
	// FaultRestart stops the owner's speaker gracefully (SIGTERM) and
	// starts it again, as a rolling upgrade does.
	FaultRestart Fault = "graceful restart"
)

// Trial is what the client saw of one fault.
type Trial struct {
	Fault  Fault
	Target netip.Addr
	// Old is the node announcing Target before the fault, New the one
	// that took over.
	Old, New string
	// Failover is the handover from Old to New as the client saw it (for
	// FaultRestart: to the successor while the owner was away).
	Failover Failover
	// Unanswered counts the probes of the whole trial, from the fault
	// until the old owner alone answered again, after which no answer at
	// all came within AnswerWithin.
	Unanswered int
	Probes     int
	// ProberPause is the prober's longest pause between two probes of
	// the trial beyond its interval: the client's own process kept off
	// the CPU, which delays how late it reads answers too.
	ProberPause time.Duration
	// Timeline summarises who answered the trial's probes, in order, as
	// runs: "node3 x52, - x4, node2+node3 x3, node2 x80".
	Timeline string
}

// timeline summarises who answered each probe.
func timeline(l *lab.Lab, ps []traffic.Probe) string {
	var runs []string
	prev, n := "", 0
	flush := func() {
		if n > 0 {
			runs = append(runs, fmt.Sprintf("%s x%d", prev, n))
		}
	}
	for _, p := range ps {
		var who []string
		for _, r := range p.Replies {
			if !r.Solicited || !p.AnsweredWithin(traffic.DefaultProbeInterval) {
				continue
			}
			if node := l.NodeOfMAC(r.MAC); node != "" && !slices.Contains(who, node) {
				who = append(who, node)
			}
		}
		slices.Sort(who)
		cur := strings.Join(who, "+")
		if cur == "" {
			cur = "-"
		}
		if cur != prev {
			flush()
			prev, n = cur, 0
		}
		n++
	}
	flush()
	return strings.Join(runs, ", ")
}

// AnswerWithin is how soon after a probe some answer must come for the
// probe to count as answered in a trial. It is a few probe intervals: an
// answer delayed by a busy machine is filed under the next probe, and a
// client's own ARP or NDP retries are a second apart anyway.
const AnswerWithin = 50 * time.Millisecond

// silent counts the probes after which no answer at all (to any probe)
// came within d.
func silent(ps []traffic.Probe, d time.Duration) int {
	var at []time.Time
	for _, p := range ps {
		for _, r := range p.Replies {
			at = append(at, r.At)
		}
	}
	slices.SortFunc(at, time.Time.Compare)
	n := 0
	for _, p := range ps {
		i, _ := slices.BinarySearchFunc(at, p.Sent, time.Time.Compare)
		if i == len(at) || at[i].Sub(p.Sent) > d {
			n++
		}
	}
	return n
}

// Owner asks for target from the client until some node answers and
// returns that node.
func Owner(ctx context.Context, l *lab.Lab, target netip.Addr) (string, error) {
	pr, err := traffic.StartProbe(ctx, l.Plan, l.Plan.Client, target, 0)
	if err != nil {
		return "", err
	}
	defer pr.Stop()
	var node string
	err = waitProbes(pr, "one node answering for "+target.String(), func(ps []traffic.Probe) bool {
		node = settled(l, ps)
		return node != ""
	})
	return node, err
}

// settleProbes is how many probes in a row one node alone must answer
// for the owner to count as settled (no handoff under way).
const settleProbes = 20

// settled returns the node that alone answered each of the last
// settleProbes probes, or "".
func settled(l *lab.Lab, ps []traffic.Probe) string {
	if len(ps) < settleProbes {
		return ""
	}
	var mac net.HardwareAddr
	for _, p := range ps[len(ps)-settleProbes:] {
		for _, r := range p.Replies {
			if mac == nil {
				mac = r.MAC
			}
			if !bytes.Equal(mac, r.MAC) {
				return ""
			}
		}
		if !p.AnsweredWithin(traffic.DefaultProbeInterval) {
			return ""
		}
	}
	node := l.NodeOfMAC(mac)
	return node
}

// SettledSince is the node that alone answered each of the last
// settleProbes probes pr sent from its since-th on (a Len taken before a
// fault), or "". It reads only the end of the record.
func SettledSince(l *lab.Lab, pr *traffic.Prober, since int) string {
	return settled(l, pr.ProbesSince(max(since, pr.Len()-settleProbes)))
}

// FailoverTrial probes target from the client, inflicts the fault on the
// node announcing it, waits until another node answers (for FaultRestart:
// until the restarted owner answers again), restores the node and waits
// until it owns the address again.
func FailoverTrial(ctx context.Context, l *lab.Lab, target netip.Addr, fault Fault) (Trial, error) {
	tr := Trial{Fault: fault, Target: target}
	old, err := Owner(ctx, l, target)
	if err != nil {
		return tr, err
	}
	tr.Old = old
	oldMAC, _ := lab.NodeMAC(l.Plan, old)
	pr, err := traffic.StartProbe(ctx, l.Plan, l.Plan.Client, target, 0)
	if err != nil {
		return tr, err
	}
	defer pr.Stop()
	// The owner alone answers first, so the record starts with it.
	if err := waitProbes(pr, old+" alone answering", func(ps []traffic.Probe) bool { return settled(l, ps) == old }); err != nil {
		return tr, err
	}
	start := len(pr.Probes())
	other := func(ps []traffic.Probe) bool {
		for _, p := range ps[start:] {
			for _, r := range p.Replies {
				if !bytes.Equal(r.MAC, oldMAC) {
					return true
				}
			}
		}
		return false
	}
	restore, err := inflict(l, fault, old)
	if err != nil {
		return tr, err
	}
	if err := waitProbes(pr, "an answer from another node", other); err != nil {
		if restore != nil {
			_ = restore()
		}
		return tr, err
	}
	if restore != nil {
		if err := restore(); err != nil {
			return tr, err
		}
	}
	// The old owner ranks first for target, so once it is back it takes
	// the address back; wait for that, and for its speaker to be ready.
	mark := len(pr.Probes())
	if err := waitProbes(pr, old+" alone answering again", func(ps []traffic.Probe) bool { return settled(l, ps[mark:]) == old }); err != nil {
		return tr, err
	}
	if _, err := l.WaitSpeakerReady(old); err != nil {
		return tr, err
	}
	return judgeTrial(l, tr, pr.Stop(), start, oldMAC)
}

// inflict inflicts fault on node and returns what restores the node, nil
// for FaultRestart, which restores it at once.
func inflict(l *lab.Lab, fault Fault, node string) (restore func() error, err error) {
	switch fault {
	case FaultKill:
		if err := l.KillSpeaker(node); err != nil {
			return nil, err
		}
		return func() error { return l.StartSpeaker(node) }, nil
	case FaultLink:
		if err := lab.LinkDown(l.Plan, node); err != nil {
			return nil, err
		}
		return func() error { return lab.LinkUp(l.Plan, node) }, nil
	case FaultRestart:
		if err := l.StopSpeaker(node); err != nil {
			return nil, err
		}
		if err := l.StartSpeaker(node); err != nil {
			return nil, err
		}
		return nil, nil
	}
	return nil, fmt.Errorf("unknown fault %q", fault)
}

// judgeTrial completes tr from the probes, the fault having struck after
// the start-th: how many were sent since, which went unanswered, who
// answered when, and the failover to the first other node that answered.
func judgeTrial(l *lab.Lab, tr Trial, probes []traffic.Probe, start int, oldMAC net.HardwareAddr) (Trial, error) {
	window := probes[start:]
	tr.Probes = len(window)
	tr.Unanswered = silent(window, AnswerWithin)
	tr.Timeline = timeline(l, window)
	tr.ProberPause = longestPause(window, traffic.DefaultProbeInterval)
	for _, p := range window {
		for _, r := range p.Replies {
			if n := l.NodeOfMAC(r.MAC); n != tr.Old && n != "" {
				mac := r.MAC
				tr.New = n
				if tr.Fault == FaultRestart {
					// Both answer for a moment while the owner leaves;
					// what counts is that no probe goes unanswered.
					return tr, nil
				}
				var err error
				tr.Failover, err = AnalyzeFailover(probes[:start+indexOfFirst(window, mac)+1], oldMAC, mac)
				return tr, err
			}
		}
	}
	return tr, fmt.Errorf("no other node answered for %s", tr.Target)
}

// longestPause returns the longest time between two consecutive probes
// beyond interval.
func longestPause(ps []traffic.Probe, interval time.Duration) time.Duration {
	var out time.Duration
	for i := 1; i < len(ps); i++ {
		out = max(out, ps[i].Sent.Sub(ps[i-1].Sent)-interval)
	}
	return out
}

func indexOfFirst(ps []traffic.Probe, mac net.HardwareAddr) int {
	for i, p := range ps {
		for _, r := range p.Replies {
			if bytes.Equal(r.MAC, mac) {
				return i
			}
		}
	}
	return len(ps) - 1
}

// waitProbes polls the prober's record until cond holds.
func waitProbes(pr *traffic.Prober, what string, cond func([]traffic.Probe) bool) error {
	var stopped error // why the prober ended early
	err := lab.Poll{Every: 5 * time.Millisecond}.Until(context.Background(), what, func() (bool, string) {
		if cond(pr.Probes()) {
			return true, ""
		}
		stopped = pr.Err()
		return stopped != nil, fmt.Sprintf("%d probes so far", pr.Len())
	})
	if stopped != nil {
		return fmt.Errorf("waiting for %s: prober: %w", what, stopped)
	}
	return err
}

// FirstAnswer measures the time from create (which makes a Service that
// will get target) until the client's first answer for target.
func FirstAnswer(ctx context.Context, l *lab.Lab, target netip.Addr, create func() error) (time.Duration, error) {
	pr, err := traffic.StartProbe(ctx, l.Plan, l.Plan.Client, target, time.Millisecond)
	if err != nil {
		return 0, err
	}
	defer pr.Stop()
	t0 := time.Now()
	if err := create(); err != nil {
		return 0, err
	}
	var first time.Time
	err = waitProbes(pr, "a first answer for "+target.String(), func(ps []traffic.Probe) bool {
		for _, p := range ps {
			for _, r := range p.Replies {
				if r.At.After(t0) {
					first = r.At
					return true
				}
			}
		}
		return false
	})
	return first.Sub(t0), err
}
