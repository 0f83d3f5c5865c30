package measure

// This file is the stream trial (StreamFaultTrial): streams of HTTP
// requests through a fault of a node and its restoring.

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/ironlb/ironlb/e2e/lab"
	"github.com/ironlb/ironlb/e2e/traffic"
)

// FaultStop stops a node's speaker gracefully (SIGTERM) and keeps it
// stopped a while before starting it again.
const FaultStop Fault = "speaker SIGTERM"

// StreamTarget is an address a stream of requests goes to, and the
// namespace it comes from.
type StreamTarget struct {
	From   string
	Target netip.AddrPort
}

// StreamTrial is what one stream saw of a fault: from the fault until
// the node was restored (Fault), and from then until the node was back
// in its place and the stream answered again (Restore).
type StreamTrial struct {
	StreamTarget
	// Via names the node the source's neighbour entry for the target
	// pointed at just before the fault: for a layer 2 address, the node
	// its traffic went to ("" for a routed one).
	Via            string
	Fault, Restore StreamStats
}

// StreamInterval and StreamTimeout are the request streams' pace and
// patience: a request that is not answered within StreamTimeout is lost
// (a lost SYN is retried only after a second).
const (
	StreamInterval = 10 * time.Millisecond
	StreamTimeout  = 250 * time.Millisecond
)

// AnsweredRun is how many requests in a row must be answered for a
// stream to count as answered (healthy, or recovered from a fault): half
// a second of them, so that a fault that loses some of the requests
// (one ECMP path of three) is not missed by luck.
const AnsweredRun = 50

// StreamFaultTrial streams requests to every target, waits until each
// stream is answered, inflicts fault on node, keeps it at least hold
// and until every stream is answered again, restores the node, waits
// until back says it is back in its place, and again at least hold and
// until every stream is answered. On error the node is restored.
func StreamFaultTrial(ctx context.Context, l *lab.Lab, targets []StreamTarget, node string, fault Fault, hold time.Duration, back func() error) ([]StreamTrial, error) {
	streams := make([]*traffic.Stream, len(targets))
	for i, t := range targets {
		streams[i] = traffic.StartStream(ctx, t.From, t.Target, StreamInterval, StreamTimeout)
	}
	defer func() {
		for _, s := range streams {
			s.Stop()
		}
	}()
	if err := waitAnswered(streams, targets, time.Now(), "before the fault"); err != nil {
		return nil, err
	}
	via := make([]string, len(targets))
	for i, t := range targets {
		via[i], _ = l.NeighborNode(t.From, t.Target.Addr())
	}
	t0 := time.Now()
	var restore func() error
	switch fault {
	case FaultKill:
		if err := l.KillSpeaker(node); err != nil {
			return nil, err
		}
		restore = func() error { return l.StartSpeaker(node) }
	case FaultStop:
		if err := l.StopSpeaker(node); err != nil {
			return nil, err
		}
		restore = func() error { return l.StartSpeaker(node) }
	case FaultLink:
		if err := lab.LinkDown(l.Plan, node); err != nil {
			return nil, err
		}
		restore = func() error { return lab.LinkUp(l.Plan, node) }
	default:
		return nil, fmt.Errorf("fault %q: not one a stream trial knows", fault)
	}
	time.Sleep(hold)
	if err := waitAnswered(streams, targets, t0, fmt.Sprintf("after %s on %s", fault, node)); err != nil {
		_ = restore()
		return nil, err
	}
	t1 := time.Now()
	if err := restore(); err != nil {
		return nil, err
	}
	if err := back(); err != nil {
		return nil, fmt.Errorf("%s back after %s: %w", node, fault, err)
	}
	time.Sleep(hold)
	if err := waitAnswered(streams, targets, t1, fmt.Sprintf("after %s was restored from %s", node, fault)); err != nil {
		return nil, err
	}
	t2 := time.Now()
	out := make([]StreamTrial, len(targets))
	for i, s := range streams {
		reqs := s.Stop()
		out[i] = StreamTrial{StreamTarget: targets[i], Via: via[i], Fault: AnalyzeStream(reqs, t0, t1), Restore: AnalyzeStream(reqs, t1, t2)}
	}
	return out, nil
}

// waitAnswered waits until each stream's last AnsweredRun finished
// requests, all sent after since, were answered.
func waitAnswered(streams []*traffic.Stream, targets []StreamTarget, since time.Time, when string) error {
	i := 0 // the streams before the i-th have been answered
	return lab.Eventually(context.Background(), "every stream answered "+when, func() (bool, string) {
		for ; i < len(streams); i++ {
			if reqs := streams[i].Finished(); !answeredSince(reqs, since, AnsweredRun) {
				return false, fmt.Sprintf("requests from %s to %s: last %s", targets[i].From, targets[i].Target, lastOutcomes(reqs, 5))
			}
		}
		return true, ""
	})
}

// answeredSince reports whether the last n requests were sent after
// since and answered.
func answeredSince(reqs []traffic.Request, since time.Time, n int) bool {
	if len(reqs) < n {
		return false
	}
	for _, r := range reqs[len(reqs)-n:] {
		if r.Sent.Before(since) || !r.Answered() {
			return false
		}
	}
	return true
}

// lastOutcomes describes the last n requests, for an error message.
func lastOutcomes(reqs []traffic.Request, n int) string {
	var out []string
	for _, r := range reqs[max(0, len(reqs)-n):] {
		if r.Answered() {
			out = append(out, r.Pod)
		} else {
			out = append(out, fmt.Sprint(r.Err))
		}
	}
	return strings.Join(out, "; ")
}

// OwnerIs waits until node alone answers the client for target (by ARP
// or NDP) and its speaker is ready: a restored owner is back.
func OwnerIs(ctx context.Context, l *lab.Lab, target netip.Addr, node string) error {
	err := lab.Poll{Every: time.Nanosecond}.Until(ctx, fmt.Sprintf("%s owned by %s", target, node), func() (bool, string) {
		owner, err := Owner(ctx, l, target)
		return err == nil && owner == node, fmt.Sprintf("owned by %q (%v)", owner, err)
	})
	if err != nil {
		return err
	}
	_, err = l.WaitSpeakerReady(node)
	return err
}
