package measure

import (
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// OpenReport opens out for writing, or standard output when out is empty.
func OpenReport(out string) (io.Writer, func(), error) {
	if out == "" {
		return os.Stdout, func() {}, nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return nil, nil, err
	}
	f, err := os.Create(out)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}

// Millis prints d in whole milliseconds: "12 ms".
func Millis(d time.Duration) string {
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}

// Failures sums up lost requests: "3 of 1200 (reset 2, timeout 1)".
type Failures struct {
	sent, lost int
	kinds      map[string]int
}

// Add counts the requests of st.
func (f *Failures) Add(st StreamStats) {
	if f.kinds == nil {
		f.kinds = map[string]int{}
	}
	f.sent += st.Sent
	f.lost += st.Lost
	for k, n := range st.Errors {
		f.kinds[k] += n
	}
}

// String prints the lost requests of the sent, and their errors by kind.
func (f Failures) String() string {
	s := fmt.Sprintf("%d of %d", f.lost, f.sent)
	if f.lost == 0 {
		return s
	}
	var ks []string
	for _, k := range slices.Sorted(maps.Keys(f.kinds)) {
		ks = append(ks, fmt.Sprintf("%s %d", k, f.kinds[k]))
	}
	return s + " (" + strings.Join(ks, ", ") + ")"
}

// Summary prints the median, 99th percentile and largest of ds, and
// how many there are.
func Summary(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none measured"
	}
	p50, p99, hi := Percentiles(ds)
	return fmt.Sprintf("p50 %s, p99 %s, max %s (%d)", Millis(p50), Millis(p99), Millis(hi), len(ds))
}

// Human prints a whole number of minutes or seconds: "2 min", "30 s".
func Human(d time.Duration) string {
	if d >= time.Minute && d%time.Minute == 0 {
		return fmt.Sprintf("%d min", d/time.Minute)
	}
	return fmt.Sprintf("%g s", d.Seconds())
}

// LastOr prints the last of ds, or "none".
func LastOr(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	return Millis(ds[len(ds)-1])
}

// StreamRow sums up the trials of one fault as a table row. node, when
// not empty, is the node the client's traffic should go to before the
// fault; trials where it went elsewhere are noted.
func StreamRow(path string, fault Fault, fam string, ts []StreamTrial, node string) string {
	var sent, lost, gaps, last, rlost, rgaps []time.Duration // counts as Durations, for Percentiles
	errs := map[string]int{}
	for _, t := range ts {
		sent = append(sent, time.Duration(t.Fault.Sent))
		lost = append(lost, time.Duration(t.Fault.Lost))
		gaps = append(gaps, t.Fault.LongestGap)
		last = append(last, t.Fault.LastLost)
		rlost = append(rlost, time.Duration(t.Restore.Lost))
		rgaps = append(rgaps, t.Restore.LongestGap)
		for k, n := range t.Fault.Errors {
			errs[k] += n
		}
		for k, n := range t.Restore.Errors {
			errs[k] += n
		}
	}
	count := func(ds []time.Duration) string {
		p50, _, hi := Percentiles(ds)
		return fmt.Sprintf("%d / %d", p50, hi)
	}
	gap := func(ds []time.Duration) string {
		p50, _, hi := Percentiles(ds)
		return fmt.Sprintf("%s / %s", Millis(p50), Millis(hi))
	}
	var kinds []string
	for _, k := range slices.Sorted(maps.Keys(errs)) {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, errs[k]))
	}
	elsewhere := 0
	for _, t := range ts {
		if node != "" && t.Via != node {
			elsewhere++
		}
	}
	if elsewhere > 0 {
		kinds = append(kinds, fmt.Sprintf("(in %d trials the client sent to another node than %s at the fault)", elsewhere, node))
	}
	p50sent, _, _ := Percentiles(sent)
	return fmt.Sprintf("| %s | %s | %s | %d | %d | %s | %s | %s | %s | %s | %s |", path, fault, fam, len(ts), p50sent,
		count(lost), gap(gaps), gap(last), count(rlost), gap(rgaps), strings.Join(kinds, ", "))
}

// Median is the middle of xs (the upper one of an even count), 0 for
// none. It sorts xs.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	return xs[len(xs)/2]
}
