package speaker

import (
	"encoding/json"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ironlb/ironlb/internal/election"
	"github.com/ironlb/ironlb/internal/membership"
)

// claimMeta is what a speaker advertises to the others in its memberlist
// metadata. Releases before claim versions advertise nothing, which counts
// as version 1. Unknown fields are ignored, so later releases may add some.
type claimMeta struct {
	// Claim is the newest layer 2 claim version the speaker speaks.
	Claim int `json:"claim"`
}

// ClaimMeta is the memberlist metadata of a speaker whose newest claim
// version is v: none for version 1, so that such a speaker looks exactly
// like a release before versions.
func ClaimMeta(v election.ClaimVersion) []byte {
	if v.OrLatest() == election.ClaimV1 {
		return nil
	}
	b, _ := json.Marshal(claimMeta{Claim: int(v.OrLatest())})
	return b
}

// claimOf reads the newest claim version from a speaker's metadata. None,
// or metadata that cannot be read, counts as version 1, the oldest: ranking
// with a version a speaker does not speak would give addresses two owners.
func claimOf(meta []byte) election.ClaimVersion {
	var m claimMeta
	if len(meta) == 0 || json.Unmarshal(meta, &m) != nil || m.Claim < int(election.ClaimV1) {
		return election.ClaimV1
	}
	return election.ClaimVersion(min(m.Claim, 255))
}

// agreeClaim ranks with the oldest claim version any alive speaker speaks.
// A change of that version, once this speaker has joined, is a switch of
// ClaimSwitchDelay (see election.Ranking): the others hear of the change
// at slightly different moments, and meanwhile only the addresses whose
// owner both versions agree on are answered.
func (s *Speaker) agreeClaim(members []membership.Member, now time.Time) {
	if len(members) == 0 {
		// Not joined: this speaker owns nothing, and its first view of
		// the others sets the version without a switch.
		s.claimJoined = false
		return
	}
	if _, switching := s.ranking.Switching(); switching && !now.Before(s.switchUntil) {
		s.ranking.Finish()
		s.log.Info("layer 2 claim version switched", "version", s.ranking.Version())
	}
	newest := make([]election.ClaimVersion, 0, len(members)+1)
	older := []string{}
	own := s.opts.ClaimVersion.OrLatest()
	newest = append(newest, own)
	for _, m := range members {
		v := claimOf(m.Meta)
		newest = append(newest, v)
		if v < own {
			older = append(older, m.Name)
		}
	}
	agreed := election.Agreed(newest...)
	from := s.ranking.Version()
	if agreed == from {
		s.claimJoined = true
		return
	}
	s.ranking.Switch(agreed)
	if !s.claimJoined || s.opts.ClaimSwitchDelay <= 0 {
		s.ranking.Finish()
		s.claimJoined = true
		s.log.Info("layer 2 claim version", "version", agreed, "newestSpoken", own, "speakersOnOlderVersions", older)
		return
	}
	s.switchUntil = now.Add(s.opts.ClaimSwitchDelay)
	time.AfterFunc(s.opts.ClaimSwitchDelay, s.Trigger)
	s.log.Info("layer 2 claim version changing; addresses whose owner differs between the versions are answered by no node until the switch ends",
		"from", from, "to", agreed, "until", s.switchUntil, "newestSpoken", own, "speakersOnOlderVersions", older)
	s.nodeEvent(corev1.EventTypeNormal, "ClaimVersionChanged", "the speakers now rank layer 2 owners with claim version %d (was %d); addresses whose owner changes are answered by no node for %s", agreed, from, s.opts.ClaimSwitchDelay)
}
