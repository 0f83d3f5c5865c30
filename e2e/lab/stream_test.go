package lab

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestAnalyzeStream(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	timeout := fmt.Errorf("Get: %w", os.ErrDeadlineExceeded)
	refused := fmt.Errorf("dial: %w", syscall.ECONNREFUSED)
	// outcomes: one request every 10 ms from 0; "ok", "t" (timed out) or "r" (refused).
	stream := func(outcomes string) []Request {
		var out []Request
		for i, o := range strings.Split(outcomes, " ") {
			r := Request{Sent: at(10 * i), Took: time.Millisecond}
			switch o {
			case "ok":
				r.Pod = "web-0"
			case "t":
				r.Err = timeout
			case "r":
				r.Err = refused
			}
			out = append(out, r)
		}
		return out
	}
	for _, tt := range []struct {
		name     string
		reqs     []Request
		from, to time.Time
		want     StreamStats
	}{
		{"all answered", stream("ok ok ok ok"), at(0), at(40), StreamStats{Sent: 4, LongestGap: 10 * time.Millisecond, Errors: map[string]int{}}},
		{"a run lost", stream("ok ok t t t ok ok"), at(0), at(70), StreamStats{Sent: 7, Lost: 3, LongestGap: 40 * time.Millisecond, LastLost: 40 * time.Millisecond, Errors: map[string]int{"timeout": 3}}},
		{"the longer of two runs", stream("ok t ok r r ok"), at(0), at(60), StreamStats{Sent: 6, Lost: 3, LongestGap: 30 * time.Millisecond, LastLost: 40 * time.Millisecond, Errors: map[string]int{"timeout": 1, "refused": 2}}},
		// The window starts in the middle of a run: the gap runs from the
		// last answer before it; requests outside it are not counted.
		{"window inside a run", stream("ok t t t ok ok"), at(20), at(50), StreamStats{Sent: 3, Lost: 2, LongestGap: 40 * time.Millisecond, LastLost: 10 * time.Millisecond, Errors: map[string]int{"timeout": 2}}},
		// Never answered again: the gap runs to the window's end.
		{"lost to the end", stream("ok ok t t"), at(0), at(100), StreamStats{Sent: 4, Lost: 2, LongestGap: 90 * time.Millisecond, LastLost: 30 * time.Millisecond, Errors: map[string]int{"timeout": 2}}},
		{"empty window", stream("ok ok"), at(100), at(200), StreamStats{Errors: map[string]int{}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, AnalyzeStream(tt.reqs, tt.from, tt.to)); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestAnsweredSince(t *testing.T) {
	t0 := time.Now()
	var reqs []Request
	for i := range 10 {
		reqs = append(reqs, Request{Sent: t0.Add(time.Duration(i) * time.Millisecond), Pod: "p"})
	}
	if !answeredSince(reqs, t0, 10) || answeredSince(reqs, t0, 11) || answeredSince(reqs, t0.Add(time.Millisecond), 10) {
		t.Error("answeredSince miscounts ten answered requests")
	}
	reqs[7].Pod, reqs[7].Err = "", errors.New("lost")
	if answeredSince(reqs, t0, 3) || !answeredSince(reqs, t0, 2) {
		t.Error("answeredSince ignores a lost request")
	}
}

func TestParseAnswer(t *testing.T) {
	for body, want := range map[string]Answer{
		"pod=web-0 client=198.51.100.100:41234\n":       {Pod: "web-0", Client: netip.MustParseAddrPort("198.51.100.100:41234")},
		"pod=web-1 client=[2001:db8:5100::11]:8000\n":   {Pod: "web-1", Client: netip.MustParseAddrPort("[2001:db8:5100::11]:8000")},
		"pod=web-2 client=[::ffff:198.51.100.3]:1234\n": {Pod: "web-2", Client: netip.MustParseAddrPort("198.51.100.3:1234")},
	} {
		got, err := ParseAnswer(body)
		if err != nil || got != want {
			t.Errorf("ParseAnswer(%q) = %+v, %v; want %+v", body, got, err, want)
		}
	}
	for _, body := range []string{"", "hello", "pod=x", "pod=x client=nowhere", "404 page not found"} {
		if a, err := ParseAnswer(body); err == nil {
			t.Errorf("ParseAnswer(%q) = %+v, want an error", body, a)
		}
	}
}

func TestPodHandler(t *testing.T) {
	srv := httptest.NewServer(podHandler("web-0"))
	defer srv.Close()
	target := netip.MustParseAddrPort(strings.TrimPrefix(srv.URL, "http://"))
	a, err := ask(http.DefaultClient, target)
	if err != nil || a.Pod != "web-0" || a.Client.Addr() != target.Addr() {
		t.Errorf("GET / = %+v, %v; want web-0 seeing %s", a, err, target.Addr())
	}
	resp, err := http.Get(srv.URL + "/bytes?n=100000")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n := 0
	buf := make([]byte, 4096)
	for {
		m, err := resp.Body.Read(buf)
		for _, b := range buf[:m] {
			if b != 0 {
				t.Fatal("/bytes sent a byte that is not zero")
			}
		}
		n += m
		if err != nil {
			break
		}
	}
	if n != 100000 || resp.ContentLength != 100000 || resp.Header.Get(PodHeader) != "web-0" {
		t.Errorf("/bytes?n=100000: %d bytes, Content-Length %d, pod %q", n, resp.ContentLength, resp.Header.Get(PodHeader))
	}
	for _, q := range []string{"", "?n=-1", "?n=x", fmt.Sprintf("?n=%d", int64(maxBulk)+1)} {
		resp, err := http.Get(srv.URL + "/bytes" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("/bytes%s: %s, want 400", q, resp.Status)
		}
	}
}

func TestErrorKind(t *testing.T) {
	for err, want := range map[error]string{
		nil: "",
		fmt.Errorf("dial: %w", syscall.ECONNREFUSED):  "refused",
		fmt.Errorf("read: %w", syscall.ECONNRESET):    "reset",
		fmt.Errorf("get: %w", os.ErrDeadlineExceeded): "timeout",
		fmt.Errorf("dial: %w", syscall.EHOSTUNREACH):  "unreachable",
		errors.New("something else"):                  "other",
	} {
		if got := ErrorKind(err); got != want {
			t.Errorf("ErrorKind(%v) = %q, want %q", err, got, want)
		}
	}
}
