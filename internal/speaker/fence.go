package speaker

import (
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ironlb/ironlb/internal/election"
)

// updateMembers tells the ranking who joined and who left, and which
// claim version they agree on.
func (s *Speaker) updateMembers(now time.Time) {
	members := s.opts.Members.Members()
	alive := make([]string, 0, len(members))
	for _, m := range members {
		alive = append(alive, m.Name)
	}
	slices.Sort(alive)
	lost := false
	if !slices.Equal(alive, s.lastAlive) {
		for _, n := range s.lastAlive {
			if _, ok := slices.BinarySearch(alive, n); !ok {
				s.ranking.NodeDown(n)
				lost = true
			}
		}
		for _, n := range alive {
			s.ranking.NodeUp(n)
		}
		s.log.Info("speakers alive", "count", len(alive), "members", strings.Join(alive, ","))
		s.lastAlive = alive
	}
	s.agreeClaim(members, now)
	s.fence(alive, lost, now)
}

// Reacher is implemented by Members that can tell at once which members
// answer (membership.Cluster.Reachable).
type Reacher interface {
	// Reachable returns this speaker and the members, alive or gone, that
	// answered a ping just now; it may stop waiting once enough have.
	Reachable(enough int) []string
}

// Fencing's timings (variables for tests): how often a speaker that could
// not reach some alive members tries them again, and how long a fenced
// speaker's quorum must last before it answers again when it does not see
// every known speaker.
var (
	fenceRecheck = 100 * time.Millisecond
	fenceSettle  = 2 * time.Second
)

// fence decides whether this speaker may answer: only while the alive
// members are a quorum of the known speakers (see Options.Known).
//
// memberlist's view lags: it declares the others dead one at a time, so a
// speaker cut off from all of them first sees itself with a majority (all
// but the first declared dead) and would take over addresses that the
// others still answer for; and a speaker coming back from a partition
// spreads its stale news of the others' deaths, which they take for true
// until they refute it. So when the alive set has just lost a member, and
// as long as some alive member did not answer, the members are pinged
// (Reacher), and the quorum counts those that answer, alive in memberlist
// or not.
//
// A speaker coming back from a partition learns of the others one at a
// time too, so it may see a majority before it sees the owners of the
// addresses it would then take. A fenced speaker therefore answers again
// when it sees every known speaker, or once its quorum has lasted as long
// as it was fenced, at most fenceSettle: a speaker fenced for a moment (a
// false death refuted at once) answers again at once.
func (s *Speaker) fence(alive []string, lost bool, now time.Time) {
	if s.opts.Known == nil || len(alive) == 0 {
		// Not joined yet (or memberlist restarting): nothing is owned,
		// so there is nothing to fence.
		return
	}
	known := s.opts.Known()
	slices.Sort(known)
	known = slices.Compact(known)
	counted, pinged := alive, false
	if r, ok := s.opts.Members.(Reacher); ok && (lost || s.unreachable) {
		// A strict majority settles it; short of one, every answer
		// counts (an even split's tie-break).
		counted, pinged = r.Reachable(len(mergeNames(alive, known))/2+1), true
	}
	ok, why := election.Quorum(counted, known)
	// Some alive members did not answer, and that is what fences this
	// speaker: ask them again shortly (memberlist may never declare them
	// dead, if they are only cut off from this speaker).
	s.unreachable = pinged && !ok && slices.ContainsFunc(alive, func(n string) bool { return !slices.Contains(counted, n) })
	if pinged && !ok {
		why += " (counting the speakers that answered a ping)"
		s.log.Info("pinged the speakers after a loss: no quorum among those that answered", "alive", strings.Join(alive, ","), "answered", strings.Join(counted, ","))
	}
	if s.unreachable {
		time.AfterFunc(fenceRecheck, s.Trigger)
	}
	switch {
	case !ok:
		s.quorumSince = time.Time{}
		if s.fenced == "" {
			s.fencedSince = now
		}
	case s.fenced == "" || len(mergeNames(alive, known)) == len(alive):
		// Answering already, or every known speaker is back.
		s.quorumSince = time.Time{}
	default:
		if s.quorumSince.IsZero() {
			s.quorumSince = now
		}
		settle := min(fenceSettle, s.quorumSince.Sub(s.fencedSince))
		if now.Sub(s.quorumSince) < settle {
			time.AfterFunc(settle-now.Sub(s.quorumSince), s.Trigger)
			ok, why = false, fmt.Sprintf("%s, but some known speakers are not back yet; answering once every known speaker is back or at %s", why, s.quorumSince.Add(settle).Format(time.RFC3339Nano))
		}
	}
	fenced := ""
	if !ok {
		fenced = why
	}
	if !slices.Equal(known, s.known) {
		s.log.Info("speakers known", "count", len(known), "speakers", strings.Join(known, ","))
		s.known = known
	}
	if (fenced == "") == (s.fenced == "") {
		s.fenced = fenced
		return
	}
	s.fenced = fenced
	if fenced != "" {
		s.log.Warn("fenced: answering nothing in layer 2 until this speaker sees a quorum of the known speakers again", "why", why)
		s.nodeEvent(corev1.EventTypeWarning, "Fenced", "node %s answers nothing in layer 2: %s (it may be cut off from the others)", s.opts.Node, why)
	} else {
		s.log.Info("quorum regained: answering in layer 2 again", "why", why)
		s.nodeEvent(corev1.EventTypeNormal, "Unfenced", "node %s answers in layer 2 again: %s", s.opts.Node, why)
	}
}
