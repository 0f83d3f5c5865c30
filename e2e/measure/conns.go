package measure

// This file judges long-lived connections over a time span (OpenIn).

import (
	"time"

	"github.com/ironlb/ironlb/e2e/traffic"
)

// OpenIn returns the long-lived connections open at some moment from
// `from` until `to`, and those of them that broke then.
func OpenIn(conns []traffic.HeldConn, from, to time.Time) (open, broken []traffic.HeldConn) {
	for _, c := range conns {
		if !c.Opened.Before(to) || (!c.Held() && c.Broken.Before(from)) {
			continue
		}
		open = append(open, c)
		if !c.Held() && c.Broken.Before(to) {
			broken = append(broken, c)
		}
	}
	return open, broken
}
