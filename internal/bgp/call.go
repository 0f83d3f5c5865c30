package bgp

import (
	"context"
	"fmt"
	"time"
)

// call runs fn against GoBGP with the call timeout. GoBGP's calls take a
// context but may block regardless of it, so fn runs on a goroutine of its
// own; one that overruns is remembered, and no further call is made until
// it has returned.
func (s *Server) call(name string, fn func(ctx context.Context) error) error {
	if s.stuck != nil {
		select {
		case <-s.stuck:
			s.stuck = nil
		default:
			return fmt.Errorf("GoBGP has not yet returned from %s, which overran %s; not calling %s", s.stuckCall, s.opts.CallTimeout, name)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.CallTimeout)
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		done <- fn(ctx)
	}()
	t := time.NewTimer(s.opts.CallTimeout)
	defer t.Stop()
	select {
	case err := <-done:
		cancel()
		if err != nil {
			return fmt.Errorf("GoBGP %s: %w", name, err)
		}
		return nil
	case <-t.C:
		cancel()
		s.stuck, s.stuckCall = finished, name
		return fmt.Errorf("GoBGP %s did not return within %s", name, s.opts.CallTimeout)
	}
}
