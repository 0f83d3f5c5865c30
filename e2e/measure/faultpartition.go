package measure

// This file is the partition trial of issue 16 (PartitionTrial), which
// cuts one node's memberlist traffic, and its pure judgement
// (JudgePartition).

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/ironlb/ironlb/e2e/traffic"
)

// PartitionRecord is when things happened in a partition trial.
type PartitionRecord struct {
	Victim string
	// Since marks the probers at the cut.
	Since map[netip.Addr]int
	// Cut and Heal are when the victim's memberlist traffic was cut and
	// let through again, Settled when everything was back in place, End
	// a moment later.
	Cut, Heal, Settled, End time.Time
}

// PartitionTrial cuts victim's memberlist traffic (and nothing else) for
// hold, heals it, waits until back says everything is in place, and a
// moment more. The cut is healed whatever happens.
func (e *FaultEnv) PartitionTrial(victim string, hold time.Duration, back func() error) (rec PartitionRecord, err error) {
	rec = PartitionRecord{Victim: victim, Since: e.Marks(), Cut: time.Now()}
	if err := e.Lab.PortCut(victim); err != nil {
		return rec, err
	}
	healed := false
	defer func() {
		if !healed {
			err = errors.Join(err, e.Lab.PortHeal(victim))
		}
	}()
	time.Sleep(hold)
	rec.Heal = time.Now()
	healed = true
	if err := e.Lab.PortHeal(victim); err != nil {
		return rec, err
	}
	if err := back(); err != nil {
		return rec, fmt.Errorf("after %s's memberlist port was healed: %w", victim, err)
	}
	rec.Settled = time.Now()
	time.Sleep(2 * settleAfter)
	rec.End = time.Now()
	return rec, nil
}

// PartitionJudgement is what one address saw of a partition trial.
type PartitionJudgement struct {
	Addr  netip.Addr
	Owner string
	// Dual is how long two nodes answered for it in all, in DualSpans,
	// from the cut on; DualAfterHeal how long of it came from the heal
	// on.
	Dual, DualAfterHeal time.Duration
	DualSpans           []Interval
	// SettledHeard names who answered it (node, or MAC when no node has
	// it) from Settled until End, in SettledProbes probes, of which
	// SettledUnanswered got no answer within AnswerWithin. The owner
	// alone should.
	SettledHeard                     []string
	SettledProbes, SettledUnanswered int
}

// JudgePartition judges one address, owned by owner, through a
// partition trial; probes are the client's prober's record from rec's
// mark on, macs the nodes' MACs.
func JudgePartition(rec PartitionRecord, addr netip.Addr, owner string, macs map[string]net.HardwareAddr, probes []traffic.Probe) PartitionJudgement {
	j := PartitionJudgement{Addr: addr, Owner: owner}
	j.Dual, j.DualSpans = DualAnswers(probes)
	j.DualAfterHeal, _ = DualAnswers(ProbesBetween(probes, rec.Heal, rec.End))
	settled := ProbesBetween(probes, rec.Settled, rec.End)
	j.SettledProbes, j.SettledUnanswered = len(settled), Unanswered(settled, AnswerWithin)
	for _, p := range settled {
		for _, r := range p.Replies {
			if n := nodeOfMAC(macs, r.MAC); !slices.Contains(j.SettledHeard, n) {
				j.SettledHeard = append(j.SettledHeard, n)
			}
		}
	}
	return j
}

// nodeOfMAC names the node whose MAC mac is, or gives the MAC.
func nodeOfMAC(macs map[string]net.HardwareAddr, mac net.HardwareAddr) string {
	for _, n := range slices.Sorted(maps.Keys(macs)) {
		if bytes.Equal(macs[n], mac) {
			return n
		}
	}
	return mac.String()
}
