package measure

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ironlb/ironlb/e2e/traffic"
)

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xa}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xb}
	macC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xc}
	t0   = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

// at is t0 plus tenths of a millisecond, to write records compactly.
func at(tenths int) time.Time { return t0.Add(time.Duration(tenths) * 100 * time.Microsecond) }

// answer and announce are a solicited and an unsolicited reply.
func answer(tenths int, mac net.HardwareAddr) traffic.Reply {
	return traffic.Reply{At: at(tenths), MAC: mac, Solicited: true}
}

func announce(tenths int, mac net.HardwareAddr) traffic.Reply {
	return traffic.Reply{At: at(tenths), MAC: mac}
}

func probe(tenths int, rs ...traffic.Reply) traffic.Probe {
	return traffic.Probe{Sent: at(tenths), Replies: rs}
}

func TestAnalyzeFailover(t *testing.T) {
	for _, tt := range []struct {
		name   string
		probes []traffic.Probe
		want   Failover
		err    string
	}{{
		name: "clean handover with two silent probes",
		probes: []traffic.Probe{
			probe(0, answer(5, macA)), probe(100, answer(105, macA)),
			probe(200), probe(300),
			probe(400, answer(406, macB)), probe(500, answer(505, macB)),
		},
		want: Failover{LastOld: at(105), FirstNew: at(406), Gap: 30100 * time.Microsecond, Unanswered: 2},
	}, {
		name: "the new owner's announcement counts as its first answer",
		probes: []traffic.Probe{
			probe(0, answer(5, macA)), probe(100, answer(105, macA)),
			probe(200, announce(250, macB)), probe(300, answer(305, macB)),
		},
		want: Failover{LastOld: at(105), FirstNew: at(250), Gap: 14500 * time.Microsecond},
	}, {
		name: "two owners for two probes",
		probes: []traffic.Probe{
			probe(0, answer(5, macA)),
			probe(100, answer(105, macA), answer(106, macB)),
			probe(200, answer(204, macB), answer(207, macA)),
			probe(300, answer(305, macB)),
		},
		want: Failover{LastOld: at(207), FirstNew: at(305), Gap: 9800 * time.Microsecond, Doubled: 2},
	}, {
		name: "another MAC in between is neither owner",
		probes: []traffic.Probe{
			probe(0, answer(5, macA)), probe(100, answer(105, macC)), probe(200, answer(205, macB)),
		},
		want: Failover{LastOld: at(5), FirstNew: at(205), Gap: 20 * time.Millisecond, Unanswered: 1},
	}, {
		name: "the old owner came back last",
		probes: []traffic.Probe{
			probe(0, answer(5, macA)), probe(100, answer(105, macB)), probe(200, answer(205, macA)),
		},
		err: "no answer from the new owner",
	}, {
		name:   "the old owner never answered",
		probes: []traffic.Probe{probe(0), probe(100, answer(105, macB))},
		err:    "no answer from the old owner",
	}, {
		name: "nothing at all",
		err:  "no answer from the old owner",
	}} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AnalyzeFailover(tt.probes, macA, macB)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("AnalyzeFailover = %+v, %v; want an error containing %q", got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.want.From, tt.want.To = macA.String(), macB.String()
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("AnalyzeFailover (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnanswered(t *testing.T) {
	probes := []traffic.Probe{
		probe(0, answer(5, macA)),                    // answered in 0.5ms
		probe(100, answer(140, macA)),                // answered in 4ms
		probe(200, answer(260, macA)),                // answered, but in 6ms
		probe(300, announce(301, macB)),              // only an announcement
		{Sent: at(400), Err: fmt.Errorf("not sent")}, // never sent
		probe(500), // silence
		probe(600, announce(601, macB), answer(602, macB)),
	}
	for _, tt := range []struct {
		within time.Duration
		want   int
	}{
		{time.Millisecond, 5},
		{5 * time.Millisecond, 4},
		{10 * time.Millisecond, 3},
	} {
		if got := Unanswered(probes, tt.within); got != tt.want {
			t.Errorf("Unanswered(within %s) = %d, want %d", tt.within, got, tt.want)
		}
	}
	if got := Unanswered(nil, time.Second); got != 0 {
		t.Errorf("Unanswered(nil) = %d", got)
	}
}

func TestPercentiles(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		var out []time.Duration
		for _, v := range n {
			out = append(out, time.Duration(v)*time.Millisecond)
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // descending: Percentiles must sort
	}
	two := ms(append(hundred, 1000, 2000)...)
	for _, tt := range []struct {
		name              string
		in                []time.Duration
		p50, p99, highest time.Duration
	}{
		{"none", nil, 0, 0, 0},
		{"one", ms(7), 7 * time.Millisecond, 7 * time.Millisecond, 7 * time.Millisecond},
		{"two", ms(9, 3), 3 * time.Millisecond, 9 * time.Millisecond, 9 * time.Millisecond},
		{"1 to 100", ms(hundred...), 50 * time.Millisecond, 99 * time.Millisecond, 100 * time.Millisecond},
		{"1 to 100 and two outliers", two, 51 * time.Millisecond, 1000 * time.Millisecond, 2000 * time.Millisecond},
	} {
		before := fmt.Sprint(tt.in)
		p50, p99, highest := Percentiles(tt.in)
		if p50 != tt.p50 || p99 != tt.p99 || highest != tt.highest {
			t.Errorf("%s: Percentiles = %s, %s, %s; want %s, %s, %s", tt.name, p50, p99, highest, tt.p50, tt.p99, tt.highest)
		}
		if fmt.Sprint(tt.in) != before {
			t.Errorf("%s: Percentiles reordered its input", tt.name)
		}
	}
}
