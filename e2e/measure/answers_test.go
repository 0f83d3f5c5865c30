package measure

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ironlb/ironlb/e2e/lab"
	"github.com/ironlb/ironlb/e2e/traffic"
)

// record builds a prober's record from a script: one probe every 10 ms
// from t0, each answered by the MACs its string names ("a", "b", "c",
// "ab", "" for none; upper case for an unsolicited answer), 1 ms after
// it was sent.
func record(t0 time.Time, script ...string) []traffic.Probe {
	macs := map[rune]net.HardwareAddr{'a': macA, 'b': macB, 'c': macC}
	var out []traffic.Probe
	for i, s := range script {
		sent := t0.Add(time.Duration(i) * 10 * time.Millisecond)
		p := traffic.Probe{Sent: sent}
		for _, r := range s {
			lower := []rune(strings.ToLower(string(r)))[0]
			p.Replies = append(p.Replies, traffic.Reply{At: sent.Add(time.Millisecond), MAC: macs[lower], Solicited: r == lower})
		}
		out = append(out, p)
	}
	return out
}

func TestDualAnswers(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	for _, tt := range []struct {
		name   string
		script []string
		total  time.Duration
		spans  []Interval
	}{
		{"one owner throughout", []string{"a", "a", "a", "a"}, 0, nil},
		{"a clean handover", []string{"a", "a", "", "b", "b"}, 0, nil},
		{"a probe answered by two", []string{"a", "ab", "b"}, 10 * time.Millisecond, []Interval{{at(10), at(20)}}},
		{"a run of three merges", []string{"a", "ab", "ab", "abc", "b"}, 30 * time.Millisecond, []Interval{{at(10), at(40)}}},
		{"two runs stay apart", []string{"ab", "a", "ab", "ab", "b"}, 30 * time.Millisecond, []Interval{{at(0), at(10)}, {at(20), at(40)}}},
		{"the last probe lasts until its last answer", []string{"a", "ab"}, time.Millisecond, []Interval{{at(10), at(11)}}},
		// An announcement to everyone tells the client who owns the
		// address, but is not a second answer to the client's question.
		{"unsolicited answers do not count", []string{"aB", "Ab", "b"}, 0, nil},
		{"one MAC answering twice is one owner", []string{"aa", "a"}, 0, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			total, spans := DualAnswers(record(t0, tt.script...))
			if total != tt.total {
				t.Errorf("total %s, want %s", total, tt.total)
			}
			if diff := cmp.Diff(tt.spans, spans); diff != "" {
				t.Errorf("spans (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAnswersFrom(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ps := record(t0, "a", "ab", "B", "", "b", "A")
	got := AnswersFrom(ps, macB)
	want := Answers{Solicited: 2, Unsolicited: 1, First: t0.Add(11 * time.Millisecond), Last: t0.Add(41 * time.Millisecond)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("answers from b (-want +got):\n%s", diff)
	}
	if got.Total() != 3 {
		t.Errorf("Total() = %d, want 3", got.Total())
	}
	if got := AnswersFrom(ps, macC); got != (Answers{}) {
		t.Errorf("answers from c, which never answered: %+v", got)
	}
}

func TestRepliesBetween(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ps := record(t0, "a", "ab", "", "b")
	// A late answer from a, filed under the probe sent at +30ms.
	ps[3].Replies = append(ps[3].Replies, traffic.Reply{At: t0.Add(35 * time.Millisecond), MAC: macA, Solicited: true})
	// From +11ms (the answers to the second probe) until +35ms (a's late
	// answer excluded).
	got := RepliesBetween(ps, t0.Add(11*time.Millisecond), t0.Add(35*time.Millisecond))
	if len(got) != 2 || len(got[0].Replies) != 2 || len(got[1].Replies) != 1 || got[1].Replies[0].MAC.String() != macB.String() {
		t.Errorf("RepliesBetween: %+v", got)
	}
	if a := AnswersFrom(got, macA); a.Total() != 1 {
		t.Errorf("answers from a in the window: %+v, want the one at +11ms", a)
	}
	if n := len(ProbesBetween(ps, t0.Add(10*time.Millisecond), t0.Add(30*time.Millisecond))); n != 2 {
		t.Errorf("ProbesBetween +10ms and +30ms: %d probes, want 2", n)
	}
}

func TestMembersBelow(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	refused := errors.New("connection refused")
	samples := []lab.MemberSample{
		{Node: "n1", At: t0, Members: 3},
		{Node: "n2", At: t0, Members: 2},                      // one away: fine for least 2
		{Node: "n3", At: t0, Err: refused},                    // stopped: no reading
		{Node: "n3", At: t0.Add(time.Second)},                 // started, not joined
		{Node: "n3", At: t0.Add(2 * time.Second), Members: 1}, // alone: split
		{Node: "n1", At: t0.Add(2 * time.Second), Members: 3},
	}
	got := MembersBelow(samples, 2)
	if len(got) != 1 || got[0].Node != "n3" || got[0].Members != 1 {
		t.Errorf("MembersBelow(2) = %+v, want n3's reading of 1", got)
	}
	if got := MembersBelow(samples, 3); len(got) != 2 {
		t.Errorf("MembersBelow(3) = %+v, want n2's 2 and n3's 1", got)
	}
	latest := LatestMembers(samples)
	if latest["n3"].Members != 1 || latest["n1"].At != t0.Add(2*time.Second) || len(latest) != 3 {
		t.Errorf("LatestMembers = %+v", latest)
	}
}
