package measure

// This file is the API-freeze trial of issue 16 (APIFreezeTrial), which
// freezes the API server and kills one node's speaker meanwhile, and what
// judges it (FirstAnswerAfter, SessionsDropped).

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/ironlb/ironlb/e2e/lab"
	"github.com/ironlb/ironlb/e2e/traffic"
)

// FreezeRecord is when things happened in an API-freeze trial, and what
// the router and the surviving speakers did meanwhile.
type FreezeRecord struct {
	Victim    string
	Survivors []string
	// Since marks the probers at the kill.
	Since map[netip.Addr]int
	// Freeze and Thaw are when the API server was stopped and resumed,
	// Kill when the victim's speaker was killed, Ready when it answered
	// /readyz after being started again after the thaw, End when
	// everything was back in place.
	Freeze, Kill, Thaw, Ready, End time.Time
	// SessionAddrs are the survivors' addresses the router has sessions
	// with; Before, During and After are the router's sessions before the
	// freeze, at its end and once everything was back in place
	// (DuringErr, AfterErr when they could not be read).
	SessionAddrs          []netip.Addr
	Before, During, After map[netip.Addr]lab.RouterSession
	DuringErr, AfterErr   error
	// PathFaults are the readings of the router's paths, twice a second
	// through the freeze (PathReadings of them), that lacked a survivor's
	// path.
	PathFaults   []string
	PathReadings int
	// Liveness names the survivors whose /healthz failed three probes in
	// a row, as a kubelet probes it (every 10 s, 1 s timeout): it would
	// have restarted them. With when and why.
	Liveness map[string]string
	// Replaced names the survivors whose speaker process changed.
	Replaced []string
}

// APIFreezeTrial freezes the API server for hold and, FreezeKillAfter
// into it, kills victim's speaker; through the freeze it reads the
// router's paths for pfx (a BGP address every node advertises) and the
// survivors' liveness. After the thaw it starts the victim's speaker
// again and waits until back says everything is in place. The API server
// is thawed whatever happens.
func (e *FaultEnv) APIFreezeTrial(victim string, pfx netip.Prefix, hold time.Duration, back func() error) (rec FreezeRecord, err error) {
	l := e.Lab
	rec = FreezeRecord{Victim: victim, Survivors: e.Others(victim), Liveness: map[string]string{}}
	var hops []netip.Addr
	for _, n := range l.Plan.Nodes {
		if n.Name != victim {
			hops = append(hops, n.Addr.Addr())
			rec.SessionAddrs = append(rec.SessionAddrs, n.Addr.Addr(), n.Addr6.Addr())
		}
	}
	pids := map[string]int{}
	for _, n := range rec.Survivors {
		pids[n] = l.SpeakerPID(n)
	}
	if rec.Before, err = lab.RouterSessions(l.Plan); err != nil {
		return rec, err
	}
	if err := l.FreezeAPIServer(); err != nil {
		return rec, err
	}
	thawed := false
	defer func() {
		if !thawed {
			err = errors.Join(err, l.ThawAPIServer())
		}
	}()
	rec.Freeze = time.Now()
	time.Sleep(FreezeKillAfter)
	rec.Since, rec.Kill = e.Marks(), time.Now()
	if err := l.KillSpeaker(victim); err != nil {
		return rec, err
	}
	e.watchFrozen(&rec, pfx, hops, hold)
	rec.During, rec.DuringErr = lab.RouterSessions(l.Plan)
	thawed = true
	if err := l.ThawAPIServer(); err != nil {
		return rec, err
	}
	rec.Thaw = time.Now()
	if err := l.StartSpeaker(victim); err != nil {
		return rec, err
	}
	if rec.Ready, err = l.WaitSpeakerReady(victim); err != nil {
		return rec, err
	}
	if err := back(); err != nil {
		return rec, fmt.Errorf("after the thaw: %w", err)
	}
	rec.End = time.Now()
	for _, n := range rec.Survivors {
		if l.SpeakerPID(n) != pids[n] {
			rec.Replaced = append(rec.Replaced, n)
		}
	}
	rec.After, rec.AfterErr = lab.RouterSessions(l.Plan)
	return rec, nil
}

// watchFrozen reads, until hold has passed since the freeze, the
// router's paths for pfx twice a second, and the survivors' liveness as
// a kubelet would probe it (every 10 s, 1 s timeout, restarted after
// three failures in a row).
func (e *FaultEnv) watchFrozen(rec *FreezeRecord, pfx netip.Prefix, hops []netip.Addr, hold time.Duration) {
	l := e.Lab
	failedInRow := map[string]int{}
	nextLiveness := time.Now()
	for time.Since(rec.Freeze) < hold {
		got, err := lab.RouterPaths(l.Plan, pfx)
		rec.PathReadings++
		missing := slices.DeleteFunc(slices.Clone(hops), func(a netip.Addr) bool { return slices.Contains(got, a) })
		if err != nil || len(missing) > 0 {
			rec.PathFaults = append(rec.PathFaults, fmt.Sprintf("+%s: paths %v (%v), missing %v", time.Since(rec.Freeze).Round(time.Millisecond), got, err, missing))
		}
		if time.Now().After(nextLiveness) {
			nextLiveness = nextLiveness.Add(10 * time.Second)
			for _, n := range rec.Survivors {
				ns, url, err := l.SpeakerProbe(n, "/healthz")
				if err == nil {
					_, err = lab.HTTPGetFrom(ns, url, time.Second)
				}
				if err == nil {
					failedInRow[n] = 0
					continue
				}
				if failedInRow[n]++; failedInRow[n] >= 3 && rec.Liveness[n] == "" {
					rec.Liveness[n] = fmt.Sprintf("+%s: %v", time.Since(rec.Freeze).Round(time.Millisecond), err)
				}
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// FirstAnswerAfter returns the first solicited answer read after `after`
// from another MAC than not.
func FirstAnswerAfter(probes []traffic.Probe, not net.HardwareAddr, after time.Time) (traffic.Reply, bool) {
	var first traffic.Reply
	found := false
	for _, p := range probes {
		for _, r := range p.Replies {
			if r.Solicited && !bytes.Equal(r.MAC, not) && r.At.After(after) && (!found || r.At.Before(first.At)) {
				first, found = r, true
			}
		}
	}
	return first, found
}

// SessionsDropped returns the addresses, of addrs, whose session with
// the router went down between the readings before and after (it
// dropped, however briefly, or is not established).
func SessionsDropped(before, after map[netip.Addr]lab.RouterSession, addrs []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, a := range addrs {
		if after[a].Dropped != before[a].Dropped || after[a].State != "Established" {
			out = append(out, a)
		}
	}
	return out
}
