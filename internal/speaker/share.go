package speaker

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/ironlb/ironlb/internal/election"
	"github.com/ironlb/ironlb/internal/planner"
)

// l2Moment is everything this node's layer 2 share depends on at one
// sync. decideL2 reads it and nothing else: no clock, no lock, no I/O.
type l2Moment struct {
	node string
	now  time.Time
	plan map[netip.Addr]*planner.L2
	// owned are the addresses this node ranks first for among the alive
	// eligible speakers; owner tells, for any address, the node that
	// ranks first and whether it answers (not while a claim version
	// switch holds the address back).
	owned []netip.Addr
	owner func(netip.Addr) (node string, announces bool)
	// fenced, when not empty, says why this speaker answers nothing.
	fenced string
	// handoff is Options.Handoff.
	handoff time.Duration
	// switching: the claim version is changing, from switchFrom to
	// switchTo until switchUntil.
	switching            bool
	switchFrom, switchTo election.ClaimVersion
	switchUntil          time.Time
	// heard holds when another host was last heard announcing each
	// address (Speaker.Claimed).
	heard map[netip.Addr]time.Time
}

// l2Share is this node's layer 2 share as decided at one sync.
type l2Share struct {
	// desired are the addresses answered for and their interfaces (nil:
	// every interface); since when each was gained.
	desired map[netip.Addr][]string
	since   map[netip.Addr]time.Time
	// handoff holds, for the addresses being handed to another speaker,
	// when this one stops answering.
	handoff map[netip.Addr]time.Time
}

// l2Decision is what decideL2 works out besides the share.
type l2Decision struct {
	// gained and lost are the addresses answered for now and not before,
	// and the other way round, sorted; why says why each lost one was.
	gained, lost []netip.Addr
	why          map[netip.Addr]string
	// claimsUsed are the heard claims that ended a handoff: each ends
	// one.
	claimsUsed []netip.Addr
	// handoffsBegun: some handoff began, so a sync is due when it ends.
	handoffsBegun bool
}

// claimLead is how long before a handoff begins the successor may be
// heard announcing the address for the handoff to end at once: the
// successor may see the new membership a moment before this speaker does.
const claimLead = time.Second

// decideL2 works out this node's layer 2 share from the last one.
//
// The node answers for the addresses it owns on the interfaces the plan
// names, unless fenced. An address it lost to another alive speaker
// while still eligible itself is handed off, make before break: the node
// keeps answering for it for the handoff time, or until the successor is
// heard announcing it (during the handoff or just before it began). An
// address lost for any other reason (this node no longer eligible, the
// Service gone, fenced) is withdrawn at once; so is every handoff while
// the claim version changes, since the point of the switch is that no
// address is answered from two nodes.
func decideL2(last l2Share, m l2Moment) (l2Share, l2Decision) {
	next := l2Share{desired: map[netip.Addr][]string{}, since: map[netip.Addr]time.Time{}, handoff: map[netip.Addr]time.Time{}}
	var d l2Decision
	if m.fenced == "" {
		for _, a := range m.owned {
			if l := m.plan[a]; l != nil {
				next.desired[a] = l.Interfaces
			}
		}
		d.claimsUsed, d.handoffsBegun = handOff(last, m, next)
	}
	for a := range next.desired {
		if t, had := last.since[a]; had {
			next.since[a] = t
		} else {
			next.since[a] = m.now
			d.gained = append(d.gained, a)
		}
	}
	for a := range last.desired {
		if _, keep := next.desired[a]; !keep {
			d.lost = append(d.lost, a)
		}
	}
	slices.SortFunc(d.gained, netip.Addr.Compare)
	slices.SortFunc(d.lost, netip.Addr.Compare)
	if len(d.lost) > 0 {
		d.why = map[netip.Addr]string{}
		for _, a := range d.lost {
			d.why[a] = withdrawReason(m, a)
		}
	}
	return next, d
}

// handOff adds to next the addresses of last that are being handed off,
// and returns the claims that ended a handoff and whether one began.
func handOff(last l2Share, m l2Moment, next l2Share) (claimsUsed []netip.Addr, begun bool) {
	if m.handoff <= 0 || m.switching {
		return nil, false
	}
	for _, a := range slices.SortedFunc(maps.Keys(last.desired), netip.Addr.Compare) {
		if _, own := next.desired[a]; own {
			continue
		}
		l := m.plan[a]
		owner, _ := m.owner(a)
		if l == nil || !l.Eligible.Contains(m.node) || owner == "" || owner == m.node {
			continue
		}
		until, handing := last.handoff[a]
		if !handing {
			until, begun = m.now.Add(m.handoff), true
		}
		if heard, ok := m.heard[a]; ok && !heard.Before(until.Add(-m.handoff-claimLead)) {
			// The successor announced it, during the handoff or just
			// before it began: it answers now.
			claimsUsed = append(claimsUsed, a)
			continue
		}
		if m.now.Before(until) {
			next.desired[a] = last.desired[a]
			next.handoff[a] = until
		}
	}
	return claimsUsed, begun
}

// withdrawReason says why this node no longer answers for a.
func withdrawReason(m l2Moment, a netip.Addr) string {
	l := m.plan[a]
	if l == nil {
		return "no Service uses it in a pool announced in layer 2"
	}
	if m.fenced != "" {
		return "this speaker is fenced, answering nothing until it sees a quorum of the known speakers again: " + m.fenced
	}
	if !l.Eligible.Contains(m.node) {
		return "this node is no longer eligible (node selectors, exclusion label, network availability or, for externalTrafficPolicy Local, no ready local endpoint)"
	}
	owner, announces := m.owner(a)
	if owner != "" && !announces {
		return fmt.Sprintf("the speakers are changing the layer 2 claim version from %d to %d, and the addresses whose first-ranked node changes are answered by no node until %s", m.switchFrom, m.switchTo, m.switchUntil.Format(time.RFC3339Nano))
	}
	if owner != "" {
		return "node " + owner + " ranks first among the eligible speakers"
	}
	return "no eligible speaker is alive"
}
