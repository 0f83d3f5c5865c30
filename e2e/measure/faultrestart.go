package measure

// This file is the rolling-restart trial of issue 16 (RollingRestart) and
// its pure judgement (JudgeRestart).

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/ironlb/ironlb/e2e/traffic"
)

// RestartStep is one speaker's turn in a rolling restart.
type RestartStep struct {
	Node string
	// From is when it was asked to stop, Stopped when it had, Ready when
	// it answered /readyz again, To when every address was back in place
	// and a moment more had passed.
	From, Stopped, Ready, To time.Time
}

// StepAt names the node restarting at t, "" between steps.
func StepAt(steps []RestartStep, t time.Time) string {
	for _, s := range steps {
		if !t.Before(s.From) && t.Before(s.To) {
			return s.Node
		}
	}
	return ""
}

// RollingRestart stops every speaker gracefully and starts it again, one
// at a time, each ready (joined) before the next, as a DaemonSet rollout
// does; after each, back must say that everything is in place again.
// Before every step but the first, ld holds fresh connections, so each
// step has some also to the addresses whose earlier ones broke when their
// own node restarted.
func (e *FaultEnv) RollingRestart(ctx context.Context, ld *Load, back func() error) ([]RestartStep, error) {
	var steps []RestartStep
	for i, node := range e.Nodes {
		if i > 0 {
			if err := ld.Hold(ctx); err != nil {
				return steps, err
			}
		}
		s := RestartStep{Node: node, From: time.Now()}
		if err := e.Lab.StopSpeaker(node); err != nil {
			return steps, err
		}
		s.Stopped = time.Now()
		if err := e.Lab.StartSpeaker(node); err != nil {
			return steps, err
		}
		var err error
		if s.Ready, err = e.Lab.WaitSpeakerReady(node); err != nil {
			return steps, err
		}
		if err := back(); err != nil {
			return steps, fmt.Errorf("after %s restarted: %w", node, err)
		}
		time.Sleep(settleAfter)
		s.To = time.Now()
		steps = append(steps, s)
	}
	return steps, nil
}

// RestartJudgement is what one address saw of a rolling restart.
type RestartJudgement struct {
	Addr  netip.Addr
	Owner string
	// Failed are its requests that failed while another node restarted,
	// between steps, before the first or after the last: none should.
	// OwnFailed failed while its owner restarted, which the issue allows.
	Failed, OwnFailed []traffic.Request
	// Conns are its long-lived connections; Broken those that broke while
	// another node restarted or between steps (none should), OwnBroken
	// those that broke while its owner restarted.
	Conns, Broken, OwnBroken []traffic.HeldConn
	// Foreign are the answers for it, during each step of a node that does
	// not own it, from that node: there should be none, neither before it
	// is ready (it has not joined) nor after. By node.
	Foreign map[string]Answers
	// Own are its owner's answers for it during the owner's step, once
	// the owner was ready.
	Own Answers
}

// ForeignTotal counts the answers of Foreign.
func (j RestartJudgement) ForeignTotal() (total, solicited int) {
	for _, a := range j.Foreign {
		total += a.Total()
		solicited += a.Solicited
	}
	return total, solicited
}

// JudgeRestart judges one address, owned by owner, through the steps of
// a rolling restart: reqs and conns are its load's record, probes the
// client's prober's record from the first step on, macs the nodes' MACs.
func JudgeRestart(steps []RestartStep, addr netip.Addr, owner string, macs map[string]net.HardwareAddr, reqs []traffic.Request, conns []traffic.HeldConn, probes []traffic.Probe) RestartJudgement {
	j := RestartJudgement{Addr: addr, Owner: owner, Conns: conns, Foreign: map[string]Answers{}}
	for _, r := range reqs {
		if r.Answered() {
			continue
		}
		if StepAt(steps, r.Sent) == owner {
			j.OwnFailed = append(j.OwnFailed, r)
		} else {
			j.Failed = append(j.Failed, r)
		}
	}
	for _, c := range conns {
		switch {
		case c.Held():
		case StepAt(steps, c.Broken) == owner:
			j.OwnBroken = append(j.OwnBroken, c)
		default:
			j.Broken = append(j.Broken, c)
		}
	}
	for _, s := range steps {
		ps := RepliesBetween(probes, s.From, s.To)
		if s.Node == owner {
			j.Own = AnswersFrom(RepliesBetween(ps, s.Ready, s.To), macs[s.Node])
			continue
		}
		j.Foreign[s.Node] = AnswersFrom(ps, macs[s.Node])
	}
	return j
}
