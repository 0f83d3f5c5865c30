package measure

// This file sums up a request stream over a time span (AnalyzeStream).

import (
	"time"

	"github.com/ironlb/ironlb/e2e/traffic"
)

// StreamStats sum up what a stream's requests saw in a window of time.
type StreamStats struct {
	// Sent and Lost count the requests sent in the window, and those of
	// them that failed (timed out, refused, reset).
	Sent, Lost int
	// LongestGap is the longest time between the sending of two answered
	// requests with only lost ones between them, where the lost ones
	// were sent in the window; the interval when none was lost.
	LongestGap time.Duration
	// LastLost is how long after `from` the last lost request of the
	// window was sent: how long the fault cost requests, also when only
	// some of them (one ECMP path of several) were lost; 0 when none was.
	LastLost time.Duration
	// Errors counts the lost requests by ErrorKind.
	Errors map[string]int
}

// AnalyzeStream sums up the requests sent from `from` until `to`. reqs
// are a stream's requests in the order sent.
func AnalyzeStream(reqs []traffic.Request, from, to time.Time) StreamStats {
	st := StreamStats{Errors: map[string]int{}}
	var lastOK time.Time // the last answered request's sending
	lostSince := false   // a request of the window was lost since lastOK
	gap := func(t time.Time) {
		if lostSince && !lastOK.IsZero() {
			st.LongestGap = max(st.LongestGap, t.Sub(lastOK))
		}
	}
	var prev time.Time
	for _, r := range reqs {
		in := !r.Sent.Before(from) && r.Sent.Before(to)
		if in {
			st.Sent++
			if !prev.IsZero() {
				st.LongestGap = max(st.LongestGap, r.Sent.Sub(prev))
			}
			prev = r.Sent
		}
		if r.Answered() {
			gap(r.Sent)
			lastOK, lostSince = r.Sent, false
			continue
		}
		if in {
			st.Lost++
			st.Errors[traffic.ErrorKind(r.Err)]++
			st.LastLost = r.Sent.Sub(from)
			lostSince = true
		}
	}
	// Lost until the end, never answered again: the gap runs to `to`.
	gap(to)
	return st
}
