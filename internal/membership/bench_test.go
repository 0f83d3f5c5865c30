package membership

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// detectionRuns is how many failures each benchmark iteration measures.
const detectionRuns = 20

// BenchmarkFailureDetection measures, with the speaker's default timings,
// the time from a member's abrupt stop (no leave) until every other member
// has dropped it from Alive, over a 5-member cluster; the member then
// restarts and the next one fails. It reports the median, 90th percentile
// and maximum of detectionRuns failures per iteration. A measurement, not
// an assertion:
//
//	go test -run x -bench FailureDetection ./internal/membership/
func BenchmarkFailureDetection(b *testing.B) {
	names := []string{"node-a", "node-b", "node-c", "node-d", "node-e"}
	b.Run("mock/5", func(b *testing.B) {
		l := newMockLab(b, names...)
		startAll(l)
		measureDetection(b, l.all(), func(m *member) {
			l.stop(m.name, false)
		}, func(m *member) {
			l.start(m.name, Options{}, l.peers)
		})
	})
	b.Run("loopback-encrypted/5", func(b *testing.B) {
		var d directory
		var ms []*member
		key := testKey(1)
		for _, n := range names {
			m := newMember(n)
			startLoopback(b, &d, m, key, 0)
			ms = append(ms, m)
		}
		ports := map[string]int{}
		measureDetection(b, ms, func(m *member) {
			ports[m.name] = int(m.cluster().Addr().Port())
			m.stop(b, false)
		}, func(m *member) {
			// A restarted speaker comes back on its node's address and port.
			m.start(b, Options{BindAddr: loopback, Port: ports[m.name], Key: key, RejoinInterval: 250 * time.Millisecond}, d.peers)
		})
	})
}

func measureDetection(b *testing.B, ms []*member, crash, restart func(*member)) {
	var names []string
	for _, m := range ms {
		names = append(names, m.name)
	}
	waitViews(b, "joined", ms, names)
	var samples []time.Duration
	b.ResetTimer()
	for range b.N {
		for i := range detectionRuns {
			victim := ms[i%len(ms)]
			start := time.Now()
			crash(victim)
			for slices.ContainsFunc(ms, func(m *member) bool {
				c := m.cluster()
				return c != nil && slices.Contains(c.Alive(), victim.name)
			}) {
				if time.Since(start) > waitDeadline {
					b.Fatalf("%s not dropped by all within %v", victim.name, waitDeadline)
				}
				time.Sleep(time.Millisecond)
			}
			samples = append(samples, time.Since(start))
			restart(victim)
			waitViews(b, fmt.Sprintf("%s back", victim.name), ms, names)
		}
	}
	b.StopTimer()
	slices.Sort(samples)
	at := func(q float64) float64 {
		return float64(samples[int(q*float64(len(samples)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(at(0.5), "p50-ms")
	b.ReportMetric(at(0.9), "p90-ms")
	b.ReportMetric(at(1), "max-ms")
	b.ReportMetric(at(0), "min-ms")
}
