package traffic

// This file is the client's request stream: an HTTP request on a new
// connection every few milliseconds, each with a short timeout, so that
// a measurement can say how many requests a fault cost and for how long
// none was answered (the analysis is e2e/measure's AnalyzeStream).

import (
	"context"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Request is one request of a stream and its outcome.
type Request struct {
	Sent time.Time
	// Took is how long it took to be answered, or to fail.
	Took time.Duration
	// Pod answered it; empty when it failed.
	Pod string
	// Err says why it failed.
	Err error
}

// Answered reports whether the request got its answer.
func (r Request) Answered() bool { return r.Err == nil && r.Pod != "" }

// Stream sends requests from a lab namespace to one address at a fixed
// interval, without waiting for earlier ones, until stopped.
type Stream struct {
	client   *http.Client
	target   netip.AddrPort
	interval time.Duration
	quit     chan struct{}
	done     chan struct{} // closed when the sender and every request have ended
	stop     sync.Once

	// mu guards reqs.
	mu   sync.Mutex
	reqs []Request
}

// StartStream starts sending, from namespace ns to target, a request on
// a new connection every interval, each given up after timeout, until
// ctx ends or Stop is called.
func StartStream(ctx context.Context, ns string, target netip.AddrPort, interval, timeout time.Duration) *Stream {
	s := &Stream{client: httpClient(ns, timeout), target: target, interval: interval, quit: make(chan struct{}), done: make(chan struct{})}
	go s.run(ctx)
	return s
}

func (s *Stream) run(ctx context.Context) {
	var inflight sync.WaitGroup
	defer func() {
		inflight.Wait()
		close(s.done)
	}()
	tick := time.NewTicker(s.interval)
	defer tick.Stop()
	for {
		s.mu.Lock()
		i := len(s.reqs)
		s.reqs = append(s.reqs, Request{Sent: time.Now()})
		s.mu.Unlock()
		inflight.Go(func() { s.send(i) })
		select {
		case <-ctx.Done():
			return
		case <-s.quit:
			return
		case <-tick.C:
		}
	}
}

// send makes request i and records its outcome.
func (s *Stream) send(i int) {
	start := time.Now()
	a, err := ask(s.client, s.target)
	took := time.Since(start)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs[i].Took, s.reqs[i].Pod, s.reqs[i].Err = took, a.Pod, err
}

// Requests returns a copy of the record so far, in the order sent; the
// latest requests may still be under way (neither answered nor failed).
func (s *Stream) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

// Finished returns the requests sent so far that have an outcome, up to
// the first that has none yet.
func (s *Stream) Finished() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range s.reqs {
		if r.Took == 0 && r.Err == nil && r.Pod == "" {
			return slices.Clone(s.reqs[:i])
		}
	}
	return slices.Clone(s.reqs)
}

// Stop sends no more requests, waits for those under way and returns
// the whole record. Safe to call twice.
func (s *Stream) Stop() []Request {
	s.stop.Do(func() { close(s.quit) })
	<-s.done
	return s.Requests()
}
