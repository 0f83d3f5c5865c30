package measure

// This file is the traffic of a fault trial (Load): requests on new
// connections and long-lived connections to every address of a FaultEnv.

import (
	"context"
	"net/netip"
	"time"

	"github.com/ironlb/ironlb/e2e/traffic"
)

// Load is the traffic of a fault trial: a stream of requests, each on a
// new connection, to each target, and long-lived connections to each.
type Load struct {
	ns      string
	targets []netip.AddrPort
	streams map[netip.AddrPort]*traffic.Stream
	holders map[netip.AddrPort][]*traffic.Holder
}

// StartLoad streams requests from namespace ns to every target (one
// every StreamInterval, each given FaultRequestTimeout), waits until
// every stream is answered, and holds FaultHeldPerAddr connections to
// each (see Hold). On error it stops what it started.
func StartLoad(ctx context.Context, ns string, targets ...netip.AddrPort) (*Load, error) {
	ld := &Load{ns: ns, targets: targets, streams: map[netip.AddrPort]*traffic.Stream{}, holders: map[netip.AddrPort][]*traffic.Holder{}}
	var sts []StreamTarget
	var streams []*traffic.Stream
	for _, tg := range targets {
		ld.streams[tg] = traffic.StartStream(ctx, ns, tg, StreamInterval, FaultRequestTimeout)
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
		h, err := traffic.HoldConns(ctx, ld.ns, tg, FaultHeldPerAddr, traffic.HoldInterval, FaultHoldTimeout)
		if err != nil {
			return err
		}
		ld.holders[tg] = append(ld.holders[tg], h)
	}
	return nil
}

// Stop ends the traffic and returns what each target's stream and
// connections saw. Safe to call twice.
func (ld *Load) Stop() (map[netip.AddrPort][]traffic.Request, map[netip.AddrPort][]traffic.HeldConn) {
	reqs, conns := map[netip.AddrPort][]traffic.Request{}, map[netip.AddrPort][]traffic.HeldConn{}
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
