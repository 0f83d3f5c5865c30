package speaker

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/bgp"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/iprange"
	"github.com/ironlb/ironlb/internal/planner"
)

// BGP is this node's BGP side (bgp.Server).
type BGP interface {
	// Set hands over the complete desired state; it never blocks.
	Set(bgp.Desired)
	// Update hands over the routes of the prefixes that changed since;
	// it never blocks.
	Update(bgp.Changes)
	// Status reports every desired peer.
	Status() []bgp.PeerStatus
}

// Event reasons on BGPPeers.
const (
	ReasonSessionUp      = "SessionEstablished"
	ReasonSessionDown    = "SessionDown"
	ReasonPeerUnusable   = "PeerUnusable"
	maxBGPStatusPrefixes = 100
)

// applyBGP hands the BGP side what changed: the whole desired state after
// a change of the peers, the router ID or a password (paced, as its cost
// grows with the Services), otherwise the routes of the prefixes that
// changed.
func (s *Speaker) applyBGP() {
	plan := s.state.BGP()
	s.summarizeBGPEvents()
	if s.bgpFull {
		if s.paced(&s.bgpPace, func() { s.setBGP(plan) }) {
			s.bgpFull = false
			clear(s.bgpPending)
		}
		return
	}
	if len(s.bgpPending) == 0 {
		return
	}
	s.trackPrefixes(plan)
	s.opts.BGP.Update(bgpChanges(plan, s.bgpPending))
	s.bgpServiceEvents(plan, s.bgpPending)
	clear(s.bgpPending)
}

// setBGP hands the BGP side the whole plan and records every prefix.
func (s *Speaker) setBGP(plan planner.BGPPlan) {
	now := time.Now()
	for pfx := range plan.Prefixes {
		if _, ok := s.bgpSince[pfx]; !ok {
			s.bgpSince[pfx] = now
		}
	}
	for pfx := range s.bgpSince {
		if plan.Prefixes[pfx] == nil {
			delete(s.bgpSince, pfx)
		}
	}
	s.bgpOrder = slices.SortedFunc(maps.Keys(plan.Prefixes), iprange.ComparePrefixes)
	s.bgpReported = s.bgpAnnouncements(plan)
	s.opts.BGP.Set(bgpDesired(s.opts.Node, plan, s.selfIPv4, s.secrets.get))
	s.bgpServiceEvents(plan, nil)
}

// trackPrefixes records the pending prefixes' coming and going, and
// reports the first prefixes again when one of them changed.
func (s *Speaker) trackPrefixes(plan planner.BGPPlan) {
	now, top := time.Now(), false
	for pfx := range s.bgpPending {
		i, found := slices.BinarySearchFunc(s.bgpOrder, pfx, iprange.ComparePrefixes)
		switch planned := plan.Prefixes[pfx] != nil; {
		case planned && !found:
			s.bgpOrder = slices.Insert(s.bgpOrder, i, pfx)
			s.bgpSince[pfx] = now
		case !planned && found:
			s.bgpOrder = slices.Delete(s.bgpOrder, i, i+1)
			delete(s.bgpSince, pfx)
		}
		top = top || i < maxBGPStatusPrefixes
	}
	if top {
		s.bgpReported = s.bgpAnnouncements(plan)
	}
}

// bgpChanges are the routes of the prefixes in changed, to each peer
// that advertises them.
func bgpChanges(plan planner.BGPPlan, changed map[netip.Prefix]bool) bgp.Changes {
	out := make(bgp.Changes, len(changed))
	for pfx := range changed {
		routes := map[string]bgp.Route{}
		if p := plan.Prefixes[pfx]; p != nil {
			for _, peer := range p.Peers {
				if r, ok := plan.Routes[peer][pfx]; ok {
					routes[peer] = route(r)
				}
			}
		}
		out[pfx] = routes
	}
	return out
}

// bgpDesired is what the BGP side is given for plan: the router ID (the
// first peer's routerID, else this node's IPv4 address), and per peer
// its session, routes and password. A peer is disabled, with the reason,
// while its password Secret has not been read or is unusable, and when
// the node has no IPv4 router ID. It is pure: passwords are looked up in
// what was last read.
func bgpDesired(node string, plan planner.BGPPlan, selfIPv4 netip.Addr, passwords func(secretRef) (password, bool)) bgp.Desired {
	d := bgp.Desired{RouterID: selfIPv4}
	for _, p := range plan.Peers {
		if p.RouterID.IsValid() {
			d.RouterID = p.RouterID
			break
		}
	}
	for _, p := range plan.Peers {
		bp := bgp.Peer{Name: p.Name, Session: session(p), BFD: bfdSettings(p), Routes: make(map[netip.Prefix]bgp.Route, len(plan.Routes[p.Name]))}
		for pfx, r := range plan.Routes[p.Name] {
			bp.Routes[pfx] = route(r)
		}
		if r := p.Password; r != nil {
			if pw, ok := passwords(secretRef{r.Namespace, r.Name, r.Key}); ok {
				bp.Password, bp.Disabled = pw.value, pw.problem
			} else {
				bp.Disabled = fmt.Sprintf("spec.passwordSecretRef: Secret %s/%s has not been read yet", r.Namespace, r.Name)
			}
		}
		if !d.RouterID.Is4() && bp.Disabled == "" {
			bp.Disabled = fmt.Sprintf("node %s has no IPv4 InternalIP to use as the BGP router ID; set spec.routerID on the BGPPeers selecting it", node)
		}
		d.Peers = append(d.Peers, bp)
	}
	return d
}

