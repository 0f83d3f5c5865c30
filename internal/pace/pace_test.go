package pace

import (
	"testing"
	"time"
)

// TestPacer: a run after a quiet moment goes at once; the next waits
// nine times as long as the last took, at most a second.
func TestPacer(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	var p Pacer
	if w := p.Wait(t0); w > 0 {
		t.Fatalf("the first run waits %v", w)
	}
	p.Done(t0, t0.Add(2*time.Millisecond))
	if w := p.Wait(t0.Add(5 * time.Millisecond)); w != 15*time.Millisecond {
		t.Errorf("3 ms after a 2 ms run: wait %v, want 15ms", w)
	}
	if w := p.Wait(t0.Add(time.Second)); w > 0 {
		t.Errorf("a second later: wait %v, want none", w)
	}
	p.Done(t0, t0.Add(500*time.Millisecond))
	if w := p.Wait(t0.Add(500 * time.Millisecond)); w != Max {
		t.Errorf("after a 500 ms run: wait %v, want %v", w, Max)
	}
}

func TestPause(t *testing.T) {
	for _, c := range []struct{ took, want time.Duration }{
		{0, 0},
		{time.Millisecond, 9 * time.Millisecond},
		{100 * time.Millisecond, 900 * time.Millisecond},
		{200 * time.Millisecond, time.Second},
	} {
		if got := Pause(c.took); got != c.want {
			t.Errorf("Pause(%v) = %v, want %v", c.took, got, c.want)
		}
	}
}
