package main

// This file holds what measure-faults measures of each fault (faultKinds):
// one method of faultMeasure per fault, which runs its trials on the lab
// readied for them and adds the report's rows.

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/ironlb/ironlb/e2e/lab"
	"github.com/ironlb/ironlb/e2e/measure"
	"github.com/ironlb/ironlb/e2e/traffic"
)

// restart: every speaker restarted gracefully, one at a time; one trial
// restarts all of them.
func (m *faultMeasure) restart(ctx context.Context) error {
	e := m.e
	const fault = "rolling restart (SIGTERM, start, ready; each speaker in turn)"
	var other, own measure.Failures
	var held, otherBroken, ownBroken, foreign, foreignSol int
	var ownLost []time.Duration // per trial, as counts
	for i := range m.trials {
		ld, err := measure.StartLoad(ctx, e.Lab.Plan.Client.NetNS, e.Targets()...)
		if err != nil {
			return err
		}
		since := e.Marks()
		steps, err := e.RollingRestart(ctx, ld, e.WaitOwners)
		reqs, conns := ld.Stop()
		if err != nil {
			return fmt.Errorf("trial %d: %w", i+1, err)
		}
		lost := 0
		for _, a := range e.Addrs {
			tg := netip.AddrPortFrom(a, 80)
			owner := e.Owners[a]
			j := measure.JudgeRestart(steps, a, owner, e.MACs, reqs[tg], conns[tg], e.Probers[a].ProbesSince(since[a]))
			for _, s := range steps {
				st := measure.AnalyzeStream(reqs[tg], s.From, s.To)
				if s.Node == owner {
					own.Add(st)
				} else {
					other.Add(st)
				}
			}
			// Outside the steps (before the first, after the last).
			other.Add(measure.AnalyzeStream(reqs[tg], time.Time{}, steps[0].From))
			other.Add(measure.AnalyzeStream(reqs[tg], steps[len(steps)-1].To, time.Now()))
			lost += len(j.OwnFailed)
			otherBroken += len(j.Broken)
			ownBroken += len(j.OwnBroken)
			held += len(j.Conns)
			t, s := j.ForeignTotal()
			foreign += t
			foreignSol += s
		}
		ownLost = append(ownLost, time.Duration(lost))
		m.logf("restart trial %d/%d: %s; other nodes' addresses: %s failed, %d connections broken; own: %s failed, %d broken; foreign answers %d",
			i+1, m.trials, stepTimes(steps), other, otherBroken, own, ownBroken, foreign)
	}
	p50, _, hi := measure.Percentiles(ownLost)
	m.row(fault, "requests (a new connection every 10 ms) to the addresses of the nodes not restarting: failed",
		other.String(), "none")
	m.row(fault, "long-lived connections to those addresses: reset or broken",
		fmt.Sprintf("%d of %d held", otherBroken, held), "none")
	m.row(fault, "answers (ARP) from the restarting node for an address it does not own, before or after it is ready",
		fmt.Sprintf("%d (%d solicited)", foreign, foreignSol), "none: a starting speaker answers nothing until it has joined")
	m.row(fault, "the restarting node's own address: requests failed; long-lived connections reset or broken",
		fmt.Sprintf("%s, per trial p50 %d, max %d; connections %d of %d held", own, p50, hi, ownBroken, held),
		"not bounded: the address moves to another node and back, which resets its connections")
	return nil
}

// stepTimes prints how long each step of a rolling restart took.
func stepTimes(steps []measure.RestartStep) string {
	var out []string
	for _, s := range steps {
		out = append(out, fmt.Sprintf("%s ready %s, back %s", s.Node, s.Ready.Sub(s.Stopped).Round(time.Millisecond), s.To.Sub(s.Ready).Round(time.Millisecond)))
	}
	return strings.Join(out, "; ")
}

