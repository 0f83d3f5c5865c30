package measure

// This file is the statistics the reports print (Percentiles).

import (
	"slices"
	"time"
)

// Percentiles returns the median, the 99th percentile (nearest rank) and
// the largest of ds; zeros for none.
func Percentiles(ds []time.Duration) (p50, p99, highest time.Duration) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	s := slices.Sorted(slices.Values(ds))
	rank := func(p int) time.Duration { return s[(p*len(s)+99)/100-1] }
	return rank(50), rank(99), s[len(s)-1]
}
