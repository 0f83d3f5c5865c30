package traffic

// This file is the clients of the lab pods' HTTP servers (their server
// is e2e/lab's podserver.go): requests from the lab's namespaces one at
// a time (Ask), in a steady stream (StartStream, see stream.go), or as
// fast as they can (Bulk, ConnRate).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ironlb/ironlb/e2e/lab"
)

// httpClient makes requests from inside namespace ns, each on a new
// connection.
func httpClient(ns string, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return lab.DialFrom(ctx, ns, network, addr)
		},
	}}
}

// resettingClient is httpClient whose connections end with a reset
// (SO_LINGER 0), as load generators close them: neither end keeps the
// connection in TIME_WAIT, so thousands of connections a second do not
// run through the client's ports and meet their own earlier ones still
// in the server's TIME_WAIT.
func resettingClient(ns string, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := lab.DialFrom(ctx, ns, network, addr)
			if tc, ok := c.(*net.TCPConn); ok {
				err = errors.Join(err, tc.SetLinger(0))
			}
			return c, err
		},
	}}
}

// Ask makes one HTTP request from namespace ns to target, on a new
// connection, and returns the lab pod's answer.
func Ask(ns string, target netip.AddrPort, timeout time.Duration) (lab.Answer, error) {
	return ask(httpClient(ns, timeout), target)
}

func ask(c *http.Client, target netip.AddrPort) (lab.Answer, error) {
	resp, err := c.Get("http://" + target.String() + "/")
	if err != nil {
		return lab.Answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return lab.Answer{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return lab.Answer{}, fmt.Errorf("%s: %s: %s", target, resp.Status, b)
	}
	return lab.ParseAnswer(string(b))
}

// ErrorKind sorts a failed request: "refused" (a TCP reset to the SYN),
// "reset" (later), "timeout", "unreachable" (ICMP), or "other".
func ErrorKind(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return ""
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "reset"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "unreachable"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "other"
}

// Bulk downloads n bytes from a lab pod through target, from namespace
// ns, on a new connection, and returns the rate in bytes per second and
// the pod that sent them.
func Bulk(ns string, target netip.AddrPort, n int64, timeout time.Duration) (float64, string, error) {
	c := httpClient(ns, timeout)
	start := time.Now()
	resp, err := c.Get(fmt.Sprintf("http://%s/bytes?n=%d", target, n))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	got, err := io.Copy(io.Discard, resp.Body)
	took := time.Since(start)
	if err == nil && got != n {
		err = fmt.Errorf("%s: %d bytes of %d", target, got, n)
	}
	if err != nil {
		return 0, "", err
	}
	return float64(n) / took.Seconds(), resp.Header.Get(lab.PodHeader), nil
}

// ConnRate makes requests from namespace ns to target, each on a new
// connection that the client resets once answered (see
// resettingClient), with workers at once, for d, and returns how many
// were answered per second, how many failed and why the first did; it
// fails only when none was answered.
func ConnRate(ns string, target netip.AddrPort, workers int, d time.Duration) (rate float64, failures int, firstErr error) {
	c := resettingClient(ns, 2*time.Second)
	var ok, failed atomic.Int64
	var once sync.Once
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if _, err := ask(c, target); err != nil {
					failed.Add(1)
					once.Do(func() { firstErr = err })
					continue
				}
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if ok.Load() == 0 {
		return 0, int(failed.Load()), fmt.Errorf("no request to %s answered: %w", target, firstErr)
	}
	return float64(ok.Load()) / time.Since(start).Seconds(), int(failed.Load()), firstErr
}
