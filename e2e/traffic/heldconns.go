package traffic

// This file holds long-lived connections through a Service (HoldConns)
// and records, for each, whether and when it broke.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/ironlb/ironlb/e2e/lab"
)

// HoldInterval is how often a held connection exchanges a request and
// its answer.
const HoldInterval = 100 * time.Millisecond

// HeldConn is one long-lived connection and what became of it.
type HeldConn struct {
	Target netip.AddrPort
	// Local is the client's end of it.
	Local netip.AddrPort
	// Opened is when it was dialled.
	Opened time.Time
	// Pod answered its first exchange; every later one must come from it.
	Pod string
	// Exchanges counts the requests answered on it.
	Exchanges int
	// Broken is when an exchange failed (zero while it holds), Err why:
	// a reset, the server closing it, an answer from another pod, or no
	// answer within the holder's timeout.
	Broken time.Time
	Err    error
}

// Held reports whether the connection never broke.
func (c HeldConn) Held() bool { return c.Broken.IsZero() }

// Holder keeps connections open to an address, each exchanging a small
// HTTP request and its answer (keep-alive) every interval until it
// breaks or the holder stops. A broken connection is not dialled again:
// the record tells which broke, when and why.
type Holder struct {
	interval, timeout time.Duration
	quit              chan struct{}
	wg                sync.WaitGroup
	stop              sync.Once

	// mu guards conns.
	mu    sync.Mutex
	conns []HeldConn
}

// HoldConns opens k connections from namespace ns to target, a lab pod's
// HTTP server behind a Service, and checks each with a first exchange; it
// fails, closing what it opened, if any cannot be opened or answered
// within timeout. Then each exchanges a request every interval (0 means
// HoldInterval), an exchange that takes longer than timeout breaking it,
// until ctx ends or Stop is called.
func HoldConns(ctx context.Context, ns string, target netip.AddrPort, k int, interval, timeout time.Duration) (*Holder, error) {
	if interval <= 0 {
		interval = HoldInterval
	}
	h := &Holder{interval: interval, timeout: timeout, quit: make(chan struct{})}
	type opened struct {
		c  net.Conn
		rd *bufio.Reader
	}
	var open []opened
	for range k {
		dctx, cancel := context.WithTimeout(ctx, timeout)
		start := time.Now()
		c, err := lab.DialFrom(dctx, ns, "tcp", target.String())
		cancel()
		if err != nil {
			for _, o := range open {
				o.c.Close()
			}
			return nil, fmt.Errorf("holding a connection from %s to %s: %w", ns, target, err)
		}
		hc := HeldConn{Target: target, Opened: start}
		if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
			hc.Local = a.AddrPort()
		}
		rd := bufio.NewReader(c)
		pod, err := exchange(c, rd, target, timeout)
		if err != nil {
			c.Close()
			for _, o := range open {
				o.c.Close()
			}
			return nil, fmt.Errorf("first exchange on a connection from %s to %s: %w", ns, target, err)
		}
		hc.Pod, hc.Exchanges = pod, 1
		h.conns = append(h.conns, hc)
		open = append(open, opened{c, rd})
	}
	for i, o := range open {
		h.wg.Go(func() { h.hold(ctx, i, o.c, o.rd) })
	}
	return h, nil
}

// hold runs connection i until it breaks, ctx ends or the holder stops.
func (h *Holder) hold(ctx context.Context, i int, c net.Conn, rd *bufio.Reader) {
	defer c.Close()
	tick := time.NewTicker(h.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.quit:
			return
		case <-tick.C:
		}
		h.mu.Lock()
		hc := h.conns[i]
		h.mu.Unlock()
		pod, err := exchange(c, rd, hc.Target, h.timeout)
		if err == nil && pod != hc.Pod {
			err = fmt.Errorf("answered by %s, but the connection's first answer came from %s", pod, hc.Pod)
		}
		h.mu.Lock()
		if err != nil {
			h.conns[i].Broken, h.conns[i].Err = time.Now(), err
		} else {
			h.conns[i].Exchanges++
		}
		h.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// exchange sends one keep-alive request on c and reads its answer,
// returning the pod that gave it.
func exchange(c net.Conn, rd *bufio.Reader, target netip.AddrPort, timeout time.Duration) (string, error) {
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	if _, err := fmt.Fprintf(c, "GET /held HTTP/1.1\r\nHost: %s\r\n\r\n", target); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(rd, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK || resp.Close {
		return "", fmt.Errorf("answered %s (close %t)", resp.Status, resp.Close)
	}
	pod := resp.Header.Get(lab.PodHeader)
	if pod == "" {
		return "", errors.New("an answer without " + lab.PodHeader)
	}
	return pod, nil
}

// Conns returns a copy of the record so far.
func (h *Holder) Conns() []HeldConn {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.conns)
}

// Stop closes every connection and returns the record; closing is not
// breaking. Safe to call twice.
func (h *Holder) Stop() []HeldConn {
	h.stop.Do(func() { close(h.quit) })
	h.wg.Wait()
	return h.Conns()
}
