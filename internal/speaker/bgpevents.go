package speaker

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ironlb/ironlb/internal/planner"
)

// Events on Services when this node starts or stops advertising their
// address over BGP, and on the Node when there were too many to send.
const (
	ReasonAnnouncedBGP        = "AnnouncedBGP"
	ReasonWithdrawnBGP        = "WithdrawnBGP"
	ReasonBGPEventsSuppressed = "BGPEventsSuppressed"
)

// Every node advertising a Service's address sends these events, unlike
// layer 2 where only the owner does, so a burst (thousands of Services
// created, a speaker restarting) would make nodes × Services events. A
// token bucket lets bgpEventBurst through at once and then one every
// bgpEventEvery; the events left out are counted and reported in one
// event on the Node at most every bgpSummaryEvery.
const (
	bgpEventBurst   = 50
	bgpEventEvery   = time.Second
	bgpSummaryEvery = time.Minute
)

// bgpEventLog works out the per-Service BGP events of the prefixes that
// changed, within the budget. It belongs to the sync goroutine.
type bgpEventLog struct {
	// seen holds each prefix's description as last compared. The
	// planner replaces the description of a prefix that changes rather
	// than changing it, so the one held here stays as it was.
	seen map[netip.Prefix]*planner.BGPPrefix
	// tokens is the budget left at time at.
	tokens float64
	at     time.Time
	// announced and withdrawn count the events left out since the last
	// summary, sent at summarized; wakeSet: a sync is asked for when the
	// next summary is due.
	announced, withdrawn int
	summarized           time.Time
	wakeSet              bool
}

// bgpServiceEvent is one event to send on a Service.
type bgpServiceEvent struct {
	service, reason string
	prefix          netip.Prefix
	peers           []string
}

func newBGPEventLog() *bgpEventLog {
	return &bgpEventLog{seen: map[netip.Prefix]*planner.BGPPrefix{}, tokens: bgpEventBurst}
}

// record compares the prefixes in changed (every prefix when nil) with
// what it saw last, and returns the events to send now: a Service that
// a prefix newly covers is announced, one it no longer covers is
// withdrawn. known tells whether a Service can get events (one deleted
// cannot, and costs no budget).
func (l *bgpEventLog) record(now time.Time, plan planner.BGPPlan, changed map[netip.Prefix]bool, known func(string) bool) []bgpServiceEvent {
	var out []bgpServiceEvent
	compare := func(pfx netip.Prefix) {
		old, cur := l.seen[pfx], plan.Prefixes[pfx]
		if old == cur {
			return
		}
		var oldSvcs, curSvcs []string
		if old != nil {
			oldSvcs = old.Services
		}
		if cur != nil {
			curSvcs = cur.Services
			l.seen[pfx] = cur
		} else {
			delete(l.seen, pfx)
		}
		gone, came := sortedDiff(oldSvcs, curSvcs)
		for _, k := range came {
			out = append(out, bgpServiceEvent{k, ReasonAnnouncedBGP, pfx, cur.Peers})
		}
		for _, k := range gone {
			out = append(out, bgpServiceEvent{k, ReasonWithdrawnBGP, pfx, old.Peers})
		}
	}
	if changed == nil {
		for pfx := range l.seen {
			compare(pfx)
		}
		for pfx := range plan.Prefixes {
			compare(pfx)
		}
	} else {
		for pfx := range changed {
			compare(pfx)
		}
	}
	l.refill(now)
	sent := out[:0]
	for _, e := range out {
		switch {
		case !known(e.service):
		case l.tokens >= 1:
			l.tokens--
			sent = append(sent, e)
		case e.reason == ReasonAnnouncedBGP:
			l.announced++
		default:
			l.withdrawn++
		}
	}
	return sent
}

func (l *bgpEventLog) refill(now time.Time) {
	if !l.at.IsZero() && now.After(l.at) {
		l.tokens = min(bgpEventBurst, l.tokens+float64(now.Sub(l.at))/float64(bgpEventEvery))
	}
	l.at = now
}

// summary returns the note of the Node event reporting the events left
// out, when one is due, and when the next one may be sent otherwise
// (zero: nothing is left out).
func (l *bgpEventLog) summary(now time.Time, node string) (note string, next time.Time) {
	if l.announced == 0 && l.withdrawn == 0 {
		return "", time.Time{}
	}
	if due := l.summarized.Add(bgpSummaryEvery); now.Before(due) {
		return "", due
	}
	note = fmt.Sprintf("node %s left out %d %s and %d %s events on Services: more than %d at once, then one every %s, would load the API server; "+
		"its NodeAnnouncement lists the prefixes it advertises, and kubectl ironlb explain tells who advertises a Service's address",
		node, l.announced, ReasonAnnouncedBGP, l.withdrawn, ReasonWithdrawnBGP, bgpEventBurst, bgpEventEvery)
	l.announced, l.withdrawn, l.summarized = 0, 0, now
	return note, time.Time{}
}

// sortedDiff returns what only a holds and what only b holds, of two
// sorted lists.
func sortedDiff(a, b []string) (onlyA, onlyB []string) {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || i < len(a) && a[i] < b[j]:
			onlyA = append(onlyA, a[i])
			i++
		case i == len(a) || b[j] < a[i]:
			onlyB = append(onlyB, b[j])
			j++
		default:
			i++
			j++
		}
	}
	return onlyA, onlyB
}

// bgpServiceEvents sends the events of the prefixes in changed (every
// prefix when nil) on their Services, and the summary of those left out
// when it is due.
func (s *Speaker) bgpServiceEvents(plan planner.BGPPlan, changed map[netip.Prefix]bool) {
	if s.opts.Events == nil {
		return
	}
	if s.bgpSvcEvents == nil {
		s.bgpSvcEvents = newBGPEventLog()
	}
	l := s.bgpSvcEvents
	now := s.now()
	known := func(k string) bool { return s.services[k] != nil }
	for _, e := range l.record(now, plan, changed, known) {
		peers := strings.Join(e.peers, ", ")
		if e.reason == ReasonAnnouncedBGP {
			s.opts.Events.Eventf(s.services[e.service], nil, corev1.EventTypeNormal, e.reason, "Announce", "node %s advertises %s over BGP to %s", s.opts.Node, e.prefix, peers)
		} else {
			s.opts.Events.Eventf(s.services[e.service], nil, corev1.EventTypeNormal, e.reason, "Announce", "node %s stopped advertising %s over BGP to %s", s.opts.Node, e.prefix, peers)
		}
	}
	s.summarizeBGPEvents()
}

// summarizeBGPEvents sends the summary of the events left out when it is
// due, or asks for a sync when it will be.
func (s *Speaker) summarizeBGPEvents() {
	l := s.bgpSvcEvents
	if l == nil {
		return
	}
	note, next := l.summary(s.now(), s.opts.Node)
	if note != "" {
		s.nodeEvent(corev1.EventTypeNormal, ReasonBGPEventsSuppressed, "%s", note)
	}
	if !next.IsZero() && !l.wakeSet {
		l.wakeSet = true
		time.AfterFunc(next.Sub(s.now()), s.Trigger)
	}
	if next.IsZero() {
		l.wakeSet = false
	}
}
