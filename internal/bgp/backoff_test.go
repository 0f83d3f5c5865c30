package bgp

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	const base, step, most = 5 * time.Second, time.Minute, 2 * time.Minute
	for _, c := range []struct {
		down, want time.Duration
	}{
		{0, base},
		{59 * time.Second, base},
		{time.Minute, 10 * time.Second},
		{2*time.Minute + time.Second, 20 * time.Second},
		{4 * time.Minute, 80 * time.Second},
		{5 * time.Minute, most},
		{24 * time.Hour, most},
	} {
		if got := backoff(base, step, most, c.down); got != c.want {
			t.Errorf("down for %s: retry every %s, want %s", c.down, got, c.want)
		}
	}
}