// partition: the memberlist port of one node cut for PartitionHold,
// then healed; the node cut takes turns.
func (m *faultMeasure) partition(ctx context.Context) error {
	e := m.e
	fault := fmt.Sprintf("memberlist port cut on an owner for %s, then healed", measure.Human(measure.PartitionHold))
	var dual, afterHeal []time.Duration
	var overBound, withAfterHeal, settledWrong, conns, broken int
	var reqs measure.Failures
	for i := range m.trials {
		victim := e.Nodes[i%len(e.Nodes)]
		ld, err := measure.StartLoad(ctx, e.Lab.Plan.Client.NetNS, e.Targets()...)
		if err != nil {
			return err
		}
		rec, err := e.PartitionTrial(victim, measure.PartitionHold, e.WaitOwners)
		rs, cs := ld.Stop()
		if err != nil {
			return fmt.Errorf("trial %d, %s cut: %w", i+1, victim, err)
		}
		var line []string
		for _, a := range e.Addrs {
			tg := netip.AddrPortFrom(a, 80)
			j := measure.JudgePartition(rec, a, e.Owners[a], e.MACs, e.Probers[a].ProbesSince(rec.Since[a]))
			dual = append(dual, j.Dual)
			afterHeal = append(afterHeal, j.DualAfterHeal)
			if j.Dual > measure.MaxDualAnswers {
				overBound++
			}
			if j.DualAfterHeal > 0 {
				withAfterHeal++
			}
			if len(j.SettledHeard) != 1 || j.SettledHeard[0] != e.Owners[a] {
				settledWrong++
			}
			reqs.Add(measure.AnalyzeStream(rs[tg], rec.Cut, rec.End))
			open, br := measure.OpenIn(cs[tg], rec.Cut, rec.End)
			conns += len(open)
			broken += len(br)
			line = append(line, fmt.Sprintf("%s (%s) two MACs %s, after the heal %s, settled heard %v", a, e.Owners[a], measure.Millis(j.Dual), measure.Millis(j.DualAfterHeal), j.SettledHeard))
		}
		m.logf("partition trial %d/%d, %s cut, back %s after the heal: %s", i+1, m.trials, victim, rec.Settled.Sub(rec.Heal).Round(time.Millisecond), strings.Join(line, "; "))
	}
	m.row(fault, "two nodes answering (solicited ARP from two MACs), per address, in all over a trial (cut, heal, back in place)",
		fmt.Sprintf("%s; over %s: %d", measure.Summary(dual), measure.Human(measure.MaxDualAnswers), overBound), fmt.Sprintf("≤ %s in all", measure.Human(measure.MaxDualAnswers)))
	m.row(fault, "two nodes answering from the heal on, per address",
		fmt.Sprintf("%s; any in %d of %d", measure.Summary(afterHeal), withAfterHeal, len(afterHeal)),
		"none: the node holding an address stops as soon as it hears the returning owner")
	m.row(fault, "once back in place: addresses answered by any other than their owner",
		fmt.Sprintf("%d of %d", settledWrong, len(dual)), "none: the owner alone")
	m.row(fault, "requests failed, all addresses; long-lived connections reset or broken",
		fmt.Sprintf("%s; connections %d of %d", reqs, broken, conns),
		"not bounded: an address that moves resets its connections")
	return nil
}

