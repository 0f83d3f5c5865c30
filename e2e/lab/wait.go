package lab

// This file is the one way the lab, its measurements and the suite wait
// for something to become true (Eventually, Poll.Until).

import (
	"context"
	"fmt"
	"time"
)

// WaitLimit bounds every wait that says no other limit; it guards against
// a hung lab, it is not a measure.
const WaitLimit = 60 * time.Second

// defaultEvery is how often a wait looks again when it says nothing else.
const defaultEvery = 20 * time.Millisecond

// Poll is how a wait looks: every Every, for at most Within. Zero fields
// mean 20 ms and WaitLimit. A measurement that reads a time off a wait
// states Every, as it bounds the reading's precision.
type Poll struct {
	Every, Within time.Duration
}

// Eventually waits, polling with the default Poll, until cond holds; see
// Poll.Until.
func Eventually(ctx context.Context, what string, cond func() (done bool, why string)) error {
	return Poll{}.Until(ctx, what, cond)
}

// Until calls cond until it reports done, ctx ends or p.Within passes.
// cond's why says what it saw instead, and the error names what was
// awaited and the last why: "waiting for <what>: <why> (not within 1m0s)".
func (p Poll) Until(ctx context.Context, what string, cond func() (done bool, why string)) error {
	every, within := p.Every, p.Within
	if every <= 0 {
		every = defaultEvery
	}
	if within <= 0 {
		within = WaitLimit
	}
	deadline := time.Now().Add(within)
	for {
		done, why := cond()
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for %s: %s (not within %s)", what, why, within)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %s (%w)", what, why, ctx.Err())
		case <-time.After(every):
		}
	}
}

// Why is the explanation of a poll whose reading failed or whose result
// was not yet right: err when there is one, else what was seen.
func Why(err error, seen any) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprint(seen)
}

// waitReady waits until a node's speaker is ready.
func (l *Lab) waitReady(node string) error {
	return Poll{Every: 50 * time.Millisecond}.Until(context.Background(), "the speaker on "+node+" to be ready", func() (bool, string) {
		err := l.SpeakerReady(node)
		return err == nil, Why(err, "ready")
	})
}
