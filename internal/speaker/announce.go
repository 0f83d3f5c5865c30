package speaker

import (
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// apply gives the responders this node's share and reports changes.
func (s *Speaker) apply() {
	now := time.Now()
	s.claimMu.Lock()
	heard := maps.Clone(s.heard)
	s.claimMu.Unlock()
	from, switching := s.ranking.Switching()
	m := l2Moment{
		node: s.opts.Node, now: now, plan: s.state.Layer2().L2, owned: s.ranking.Owned(s.opts.Node), owner: s.ranking.Owner,
		fenced: s.fenced, handoff: s.opts.Handoff, switching: switching, switchFrom: from, switchTo: s.ranking.Version(),
		switchUntil: s.switchUntil, heard: heard,
	}
	next, d := decideL2(s.share, m)
	s.noteHandoffs(next, d, now)
	if !maps.EqualFunc(next.desired, s.share.desired, slices.Equal) {
		s.setAnnouncer(next.desired)
	}
	for _, a := range d.gained {
		s.serviceEvents(a, corev1.EventTypeNormal, ReasonAnnounced, "announcing %s from node %s (layer 2, %s)", a, s.opts.Node, interfacesText(next.desired[a]))
		s.log.Info("announcing", "address", a, "interfaces", interfacesText(next.desired[a]))
	}
	for _, a := range d.lost {
		s.serviceEvents(a, corev1.EventTypeNormal, ReasonWithdrawn, "node %s stopped announcing %s: %s", s.opts.Node, a, d.why[a])
		s.log.Info("withdrawn", "address", a, "reason", d.why[a])
	}
	s.share = next
}

// noteHandoffs tells Claimed which addresses are being handed off,
// forgets the claims that ended a handoff and those too old to end one,
// and asks for a sync when a handoff that began ends.
func (s *Speaker) noteHandoffs(next l2Share, d l2Decision, now time.Time) {
	s.claimMu.Lock()
	defer s.claimMu.Unlock()
	clear(s.handingOff)
	for a := range next.handoff {
		s.handingOff[a] = true
	}
	for _, a := range d.claimsUsed {
		delete(s.heard, a)
	}
	maps.DeleteFunc(s.heard, func(_ netip.Addr, t time.Time) bool { return now.Sub(t) > s.opts.Handoff+claimLead })
	if d.handoffsBegun {
		time.AfterFunc(s.opts.Handoff, s.Trigger)
	}
}

// setAnnouncer gives the responders desired, and reports the interfaces
// that are missing once per change of the problem.
func (s *Speaker) setAnnouncer(desired map[netip.Addr][]string) {
	err := s.opts.Announcer.Set(desired)
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg != s.setErr && err != nil {
		s.log.Error("some interfaces named by L2Advertisements are missing on this node; answering on the others, and on these once they appear", "error", err)
		s.nodeEvent(corev1.EventTypeWarning, "InterfaceMissing", "interfaces named by L2Advertisements are missing on this node (answering on the others, and on these once they appear): %v", err)
	}
	s.setErr = msg
}

// Claimed is told (by the layer 2 responders, layer2.Options.Claimed) that
// another host announced an address this speaker answers for. While the
// address is handed off, that is the successor taking over: the handoff
// ends at once, so that the two do not both answer for the rest of it.
func (s *Speaker) Claimed(a netip.Addr, _ net.HardwareAddr) (expected bool) {
	s.claimMu.Lock()
	s.heard[a] = time.Now()
	expected = s.handingOff[a]
	s.claimMu.Unlock()
	if expected {
		s.Trigger()
	}
	return expected
}

func (s *Speaker) serviceEvents(a netip.Addr, eventType, reason, format string, args ...any) {
	if s.opts.Events == nil {
		return
	}
	var keys []string
	if l := s.l2(a); l != nil {
		keys = l.Services
	}
	for _, k := range keys {
		if ref := s.services[k]; ref != nil {
			s.opts.Events.Eventf(ref, nil, eventType, reason, "Announce", format, args...)
		}
	}
}

func interfacesText(ifs []string) string {
	if len(ifs) == 0 {
		return "every interface"
	}
	return "interfaces " + strings.Join(ifs, ",")
}