// cable: the LAN cable of one node pulled for CableHold, then plugged
// back in; the node unplugged takes turns.
func (m *faultMeasure) cable(ctx context.Context) error {
	e := m.e
	fault := fmt.Sprintf("cable of an owner pulled for %s, then plugged back in", measure.Human(measure.CableHold))
	var rejoin, gaps, httpGaps, dualAfter []time.Duration
	var stale, staleSol, checked, rejoinedEarly, noFailover int
	var ownReqs measure.Failures
	for i := range m.trials {
		victim := e.Nodes[i%len(e.Nodes)]
		ld, err := measure.StartLoad(ctx, e.Lab.Plan.Client.NetNS, e.Targets()...)
		if err != nil {
			return err
		}
		rec, err := e.CablePullTrial(victim, measure.CableHold, e.WaitOwners)
		rs, _ := ld.Stop()
		if err != nil {
			return fmt.Errorf("trial %d, %s unplugged: %w", i+1, victim, err)
		}
		if rec.RejoinedAfterUp() {
			rejoin = append(rejoin, rec.Rejoined.Sub(rec.Up))
		} else {
			rejoinedEarly++
		}
		for _, a := range e.Addrs {
			j := measure.JudgeCable(rec, a, e.Owners[a], e.MACs, e.Probers[a].ProbesSince(rec.Since[a]))
			if rec.RejoinedAfterUp() {
				checked++
				stale += j.Stale.Total()
				staleSol += j.Stale.Solicited
			}
			dualAfter = append(dualAfter, j.DualAfterUp)
			if e.Owners[a] != victim {
				continue
			}
			if j.FailoverErr != nil {
				noFailover++
				m.logf("cable trial %d: %s: %v", i+1, a, j.FailoverErr)
			} else {
				gaps = append(gaps, j.Failover.Gap)
			}
			st := measure.AnalyzeStream(rs[netip.AddrPortFrom(a, 80)], rec.Down, rec.Up)
			ownReqs.Add(st)
			httpGaps = append(httpGaps, st.LongestGap)
		}
		m.logf("cable trial %d/%d, %s unplugged: rejoined %s after the cable came back (readings %s); stale answers so far %d; failover gap %s",
			i+1, m.trials, victim, rec.Rejoined.Sub(rec.Up).Round(time.Millisecond), strings.Join(rec.Readings, "; "), stale, measure.LastOr(gaps))
	}
	early := ""
	if rejoinedEarly > 0 {
		early = fmt.Sprintf(" (in %d trials it had rejoined by the time the cable was back: nothing to check)", rejoinedEarly)
	}
	m.row(fault, "answers (ARP, solicited or not) from the unplugged node after the cable is back and before its speaker has rejoined",
		fmt.Sprintf("%d (%d solicited), over %d address-trials%s", stale, staleSol, checked, early), "0: silent until it has rejoined")
	m.row(fault, "rejoined: from the cable's return until its speaker counts every node",
		measure.Summary(rejoin), "not bounded; the speakers retry each other every 10 s")
	gapNote := ""
	if noFailover > 0 {
		gapNote = fmt.Sprintf("; no stand-in seen in %d trials", noFailover)
	}
	m.row(fault, "at the cut, its own address: last answer from it → first answer from a stand-in (ARP)",
		measure.Summary(gaps)+gapNote, "not bounded here: as the failover of a pulled cable (docs/failover.md)")
	m.row(fault, "at the cut, its own address over HTTP: longest gap between answered requests; requests failed while the cable was out",
		fmt.Sprintf("%s; %s", measure.Summary(httpGaps), ownReqs),
		"not bounded; a third of the connections go to the unplugged node's pod, which the lab never marks unready")
	m.row(fault, "two nodes answering from the cable's return on, per address",
		measure.Summary(dualAfter), "none: the node holding an address stops as soon as it hears the returning owner")
	return nil
}

// apiServer: the API server frozen for FreezeHold; FreezeKillAfter into
// it the speaker owning an address is SIGKILLed. The BGP sessions have a
// password. The node killed takes turns.
func (m *faultMeasure) apiServer(ctx context.Context) error {
	e := m.e
	l := e.Lab
	fault := fmt.Sprintf("API server frozen %s; an owner's speaker SIGKILLed %s in", measure.Human(measure.FreezeHold), measure.Human(measure.FreezeKillAfter))
	bgpAddr := lab.PoolAddr(lab.BGPPoolNet, 100)
	pfx := netip.PrefixFrom(bgpAddr, 32)
	if err := e.Service(ctx, "fault-bgp", bgpAddr); err != nil {
		return err
	}
	var all []netip.Addr
	for _, n := range l.Plan.Nodes {
		all = append(all, n.Addr.Addr())
	}
	if err := l.WaitPaths(pfx, all...); err != nil {
		return err
	}
	back := func() error {
		if err := e.WaitOwners(); err != nil {
			return err
		}
		return l.WaitPaths(pfx, all...)
	}
	var t freezeTally
	for i := range m.trials {
		if err := m.freezeTrial(ctx, &t, i, bgpAddr, back); err != nil {
			return err
		}
	}
	m.freezeRows(fault, &t)
	return nil
}

