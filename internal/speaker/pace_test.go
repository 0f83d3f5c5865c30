package speaker

import (
	"testing"
	"time"
)

// TestPacer: a handoff after a quiet moment goes at once; the next waits
// nine times as long as the last took, at most a second.
func TestPacer(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	var p pacer
	if w := p.wait(t0); w > 0 {
		t.Fatalf("the first handoff waits %v", w)
	}
	p.done(t0, t0.Add(2*time.Millisecond))
	if w := p.wait(t0.Add(5 * time.Millisecond)); w != 15*time.Millisecond {
		t.Errorf("3 ms after a 2 ms handoff: wait %v, want 15ms", w)
	}
	if w := p.wait(t0.Add(time.Second)); w > 0 {
		t.Errorf("a second later: wait %v, want none", w)
	}
	p.done(t0, t0.Add(500*time.Millisecond))
	if w := p.wait(t0.Add(500 * time.Millisecond)); w != maxPace {
		t.Errorf("after a 500 ms handoff: wait %v, want %v", w, maxPace)
	}
}
