package measure

// This file reads who answered the client's prober when: two nodes at
// once (DualAnswers), one node's answers (AnswersFrom), and the probes
// of a time span (RepliesBetween, ProbesBetween).

import (
	"bytes"
	"net"
	"slices"
	"time"

	"github.com/ironlb/ironlb/e2e/traffic"
)

// Interval is a stretch of time, From included, To not.
type Interval struct{ From, To time.Time }

// Duration is how long the interval lasts.
func (i Interval) Duration() time.Duration { return i.To.Sub(i.From) }

// solicitedMACs returns the distinct MACs of a probe's solicited answers.
func solicitedMACs(p traffic.Probe) []string {
	var out []string
	for _, r := range p.Replies {
		if m := r.MAC.String(); r.Solicited && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// DualAnswers finds the stretches of a prober's record during which the
// client had two owners: probes that got solicited answers from two or
// more different MACs. Each such probe stands for the time until the next
// probe was sent (the last one of the record, until its last answer);
// stretches that touch are merged. It returns them in order, and their
// total length.
func DualAnswers(probes []traffic.Probe) (time.Duration, []Interval) {
	var spans []Interval
	for i, p := range probes {
		if len(solicitedMACs(p)) < 2 {
			continue
		}
		end := p.Sent
		if i+1 < len(probes) {
			end = probes[i+1].Sent
		} else {
			for _, r := range p.Replies {
				if r.At.After(end) {
					end = r.At
				}
			}
		}
		if n := len(spans); n > 0 && !spans[n-1].To.Before(p.Sent) {
			if end.After(spans[n-1].To) {
				spans[n-1].To = end
			}
			continue
		}
		spans = append(spans, Interval{From: p.Sent, To: end})
	}
	var total time.Duration
	for _, s := range spans {
		total += s.Duration()
	}
	return total, spans
}

// Answers counts what one MAC answered in a prober's record.
type Answers struct {
	// Solicited and Unsolicited count its answers of each kind (see Reply).
	Solicited, Unsolicited int
	// First and Last are when the first and the last of them were read;
	// zero when there was none.
	First, Last time.Time
}

// Total is how many answers there were, of either kind.
func (a Answers) Total() int { return a.Solicited + a.Unsolicited }

// AnswersFrom counts the answers, solicited or not, that carry mac.
func AnswersFrom(probes []traffic.Probe, mac net.HardwareAddr) Answers {
	var a Answers
	for _, p := range probes {
		for _, r := range p.Replies {
			if !bytes.Equal(r.MAC, mac) {
				continue
			}
			if r.Solicited {
				a.Solicited++
			} else {
				a.Unsolicited++
			}
			if a.First.IsZero() || r.At.Before(a.First) {
				a.First = r.At
			}
			if r.At.After(a.Last) {
				a.Last = r.At
			}
		}
	}
	return a
}

// RepliesBetween keeps, of a prober's record, the answers read from
// `from` until `to` (From included, To not), each under its probe; probes
// left without an answer are dropped. It judges answers by when they
// came, whenever their probe was sent.
func RepliesBetween(probes []traffic.Probe, from, to time.Time) []traffic.Probe {
	var out []traffic.Probe
	for _, p := range probes {
		var rs []traffic.Reply
		for _, r := range p.Replies {
			if !r.At.Before(from) && r.At.Before(to) {
				rs = append(rs, r)
			}
		}
		if len(rs) > 0 {
			p.Replies = rs
			out = append(out, p)
		}
	}
	return out
}

// ProbesBetween returns the probes sent from `from` until `to` (From
// included, To not), with all their answers.
func ProbesBetween(probes []traffic.Probe, from, to time.Time) []traffic.Probe {
	var out []traffic.Probe
	for _, p := range probes {
		if !p.Sent.Before(from) && p.Sent.Before(to) {
			out = append(out, p)
		}
	}
	return out
}
