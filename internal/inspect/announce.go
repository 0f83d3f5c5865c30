package inspect

import (
	"net/netip"
	"slices"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/iprange"
)

func parseRange(s string) (iprange.Range, error) { return iprange.Parse(s) }

// L2Owner is a node answering ARP (IPv4) or NDP (IPv6) for an address,
// as its NodeAnnouncement says.
type L2Owner struct {
	Node string `json:"node"`
	// Protocol is ARP or NDP.
	Protocol   string   `json:"protocol"`
	Interfaces []string `json:"interfaces,omitempty"`
	Since      string   `json:"since,omitempty"`
	Services   []string `json:"services,omitempty"`
}

// BGPAdvertiser is a node advertising a prefix that covers an address.
type BGPAdvertiser struct {
	Node     string        `json:"node"`
	Prefix   string        `json:"prefix"`
	Peers    []PeerSession `json:"peers"`
	Since    string        `json:"since,omitempty"`
	Services []string      `json:"services,omitempty"`
}

// PeerSession is a BGPPeer a prefix goes to, with the state of the
// node's session with it: the router has the path only while the session
// is Established.
type PeerSession struct {
	Peer    string `json:"peer"`
	Address string `json:"address,omitempty"`
	State   string `json:"state"`
}

// Reaches tells whether some session carrying the prefix is up.
func (b BGPAdvertiser) Reaches() bool {
	return slices.ContainsFunc(b.Peers, func(p PeerSession) bool { return p.State == SessionEstablished })
}

// Announcers are the nodes announcing one address.
type Announcers struct {
	Layer2 []L2Owner       `json:"layer2,omitempty"`
	BGP    []BGPAdvertiser `json:"bgp,omitempty"`
	// Truncated are nodes whose NodeAnnouncement lists only part of
	// what they announce (at most 100 entries): they may announce the
	// address without saying so.
	Truncated []string `json:"truncated,omitempty"`
}

// announcers reads from the NodeAnnouncements which nodes announce a.
func (s *Snapshot) announcers(a netip.Addr) Announcers {
	var out Announcers
	proto := "ARP"
	if a.Is6() {
		proto = "NDP"
	}
	for i := range s.NodeAnnouncements {
		na := &s.NodeAnnouncements[i]
		st := &na.Status
		for _, l := range st.Layer2 {
			if addr, err := netip.ParseAddr(l.Address); err == nil && addr == a {
				out.Layer2 = append(out.Layer2, L2Owner{Node: na.Name, Protocol: proto, Interfaces: l.Interfaces, Since: timeText(l.Since), Services: l.Services})
			}
		}
		for _, b := range st.BGP {
			if p, err := netip.ParsePrefix(b.Prefix); err == nil && p.Contains(a) {
				out.BGP = append(out.BGP, BGPAdvertiser{Node: na.Name, Prefix: b.Prefix, Peers: sessionsFor(st, b.Peers), Since: timeText(b.Since), Services: b.Services})
			}
		}
		if int(st.Layer2Addresses) > len(st.Layer2) || int(st.BGPPrefixes) > len(st.BGP) {
			out.Truncated = append(out.Truncated, na.Name)
		}
	}
	return out
}

// sessionsFor pairs peer names with the node's sessions.
func sessionsFor(st *v1alpha1.NodeAnnouncementStatus, peers []string) []PeerSession {
	out := make([]PeerSession, 0, len(peers))
	for _, p := range peers {
		ps := PeerSession{Peer: p, State: "NoSession"}
		for _, s := range st.BGPSessions {
			if s.Peer == p {
				ps.Address, ps.State = s.Address, s.State
			}
		}
		out = append(out, ps)
	}
	return out
}

// Nodes lists the nodes announcing, layer 2 owners first, each once.
func (a Announcers) Nodes() []string {
	var out []string
	for _, l := range a.Layer2 {
		out = append(out, l.Node)
	}
	for _, b := range a.BGP {
		if !slices.Contains(out, b.Node) {
			out = append(out, b.Node)
		}
	}
	return out
}