// freezeTally sums up the API-freeze trials.
type freezeTally struct {
	// took is, per kill, how soon another node answered for the killed
	// speaker's address; noAnswer counts the kills after which none did,
	// overBound those after which it took longer than MaxAnswerAfterKill.
	took                []time.Duration
	noAnswer, overBound int
	// The router's sessions with the survivors, and those of them that
	// dropped; its readings of the BGP address, and those that lacked a
	// survivor's path; the survivors failing liveness or replaced.
	sessions, dropped, readings, pathFaults, liveness, replaced int
	// The failed requests to the killed speaker's address, to the other
	// addresses, and to the BGP address from behind the router.
	victimReqs, otherReqs, bgpReqs measure.Failures
}

// freezeTrial runs the i-th API-freeze trial, with traffic to every
// address and, from behind the router, to bgpAddr, and adds what it saw
// to t.
func (m *faultMeasure) freezeTrial(ctx context.Context, t *freezeTally, i int, bgpAddr netip.Addr, back func() error) error {
	e := m.e
	l := e.Lab
	pfx := netip.PrefixFrom(bgpAddr, 32)
	victim := e.Nodes[i%len(e.Nodes)]
	ld, err := measure.StartLoad(ctx, l.Plan.Client.NetNS, e.Targets()...)
	if err != nil {
		return err
	}
	remote, err := measure.StartLoad(ctx, l.Plan.Remote.NetNS, netip.AddrPortFrom(bgpAddr, 80))
	if err != nil {
		ld.Stop()
		return err
	}
	rec, err := e.APIFreezeTrial(victim, pfx, measure.FreezeHold, back)
	rs, _ := ld.Stop()
	rrs, _ := remote.Stop()
	if err != nil {
		return fmt.Errorf("trial %d, %s killed: %w", i+1, victim, err)
	}
	t.addAnswers(e, rec, rs, victim)
	t.bgpReqs.Add(measure.AnalyzeStream(rrs[netip.AddrPortFrom(bgpAddr, 80)], rec.Freeze, rec.Thaw))
	if rec.DuringErr != nil || rec.AfterErr != nil {
		return fmt.Errorf("trial %d: reading the router's sessions: %v, %v", i+1, rec.DuringErr, rec.AfterErr)
	}
	drops := map[netip.Addr]bool{}
	for _, ss := range []map[netip.Addr]lab.RouterSession{rec.During, rec.After} {
		for _, a := range measure.SessionsDropped(rec.Before, ss, rec.SessionAddrs) {
			drops[a] = true
		}
	}
	t.sessions += len(rec.SessionAddrs)
	t.dropped += len(drops)
	t.readings += rec.PathReadings
	t.pathFaults += len(rec.PathFaults)
	t.liveness += len(rec.Liveness)
	t.replaced += len(rec.Replaced)
	m.logf("apiserver trial %d/%d, %s killed: another node answered after %s; sessions dropped %d, path faults %d, liveness %v, replaced %v; back %s after the thaw",
		i+1, m.trials, victim, measure.LastOr(t.took), len(drops), len(rec.PathFaults), rec.Liveness, rec.Replaced, rec.End.Sub(rec.Thaw).Round(time.Millisecond))
	return nil
}

// addAnswers adds, per address, the requests of one trial, and for the
// killed speaker's address how soon another node answered for it.
func (t *freezeTally) addAnswers(e *measure.FaultEnv, rec measure.FreezeRecord, rs map[netip.AddrPort][]traffic.Request, victim string) {
	for _, a := range e.Addrs {
		st := measure.AnalyzeStream(rs[netip.AddrPortFrom(a, 80)], rec.Freeze, rec.Thaw)
		if e.Owners[a] != victim {
			t.otherReqs.Add(st)
			continue
		}
		t.victimReqs.Add(st)
		first, ok := measure.FirstAnswerAfter(e.Probers[a].ProbesSince(rec.Since[a]), e.MACs[victim], rec.Kill)
		if !ok {
			t.noAnswer++
			continue
		}
		t.took = append(t.took, first.At.Sub(rec.Kill))
		if first.At.Sub(rec.Kill) > measure.MaxAnswerAfterKill {
			t.overBound++
		}
	}
}