func session(p *config.BGPPeer) bgp.Session {
	return bgp.Session{
		Address: p.Address, Port: p.Port, ASN: p.ASN, LocalASN: p.MyASN,
		SourceAddress: p.SourceAddress, HoldTime: p.HoldTime, KeepaliveTime: p.KeepaliveTime,
		MultiHop: p.EBGPMultiHop, GracefulRestart: p.GracefulRestart,
		ConnectTime: p.ConnectTime, MaxReceived: p.MaxReceived,
	}
}

// bfdSettings is the peer's BFD session, nil when it has none.
func bfdSettings(p *config.BGPPeer) *bgp.BFD {
	if p.BFD == nil {
		return nil
	}
	return &bgp.BFD{ReceiveInterval: p.BFD.ReceiveInterval, TransmitInterval: p.BFD.TransmitInterval,
		DetectMultiplier: p.BFD.DetectMultiplier}
}

func route(r planner.BGPRoute) bgp.Route {
	var out bgp.Route
	if r.LocalPref != nil {
		out.LocalPref, out.HasLocalPref = *r.LocalPref, true
	}
	for _, c := range r.Communities {
		if c.Large {
			out.Large = append(out.Large, bgp.LargeCommunity{Global: c.Global, Local1: c.Local1, Local2: c.Local2})
		} else {
			out.Communities = append(out.Communities, c.Standard)
		}
	}
	return out
}

// bgpEvents records session changes on the BGPPeers: up, down, and why a
// session cannot be used.
func (s *Speaker) bgpEvents(ctx context.Context, now []bgp.PeerStatus) {
	prev := map[string]bgp.PeerStatus{}
	for _, st := range s.bgpStatus {
		prev[st.Name] = st
	}
	for _, st := range now {
		old, had := prev[st.Name]
		up, wasUp := st.State == bgp.StateEstablished, had && old.State == bgp.StateEstablished
		switch {
		case up && !wasUp:
			s.log.Info("BGP session established", "peer", st.Name, "address", st.Address)
			s.peerEvent(ctx, st.Name, corev1.EventTypeNormal, ReasonSessionUp, "node %s: BGP session with %s established", s.opts.Node, st.Address)
		case !up && wasUp:
			s.log.Warn("BGP session down", "peer", st.Name, "address", st.Address, "state", st.State)
			s.peerEvent(ctx, st.Name, corev1.EventTypeWarning, ReasonSessionDown, "node %s: BGP session with %s is down (%s); retrying", s.opts.Node, st.Address, st.State)
		}
		if st.Message != "" && (!had || old.Message != st.Message) {
			s.log.Error("BGP peer unusable", "peer", st.Name, "address", st.Address, "problem", st.Message)
			s.peerEvent(ctx, st.Name, corev1.EventTypeWarning, ReasonPeerUnusable, "node %s: %s", s.opts.Node, st.Message)
		}
	}
	s.bgpStatus = now
}

// peerEvent records an event on a BGPPeer, or on the Node when the
// configuration comes from a file.
func (s *Speaker) peerEvent(ctx context.Context, name, eventType, reason, format string, args ...any) {
	if s.opts.Events == nil {
		return
	}
	if s.opts.Static != nil {
		s.nodeEvent(eventType, reason, "BGPPeer "+name+": "+format, args...)
		return
	}
	var p v1alpha1.BGPPeer
	if err := s.reader.Get(ctx, client.ObjectKey{Name: name}, &p); err != nil {
		return
	}
	s.opts.Events.Eventf(&p, nil, eventType, reason, "Peer", format, args...)
}

// bgpAnnouncements are the first prefixes of plan (in bgpOrder) as the
// NodeAnnouncement reports them.
func (s *Speaker) bgpAnnouncements(plan planner.BGPPlan) []v1alpha1.BGPAnnouncement {
	pfxs := s.bgpOrder[:min(len(s.bgpOrder), maxBGPStatusPrefixes)]
	out := make([]v1alpha1.BGPAnnouncement, 0, len(pfxs))
	for _, pfx := range pfxs {
		p := plan.Prefixes[pfx]
		out = append(out, v1alpha1.BGPAnnouncement{
			Prefix: pfx.String(), Services: p.Services, Peers: p.Peers, Since: metaTime(s.bgpSince[pfx]),
		})
	}
	return out
}

// reportBGP adds the BGP side to this node's NodeAnnouncement status.
func (s *Speaker) reportBGP(st *v1alpha1.NodeAnnouncementStatus) {
	st.BGPPrefixes = int32(len(s.state.BGP().Prefixes))
	st.BGP = s.bgpReported
	for _, p := range s.bgpStatus {
		st.BGPSessions = append(st.BGPSessions, v1alpha1.BGPSession{
			Peer: p.Name, Address: p.Address.String(), State: string(p.State),
			Since: metaTime(p.Since), Advertised: int32(p.Advertised), Message: p.Message,
			BFD: p.BFD,
		})
	}
	st.BGPSessionSummary = sessionSummary(st.BGPSessions)
}

// sessionSummary writes sessions in one line, peer=State joined by commas
// in their order, for the NodeAnnouncement's column.
func sessionSummary(sessions []v1alpha1.BGPSession) string {
	parts := make([]string, len(sessions))
	for i, s := range sessions {
		parts[i] = s.Peer + "=" + s.State
	}
	return strings.Join(parts, ",")
}
