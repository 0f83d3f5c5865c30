package measure

// This file reads the speakers' member counts that lab.WatchMembers
// samples (MembersBelow, LatestMembers).

import "github.com/ironlb/ironlb/e2e/lab"

// MembersBelow returns the readings of joined speakers that counted fewer
// than least members. Readings without an answer (a stopped or cut off
// speaker) and of 0 (a speaker that has not joined yet, or is leaving)
// tell nothing of what a running member sees and are skipped.
func MembersBelow(samples []lab.MemberSample, least int) []lab.MemberSample {
	var out []lab.MemberSample
	for _, s := range samples {
		if s.Err == nil && s.Members > 0 && s.Members < least {
			out = append(out, s)
		}
	}
	return out
}

// LatestMembers returns each node's latest reading that got an answer,
// by node.
func LatestMembers(samples []lab.MemberSample) map[string]lab.MemberSample {
	out := map[string]lab.MemberSample{}
	for _, s := range samples {
		if s.Err == nil && !s.At.Before(out[s.Node].At) {
			out[s.Node] = s
		}
	}
	return out
}