// freezeRows reports the API-freeze trials.
func (m *faultMeasure) freezeRows(fault string, t *freezeTally) {
	answered := measure.Summary(t.took)
	if t.noAnswer > 0 {
		answered += fmt.Sprintf("; no answer from another node in %d", t.noAnswer)
	}
	m.row(fault, "another node answers (solicited ARP) for the killed speaker's address, after the kill",
		fmt.Sprintf("%s; over %s: %d", answered, measure.Human(measure.MaxAnswerAfterKill), t.overBound), fmt.Sprintf("≤ %s", measure.Human(measure.MaxAnswerAfterKill)))
	m.row(fault, "the router (FRR): the surviving nodes' BGP sessions dropped; readings of the BGP address (twice a second) lacking a surviving node's path",
		fmt.Sprintf("sessions %d of %d; readings %d of %d", t.dropped, t.sessions, t.pathFaults, t.readings),
		"none: the password stays as last read, and BGP reads nothing else from the API server")
	m.row(fault, "surviving speakers restarted, or failing the liveness probe three times in a row",
		fmt.Sprintf("%d restarted, %d failing", t.replaced, t.liveness), "none")
	m.row(fault, "requests failed during the freeze: the killed speaker's address; the other addresses; the BGP address from behind the router",
		fmt.Sprintf("%s; %s; %s", t.victimReqs, t.otherReqs, t.bgpReqs),
		"others none (their owners and forwarding rules do not change); the killed node's address and BGP path not bounded")
}

// rotation: the memberlist key rotated in three rollouts (see
// measure.FaultEnv.RotateKey); one trial is a whole rotation, each to a
// fresh key. A negative control runs once first.
func (m *faultMeasure) rotation(ctx context.Context) error {
	e := m.e
	fault := "memberlist key rotation (three rollouts of every speaker)"
	n := len(e.Nodes)
	watch := e.Lab.WatchMembers(ctx, 100*time.Millisecond)
	defer watch.Stop()
	if !e.AllCount(30 * time.Second) {
		return fmt.Errorf("not every speaker counts %d members before the rotation: %v", n, measure.LatestMembers(watch.Samples()))
	}
	ctl, err := e.KeyControl(ctx, watch, e.Nodes[0])
	if err != nil {
		return fmt.Errorf("negative control: %w", err)
	}
	m.logf("negative control: %s restarted with a key the others lack; counted by them: %t; readings %v", ctl.Victim, ctl.Joined, ctl.Seen)
	var rollouts, rotations []time.Duration
	lowest, readings, below := n, 0, 0
	for i := range m.trials {
		start := time.Now()
		ros, err := e.RotateKey(ctx, watch)
		if err != nil {
			return fmt.Errorf("trial %d: %w", i+1, err)
		}
		end := time.Now()
		var during []lab.MemberSample
		for _, s := range watch.Samples() {
			if !s.At.Before(start) && s.At.Before(end) {
				during = append(during, s)
			}
		}
		low, _ := measure.LowestMembers(during)
		lowest = min(lowest, low)
		readings += len(during)
		below += len(measure.MembersBelow(during, n-1))
		var line []string
		for _, ro := range ros {
			rollouts = append(rollouts, ro.To.Sub(ro.From))
			line = append(line, fmt.Sprintf("%s %s", ro.Name, ro.To.Sub(ro.From).Round(time.Millisecond)))
		}
		rotations = append(rotations, end.Sub(start))
		m.logf("rotation trial %d/%d: lowest count %d of %d readings; %s", i+1, m.trials, low, len(during), strings.Join(line, ", "))
	}
	m.row(fault, "lowest member count a joined speaker reported (its metrics, read every 100 ms)",
		fmt.Sprintf("%d; readings below %d: %d of %d", lowest, n-1, below, readings), fmt.Sprintf("≥ N−1 = %d: only the speaker restarting is missing", n-1))
	m.row(fault, "one rollout: the Secret written → every speaker restarted in turn and counting every node",
		measure.Summary(rollouts)+"; a whole rotation "+measure.Summary(rotations), "not bounded")
	control := "split off, as it should be: readings " + strings.Join(ctl.Seen, ", ")
	if ctl.Joined {
		control = "COUNTED AS A MEMBER: the lab cannot tell a working rotation from a broken one, the figures above prove nothing"
	}
	r := faultRow{fault: fault, trials: 1, what: "negative control: a speaker restarted with a new key alone while the others know only the old one",
		figures: control, promised: "split off (a check of the measurement)"}
	m.rows = append(m.rows, r)
	m.logf("%s", r)
	return nil
}
