package speaker

import (
	"fmt"
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
	desired := map[netip.Addr][]string{}
	if s.fenced == "" {
		for _, a := range s.ranking.Owned(s.opts.Node) {
			if l := s.l2(a); l != nil {
				desired[a] = l.Interfaces
				delete(s.handoff, a)
			}
		}
		s.keepHandingOff(desired, now)
	} else {
		clear(s.handoff)
	}
	if !maps.EqualFunc(desired, s.desired, slices.Equal) {
		err := s.opts.Announcer.Set(desired)
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		if msg != s.setErr {
			if err != nil {
				s.log.Error("some interfaces named by L2Advertisements are missing on this node; answering on the others, and on these once they appear", "error", err)
				s.nodeEvent(corev1.EventTypeWarning, "InterfaceMissing", "interfaces named by L2Advertisements are missing on this node (answering on the others, and on these once they appear): %v", err)
			}
			s.setErr = msg
		}
		for a := range desired {
			if _, had := s.desired[a]; !had {
				s.since[a] = now
				s.serviceEvents(a, corev1.EventTypeNormal, ReasonAnnounced, "announcing %s from node %s (layer 2, %s)", a, s.opts.Node, interfacesText(desired[a]))
				s.log.Info("announcing", "address", a, "interfaces", interfacesText(desired[a]))
			}
		}
		for a := range s.desired {
			if _, keep := desired[a]; !keep {
				delete(s.since, a)
				why := s.withdrawReason(a)
				s.serviceEvents(a, corev1.EventTypeNormal, ReasonWithdrawn, "node %s stopped announcing %s: %s", s.opts.Node, a, why)
				s.log.Info("withdrawn", "address", a, "reason", why)
			}
		}
		s.desired = desired
	}
}

// claimLead is how long before a handoff begins the successor may be
// heard announcing the address for the handoff to end at once: the
// successor may see the new membership a moment before this speaker does.
const claimLead = time.Second

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

// keepHandingOff keeps answering, for Options.Handoff, for the addresses
// this node lost to another alive speaker while still eligible itself:
// make before break. The other speaker (one that just joined, typically)
// may take a moment to answer; as soon as it is heard announcing the
// address (Claimed), or at the end of Handoff, this one stops. An address
// lost for any other reason (this node no longer eligible, the Service
// gone) is withdrawn at once.
//
// While the claim version changes nothing is handed off: the point of the
// switch is that no address is answered from two nodes.
func (s *Speaker) keepHandingOff(desired map[netip.Addr][]string, now time.Time) {
	_, switching := s.ranking.Switching()
	s.claimMu.Lock()
	defer s.claimMu.Unlock()
	defer func() {
		clear(s.handingOff)
		for a := range s.handoff {
			s.handingOff[a] = true
		}
		// Claims older than that can no longer end a handoff.
		maps.DeleteFunc(s.heard, func(_ netip.Addr, t time.Time) bool { return now.Sub(t) > s.opts.Handoff+claimLead })
	}()
	for a, ifs := range s.desired {
		if _, own := desired[a]; own || s.opts.Handoff <= 0 {
			continue
		}
		l := s.l2(a)
		owner, _ := s.ranking.Owner(a)
		if l == nil || !l.Eligible.Contains(s.opts.Node) || owner == "" || owner == s.opts.Node || switching {
			delete(s.handoff, a)
			continue
		}
		until, handing := s.handoff[a]
		if !handing {
			until = now.Add(s.opts.Handoff)
			s.handoff[a] = until
			time.AfterFunc(s.opts.Handoff, s.Trigger)
		}
		if heard, ok := s.heard[a]; ok && !heard.Before(until.Add(-s.opts.Handoff-claimLead)) {
			// The successor announced it, during the handoff or just
			// before it began: it answers now. One claim ends one
			// handoff.
			delete(s.handoff, a)
			delete(s.heard, a)
			continue
		}
		if now.Before(until) {
			desired[a] = ifs
		} else {
			delete(s.handoff, a)
		}
	}
}

// withdrawReason says why this node no longer announces a.
func (s *Speaker) withdrawReason(a netip.Addr) string {
	l := s.l2(a)
	if l == nil {
		return "no Service uses it in a pool announced in layer 2"
	}
	if s.fenced != "" {
		return "this speaker is fenced, answering nothing until it sees a quorum of the known speakers again: " + s.fenced
	}
	if !l.Eligible.Contains(s.opts.Node) {
		return "this node is no longer eligible (node selectors, exclusion label, network availability or, for externalTrafficPolicy Local, no ready local endpoint)"
	}
	owner, announces := s.ranking.Owner(a)
	if owner != "" && !announces {
		from, _ := s.ranking.Switching()
		return fmt.Sprintf("the speakers are changing the layer 2 claim version from %d to %d, and the addresses whose first-ranked node changes are answered by no node until %s", from, s.ranking.Version(), s.switchUntil.Format(time.RFC3339Nano))
	}
	if owner != "" {
		return "node " + owner + " ranks first among the eligible speakers"
	}
	return "no eligible speaker is alive"
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
