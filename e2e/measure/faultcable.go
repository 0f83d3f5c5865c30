package measure

// This file is the cable-pull trial of issue 16 (CablePullTrial), which
// takes one node's LAN link down, and its pure judgement (JudgeCable).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/ironlb/ironlb/e2e/lab"
	"github.com/ironlb/ironlb/e2e/traffic"
)

// CableRecord is when things happened in a cable trial.
type CableRecord struct {
	Victim string
	// Since marks the probers a moment before the cable was pulled.
	Since map[netip.Addr]int
	// Down and Up are when the victim's cable was pulled and plugged
	// back in, End when everything was back in place.
	Down, Up, End time.Time
	// LastAlone is when the last reading of the victim's member count
	// that counted fewer than every node was asked for, after Up (zero
	// when none did); Logged the time of its log's first "speakers alive"
	// line counting every node after Up (zero when none). Rejoined is the
	// later of the two: the readings bound the moment it rejoined from
	// below, its log tells the moment itself. Rejoined not after Up
	// means it had rejoined by the time the cable was back.
	LastAlone, Logged, Rejoined time.Time
	// Readings are the victim's member counts as they changed after Up.
	Readings []string
}

// CablePullTrial pulls victim's LAN cable for hold, plugs it back in,
// reads its speaker's member count until it counts every node again,
// then waits until back says everything is in place. The cable is
// plugged back in whatever happens.
func (e *FaultEnv) CablePullTrial(victim string, hold time.Duration, back func() error) (rec CableRecord, err error) {
	rec = CableRecord{Victim: victim, Since: e.Marks()}
	// A moment of the owner answering, so that the record shows its last
	// answers before the cut.
	time.Sleep(200 * time.Millisecond)
	rec.Down = time.Now()
	if err := lab.LinkDown(e.Lab.Plan, victim); err != nil {
		return rec, err
	}
	plugged := false
	defer func() {
		if !plugged {
			err = errors.Join(err, lab.LinkUp(e.Lab.Plan, victim))
		}
	}()
	time.Sleep(hold)
	rec.Up = time.Now()
	plugged = true
	if err := lab.LinkUp(e.Lab.Plan, victim); err != nil {
		return rec, err
	}
	if err := e.readRejoin(&rec); err != nil {
		return rec, err
	}
	rec.Logged = e.Lab.FirstLogAt("speaker-"+victim, rec.Up, func(line string) bool {
		return strings.Contains(line, `msg="speakers alive"`) && strings.Contains(line, fmt.Sprintf(" count=%d ", len(e.Nodes)))
	})
	rec.Rejoined = rec.LastAlone
	if rec.Logged.After(rec.Rejoined) {
		rec.Rejoined = rec.Logged
	}
	if err := back(); err != nil {
		return rec, fmt.Errorf("after %s's cable was plugged back in: %w", victim, err)
	}
	rec.End = time.Now()
	return rec, nil
}

// readRejoin reads the victim's member count until it counts every node.
func (e *FaultEnv) readRejoin(rec *CableRecord) error {
	n := len(e.Nodes)
	last := ""
	what := fmt.Sprintf("%s's speaker to count %d members after the cable came back", rec.Victim, n)
	return lab.Poll{Every: 50 * time.Millisecond}.Until(context.Background(), what, func() (bool, string) {
		at := time.Now()
		m, err := e.Lab.SpeakerMembers(rec.Victim)
		if r := fmt.Sprintf("%d (%v)", m, err); r != last {
			rec.Readings = append(rec.Readings, fmt.Sprintf("+%s: %s", at.Sub(rec.Up).Round(time.Millisecond), r))
			last = r
		}
		if err == nil && m < n {
			rec.LastAlone = at
		}
		return err == nil && m >= n, strings.Join(rec.Readings, "; ")
	})
}

// RejoinedAfterUp reports whether the victim rejoined only after its
// cable was back, so that there was a time when it must not answer.
func (rec CableRecord) RejoinedAfterUp() bool { return rec.Rejoined.After(rec.Up) }

// CableJudgement is what one address saw of a cable trial.
type CableJudgement struct {
	Addr  netip.Addr
	Owner string
	// Stale are the victim's answers for it after its cable was back and
	// before it had rejoined: there should be none.
	Stale Answers
	// DualAfterUp is how long two nodes answered for it from the cable's
	// return on, in DualSpans.
	DualAfterUp time.Duration
	DualSpans   []Interval
	// For an address the victim owns: StandIns are the other nodes that
	// answered for it while the cable was out, and Failover the handover
	// from the victim to the first of them as the client saw it (its
	// error when there was none).
	StandIns    []string
	Failover    Failover
	FailoverErr error
}

// JudgeCable judges one address, owned by owner, through a cable trial;
// probes are the client's prober's record from rec's mark on, macs the
// nodes' MACs.
func JudgeCable(rec CableRecord, addr netip.Addr, owner string, macs map[string]net.HardwareAddr, probes []traffic.Probe) CableJudgement {
	j := CableJudgement{Addr: addr, Owner: owner}
	mac := macs[rec.Victim]
	if rec.RejoinedAfterUp() {
		j.Stale = AnswersFrom(RepliesBetween(probes, rec.Up, rec.Rejoined), mac)
	}
	j.DualAfterUp, j.DualSpans = DualAnswers(ProbesBetween(probes, rec.Up, rec.End))
	if owner != rec.Victim {
		return j
	}
	for _, p := range RepliesBetween(probes, rec.Down, rec.Up) {
		for _, r := range p.Replies {
			if n := nodeOfMAC(macs, r.MAC); n != rec.Victim && !slices.Contains(j.StandIns, n) {
				j.StandIns = append(j.StandIns, n)
			}
		}
	}
	// The handover: up to the probe that got the first answer from
	// another MAC after the cut.
	for i, p := range probes {
		for _, r := range p.Replies {
			if r.At.Before(rec.Down) || bytes.Equal(r.MAC, mac) {
				continue
			}
			j.Failover, j.FailoverErr = AnalyzeFailover(probes[:i+1], mac, r.MAC)
			return j
		}
	}
	j.FailoverErr = fmt.Errorf("no other node answered for %s after %s's cable was pulled", addr, rec.Victim)
	return j
}
