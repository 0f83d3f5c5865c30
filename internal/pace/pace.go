// Package pace spaces out work whose cost grows with the size of the
// cluster (a handoff of the whole frontend list, an nft run that reads
// the whole table back) while changes keep coming: after a run that took
// d, the next waits Factor × d (at most Max), so that such work uses at
// most about a tenth of a CPU however many Services there are. Work after
// a quiet moment goes at once, and the changes that come meanwhile go
// together. On the lab, three speakers creating 10,000 Services with
// every change handed on at once took most of a small machine's CPU and
// slowed the API server that was creating them.
package pace

import "time"

const (
	// Factor is how many times as long as the last run the next waits.
	Factor = 9
	// Max bounds the wait.
	Max = time.Second
)

// Pause is the wait after a run that took took, while changes keep
// coming.
func Pause(took time.Duration) time.Duration { return min(Factor*took, Max) }

// Pacer remembers when the next run may go. The zero Pacer lets the
// first run go at once.
type Pacer struct {
	next time.Time
}

// Wait is how long until the next run may go; 0 or less: now.
func (p *Pacer) Wait(now time.Time) time.Duration { return p.next.Sub(now) }

// Done records a run from start to end.
func (p *Pacer) Done(start, end time.Time) { p.next = end.Add(Pause(end.Sub(start))) }
