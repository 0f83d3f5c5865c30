package lab

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"
)

// BenchmarkSpeakerRestart measures what the suite pays each time it
// restarts a speaker: a graceful stop, then a start until /readyz
// answers, on a lab of two nodes run with the runtime of RuntimeEnv
// (images by default; IRONLB_LAB_RUNTIME=binary for the binaries). It
// reports the start alone as start-ms/op.
func BenchmarkSpeakerRestart(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("the lab needs root")
	}
	bin, err := BinariesIn(repoBin())
	if err != nil {
		b.Skip(err)
	}
	rt, err := ParseRuntime(os.Getenv(RuntimeEnv))
	if err != nil {
		b.Fatal(err)
	}
	l, err := Start(context.Background(), Options{Name: labName(), Nodes: 2, Dir: b.TempDir(), Bin: bin, Log: slog.Default(), Runtime: rt})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	node := l.Plan.Nodes[1].Name
	if _, err := l.WaitSpeakerReady(node); err != nil {
		b.Fatal(err)
	}
	var starting time.Duration
	b.ResetTimer()
	for range b.N {
		if err := l.StopSpeaker(node); err != nil {
			b.Fatal(err)
		}
		t := time.Now()
		if err := l.StartSpeaker(node); err != nil {
			b.Fatal(err)
		}
		if _, err := l.WaitSpeakerReady(node); err != nil {
			b.Fatal(err)
		}
		starting += time.Since(t)
	}
	b.ReportMetric(float64(starting.Milliseconds())/float64(b.N), "start-ms/op")
}
