package measure

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestReportFormats(t *testing.T) {
	ds := []time.Duration{30 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond}
	for _, tt := range []struct{ got, want string }{
		{Millis(1499 * time.Microsecond), "1 ms"},
		{Millis(0), "0 ms"},
		{Human(2 * time.Minute), "2 min"},
		{Human(90 * time.Second), "90 s"},
		{Human(1500 * time.Millisecond), "1.5 s"},
		{LastOr(nil), "none"},
		{LastOr(ds), "20 ms"},
		{Summary(nil), "none measured"},
		{Summary(ds), "p50 20 ms, p99 30 ms, max 30 ms (3)"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestFailures(t *testing.T) {
	var f Failures
	if got := f.String(); got != "0 of 0" {
		t.Errorf("empty = %q", got)
	}
	f.Add(StreamStats{Sent: 100, Lost: 2, Errors: map[string]int{"timeout": 1, "reset": 1}})
	f.Add(StreamStats{Sent: 50})
	f.Add(StreamStats{Sent: 50, Lost: 1, Errors: map[string]int{"reset": 1}})
	if got, want := f.String(), "3 of 200 (reset 2, timeout 1)"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
}

func TestMedian(t *testing.T) {
	for _, tt := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 3}} {
		if got := Median(tt.in); got != tt.want {
			t.Errorf("Median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestStreamRow(t *testing.T) {
	target := StreamTarget{From: "client", Target: netip.MustParseAddrPort("203.0.113.70:80")}
	ts := []StreamTrial{
		{StreamTarget: target, Via: "node1",
			Fault:   StreamStats{Sent: 300, Lost: 4, LongestGap: 60 * time.Millisecond, LastLost: 50 * time.Millisecond, Errors: map[string]int{"timeout": 4}},
			Restore: StreamStats{Sent: 200, Lost: 1, LongestGap: 20 * time.Millisecond, Errors: map[string]int{"reset": 1}}},
		{StreamTarget: target, Via: "node2",
			Fault:   StreamStats{Sent: 310, Lost: 2, LongestGap: 40 * time.Millisecond, LastLost: 30 * time.Millisecond, Errors: map[string]int{"timeout": 2}},
			Restore: StreamStats{Sent: 200, LongestGap: 10 * time.Millisecond}},
	}
	got := StreamRow("layer 2", FaultKill, "IPv4", ts, "node1")
	want := "| layer 2 | speaker SIGKILL | IPv4 | 2 | 300 | 2 / 4 | 40 ms / 60 ms | 30 ms / 50 ms | 0 / 1 | 10 ms / 20 ms | reset 1, timeout 6, (in 1 trials the client sent to another node than node1 at the fault) |"
	if got != want {
		t.Errorf("StreamRow =\n%s\nwant\n%s", got, want)
	}
}

func TestOpenReport(t *testing.T) {
	out := filepath.Join(t.TempDir(), "docs", "report.md")
	w, done, err := OpenReport(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("# title\n")); err != nil {
		t.Fatal(err)
	}
	done()
	if b, err := os.ReadFile(out); err != nil || string(b) != "# title\n" {
		t.Errorf("report file = %q, %v", b, err)
	}
}
