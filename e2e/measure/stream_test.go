package measure

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ironlb/ironlb/e2e/traffic"
)

func TestAnalyzeStream(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	timeout := fmt.Errorf("Get: %w", os.ErrDeadlineExceeded)
	refused := fmt.Errorf("dial: %w", syscall.ECONNREFUSED)
	// outcomes: one request every 10 ms from 0; "ok", "t" (timed out) or "r" (refused).
	stream := func(outcomes string) []traffic.Request {
		var out []traffic.Request
		for i, o := range strings.Split(outcomes, " ") {
			r := traffic.Request{Sent: at(10 * i), Took: time.Millisecond}
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
		reqs     []traffic.Request
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
	var reqs []traffic.Request
	for i := range 10 {
		reqs = append(reqs, traffic.Request{Sent: t0.Add(time.Duration(i) * time.Millisecond), Pod: "p"})
	}
	if !answeredSince(reqs, t0, 10) || answeredSince(reqs, t0, 11) || answeredSince(reqs, t0.Add(time.Millisecond), 10) {
		t.Error("answeredSince miscounts ten answered requests")
	}
	reqs[7].Pod, reqs[7].Err = "", errors.New("lost")
	if answeredSince(reqs, t0, 3) || !answeredSince(reqs, t0, 2) {
		t.Error("answeredSince ignores a lost request")
	}
}
