package measure

// This file reads a failover from the prober's record: the handover from
// one MAC to another (AnalyzeFailover) and the probes left without an
// answer (Unanswered).

import (
	"bytes"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/ironlb/ironlb/e2e/traffic"
)

// Failover is what the client saw of the target moving from one owner
// to another.
type Failover struct {
	// From and To are the old and the new owner's MACs.
	From, To string
	// LastOld is the last answer, solicited or not, from the old owner.
	LastOld time.Time
	// FirstNew is the first answer, solicited or not, from the new owner
	// after LastOld.
	FirstNew time.Time
	// Gap is FirstNew - LastOld: how long the client heard of no owner.
	Gap time.Duration
	// Unanswered counts the probes sent after the one LastOld answered
	// and before the one FirstNew answered: none of them got an answer
	// from either owner.
	Unanswered int
	// Doubled counts the probes that both owners answered (solicited):
	// moments with two owners.
	Doubled int
}

// AnalyzeFailover finds in a prober's record the handover from oldMAC to
// newMAC: the client-side gap between the last answer from the old owner
// and the first answer from the new one after it. Answers from other
// MACs are ignored. It fails when the old owner never answered, or the
// new one never answered after the old one's last answer.
func AnalyzeFailover(probes []traffic.Probe, oldMAC, newMAC net.HardwareAddr) (Failover, error) {
	f := Failover{From: oldMAC.String(), To: newMAC.String()}
	iOld, iNew := -1, -1
	for i, pb := range probes {
		for _, r := range pb.Replies {
			if bytes.Equal(r.MAC, oldMAC) && (iOld < 0 || r.At.After(f.LastOld)) {
				iOld, f.LastOld = i, r.At
			}
		}
	}
	if iOld < 0 {
		return f, fmt.Errorf("no answer from the old owner %s in %d probes", oldMAC, len(probes))
	}
	for i, pb := range probes {
		for _, r := range pb.Replies {
			if bytes.Equal(r.MAC, newMAC) && r.At.After(f.LastOld) && (iNew < 0 || r.At.Before(f.FirstNew)) {
				iNew, f.FirstNew = i, r.At
			}
		}
	}
	if iNew < 0 {
		return f, fmt.Errorf("no answer from the new owner %s after the old owner %s's last at probe %d of %d", newMAC, oldMAC, iOld, len(probes))
	}
	f.Gap = f.FirstNew.Sub(f.LastOld)
	f.Unanswered = max(0, iNew-iOld-1)
	for _, pb := range probes {
		from := func(mac net.HardwareAddr) bool {
			return slices.ContainsFunc(pb.Replies, func(r traffic.Reply) bool { return r.Solicited && bytes.Equal(r.MAC, mac) })
		}
		if from(oldMAC) && from(newMAC) {
			f.Doubled++
		}
	}
	return f, nil
}

// Unanswered counts the probes that got no solicited answer within
// answerWithin of being sent (or were never sent). An answer is filed
// under the last probe sent before it, so answerWithin beyond the probe
// interval counts late answers as the next probe's.
func Unanswered(probes []traffic.Probe, answerWithin time.Duration) int {
	n := 0
	for _, pb := range probes {
		if !pb.AnsweredWithin(answerWithin) {
			n++
		}
	}
	return n
}
