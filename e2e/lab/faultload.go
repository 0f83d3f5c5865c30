package lab

// This file is the traffic of a fault trial (Load): requests on new
// connections and long-lived connections to every address of a FaultEnv.

import (
	"context"
	"net/netip"
	"time"
)

// Load is the traffic of a fault trial: a stream of requests, each on a
// new connection, to each target, and long-lived connections to each.
type Load struct {
	ns      string
	targets []netip.AddrPort
	streams map[netip.AddrPort]*Stream
	holders map[netip.AddrPort][]*Holder
}

// StartLoad streams requests from namespace ns to every target (one
// every StreamInterval, each given FaultRequestTimeout), waits until
// every stream is answered, and holds FaultHeldPerAddr connections to
// each (see Hold). On error it stops what it started.
func StartLoad(ctx context.Context, ns string, targets ...netip.AddrPort) (*Load, error) {
	ld := &Load{ns: ns, targets: targets, streams: map[netip.AddrPort]*Stream{}, holders: map[netip.AddrPort][]*Holder{}}
	var sts []StreamTarget
	var streams []*Stream
	for _, tg := range targets {
		ld.streams[tg] = StartStream(ctx, ns, tg, StreamInterval, FaultRequestTimeout)
		sts = append(sts, StreamTarget{From: ns, Target: tg})
		streams = append(streams, ld.streams[tg])
	}
	err := waitAnswered(streams, sts, time.Time{}, "at the start")
	if err == nil {
		err = ld.Hold(ctx)
	}
	if err != nil {
		ld.Stop()
		return nil, err
	}
	return ld, nil
}

// Hold opens FaultHeldPerAddr new long-lived connections to every
// target, beside those opened before (a broken one is not dialled again;
// a trial that wants live connections for its next step holds new ones).
func (ld *Load) Hold(ctx context.Context) error {
	for _, tg := range ld.targets {
		h, err := HoldConns(ctx, ld.ns, tg, FaultHeldPerAddr, HoldInterval, FaultHoldTimeout)
		if err != nil {
			return err
		}
		ld.holders[tg] = append(ld.holders[tg], h)
	}
	return nil
}

// Stop ends the traffic and returns what each target's stream and
// connections saw. Safe to call twice.
func (ld *Load) Stop() (map[netip.AddrPort][]Request, map[netip.AddrPort][]HeldConn) {
	reqs, conns := map[netip.AddrPort][]Request{}, map[netip.AddrPort][]HeldConn{}
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

// OpenIn returns the long-lived connections open at some moment from
// `from` until `to`, and those of them that broke then.
func OpenIn(conns []HeldConn, from, to time.Time) (open, broken []HeldConn) {
	for _, c := range conns {
		if !c.Opened.Before(to) || (!c.Held() && c.Broken.Before(from)) {
			continue
		}
		open = append(open, c)
		if !c.Held() && c.Broken.Before(to) {
			broken = append(broken, c)
		}
	}
	return open, broken
}
