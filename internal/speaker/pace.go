package speaker

import "time"

// pacer spaces out a handoff whose cost grows with the number of Services
// (the whole frontend list to the dataplane, the whole BGP state to the
// BGP side) while changes keep coming: after a handoff that took d, the
// next may go no sooner than paceFactor × d later (at most maxPace), so
// that such handoffs use at most about a tenth of a CPU however many
// Services there are. A change after a quiet moment goes at once, and
// the changes that come meanwhile go together. On the lab, creating
// 10,000 Services cost each speaker 16 ms of CPU per Service when every
// sync handed everything on.
type pacer struct {
	// next is when the next handoff may go.
	next time.Time
}

const (
	paceFactor = 9
	maxPace    = time.Second
)

// wait is how long until the next handoff may go; 0 or less: now.
func (p *pacer) wait(now time.Time) time.Duration { return p.next.Sub(now) }

// done records a handoff that ran from start to end.
func (p *pacer) done(start, end time.Time) {
	p.next = end.Add(min(paceFactor*end.Sub(start), maxPace))
}
