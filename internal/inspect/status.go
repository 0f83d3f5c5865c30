package inspect

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ironlb/ironlb/config/v1alpha1"
)

// StatusReport is the state of the whole installation.
type StatusReport struct {
	Pools    []PoolStatus    `json:"pools"`
	Speakers []SpeakerStatus `json:"speakers"`
	Sessions []SessionStatus `json:"bgpSessions"`
	// Notes point out what looks wrong.
	Notes []string `json:"notes,omitempty"`
}

// PoolStatus is one IPPool: its addresses, use and validity.
type PoolStatus struct {
	Name       string   `json:"name"`
	Addresses  []string `json:"addresses"`
	AutoAssign bool     `json:"autoAssign"`
	// Valid is the pool's Valid condition; nil when the controller has
	// not written one.
	Valid *Condition `json:"valid,omitempty"`
	IPv4  *Usage     `json:"ipv4,omitempty"`
	IPv6  *Usage     `json:"ipv6,omitempty"`
}

// SpeakerStatus is one node's speaker, as its NodeAnnouncement says.
type SpeakerStatus struct {
	Node string `json:"node"`
	// Reporting is false for a Node with no NodeAnnouncement: no speaker
	// has reported from it.
	Reporting     bool   `json:"reporting"`
	Members       int32  `json:"members"`
	KnownSpeakers int32  `json:"knownSpeakers"`
	Fenced        string `json:"fenced,omitempty"`
	// Layer2 are the addresses the node answers for (at most 100 are
	// listed; Layer2Count counts them all).
	Layer2      []string `json:"layer2,omitempty"`
	Layer2Count int32    `json:"layer2Count"`
	// BGP are the prefixes it advertises (at most 100; BGPCount).
	BGP      []string `json:"bgp,omitempty"`
	BGPCount int32    `json:"bgpCount"`
}

// SessionStatus is one node's session with one BGPPeer.
type SessionStatus struct {
	Node       string `json:"node"`
	Peer       string `json:"peer"`
	Address    string `json:"address"`
	State      string `json:"state"`
	Since      string `json:"since,omitempty"`
	Advertised int32  `json:"advertised"`
	Message    string `json:"message,omitempty"`
}

// Status reports pools, speakers and sessions. It reads IPPools,
// BGPPeers, NodeAnnouncements and Nodes.
func Status(s *Snapshot) StatusReport {
	r := StatusReport{Pools: []PoolStatus{}, Speakers: []SpeakerStatus{}, Sessions: []SessionStatus{}}
	for i := range s.IPPools {
		p := &s.IPPools[i]
		ps := PoolStatus{Name: p.Name, AutoAssign: p.Spec.AutoAssign == nil || *p.Spec.AutoAssign,
			Valid: conditionOf(p.Status.Conditions, ConditionValid), IPv4: usageOf(p, true), IPv6: usageOf(p, false)}
		for _, a := range p.Spec.Addresses {
			ps.Addresses = append(ps.Addresses, string(a))
		}
		if ps.Valid != nil && ps.Valid.Status != "True" {
			r.Notes = append(r.Notes, fmt.Sprintf("IPPool %s is not valid (%s): %s", p.Name, ps.Valid.Reason, ps.Valid.Message))
		}
		r.Pools = append(r.Pools, ps)
	}
	slices.SortFunc(r.Pools, func(a, b PoolStatus) int { return strings.Compare(a.Name, b.Name) })
	if len(s.IPPools) == 0 {
		r.Notes = append(r.Notes, "there is no IPPool in the cluster: no Service can get an address (unless ironlb reads its configuration from a file, --config-file)")
	}

	nodes := map[string]bool{}
	for _, n := range s.Nodes {
		nodes[n.Name] = true
	}
	for i := range s.NodeAnnouncements {
		na := &s.NodeAnnouncements[i]
		r.Speakers = append(r.Speakers, speakerStatus(na))
		for _, ss := range na.Status.BGPSessions {
			r.Sessions = append(r.Sessions, SessionStatus{Node: na.Name, Peer: ss.Peer, Address: ss.Address, State: ss.State,
				Since: timeText(ss.Since), Advertised: ss.Advertised, Message: ss.Message})
		}
		if na.Status.Fenced != "" {
			r.Notes = append(r.Notes, fmt.Sprintf("node %s is fenced and answers nothing in layer 2: %s", na.Name, na.Status.Fenced))
		}
		delete(nodes, na.Name)
	}
	for n := range nodes {
		r.Speakers = append(r.Speakers, SpeakerStatus{Node: n})
		r.Notes = append(r.Notes, fmt.Sprintf("node %s has no NodeAnnouncement: no speaker has reported from it (is the speaker DaemonSet's pod running there?)", n))
	}
	slices.SortFunc(r.Speakers, func(a, b SpeakerStatus) int { return strings.Compare(a.Node, b.Node) })
	slices.SortFunc(r.Sessions, func(a, b SessionStatus) int {
		if c := strings.Compare(a.Node, b.Node); c != 0 {
			return c
		}
		return strings.Compare(a.Peer, b.Peer)
	})
	for _, ss := range r.Sessions {
		if ss.State != SessionEstablished {
			msg := fmt.Sprintf("the BGP session of node %s with BGPPeer %s (%s) is %s", ss.Node, ss.Peer, ss.Address, ss.State)
			if ss.Message != "" {
				msg += ": " + ss.Message
			}
			r.Notes = append(r.Notes, msg)
		}
	}
	for _, p := range s.BGPPeers {
		if c := conditionOf(p.Status.Conditions, ConditionValid); c != nil && c.Status != "True" {
			r.Notes = append(r.Notes, fmt.Sprintf("BGPPeer %s is not valid (%s): %s", p.Name, c.Reason, c.Message))
		}
	}
	slices.Sort(r.Notes)
	return r
}

func speakerStatus(na *v1alpha1.NodeAnnouncement) SpeakerStatus {
	st := &na.Status
	ss := SpeakerStatus{Node: na.Name, Reporting: true, Members: st.Members, KnownSpeakers: st.KnownSpeakers, Fenced: st.Fenced,
		Layer2Count: max(st.Layer2Addresses, int32(len(st.Layer2))), BGPCount: max(st.BGPPrefixes, int32(len(st.BGP)))}
	for _, l := range st.Layer2 {
		ss.Layer2 = append(ss.Layer2, l.Address)
	}
	for _, b := range st.BGP {
		ss.BGP = append(ss.BGP, b.Prefix)
	}
	return ss
}
