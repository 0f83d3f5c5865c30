package planner

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/ironlb/ironlb/internal/config"
)

// BGPPlan is what this node does over BGP.
type BGPPlan struct {
	// Peers are the BGPPeers that select this node, sorted by name. The
	// node peers with them even while it has nothing to advertise.
	Peers []*config.BGPPeer
	// Routes holds, per peer name, the prefixes this node advertises to
	// that peer and with what.
	Routes map[string]map[netip.Prefix]BGPRoute
	// Prefixes describes every prefix advertised to some peer.
	Prefixes map[netip.Prefix]*BGPPrefix
}

// BGPRoute is what one prefix is advertised with to one peer.
type BGPRoute struct {
	// LocalPref is nil when no advertisement sets one, and always on eBGP
	// sessions; when several set one, the highest wins.
	LocalPref *uint32
	// Communities are the union of the advertisements', sorted.
	Communities []config.Community
}

// BGPPrefix is one advertised prefix.
type BGPPrefix struct {
	// Services are the keys of the Services whose addresses it covers,
	// Peers the peers it goes to and Advertisements the BGPAdvertisements
	// behind it; all sorted.
	Services       []string
	Peers          []string
	Advertisements []string
}

// BGP plans what Self advertises. A Service's address is advertised, by
// each BGPAdvertisement covering its pool, selecting Self and selecting
// the Service (spec.serviceSelector), as its
// prefix (the address, or the aggregate of the advertisement's
// aggregation length) to the advertisement's peers that select Self and
// share the address's family. It is advertised only while the Service has
// a ready endpoint (externalTrafficPolicy Cluster) or Self holds one
// (Local). Self advertises nothing while it is labelled ExcludeLabel or
// its network is unavailable.
func BGP(in Input) BGPPlan {
	plan := BGPPlan{Routes: map[string]map[netip.Prefix]BGPRoute{}, Prefixes: map[netip.Prefix]*BGPPrefix{}}
	var self *Node
	for i := range in.Nodes {
		if in.Nodes[i].Name == in.Self {
			self = &in.Nodes[i]
		}
	}
	c := newBGPContext(in.Config, self)
	plan.Peers = c.peers
	for i := range in.Services {
		for _, a := range in.Services[i].Addrs {
			for _, sh := range c.shares(in.Self, a, &in.Services[i], nil) {
				plan.add(sh)
			}
		}
	}
	for pfx := range plan.Prefixes {
		plan.tidy(pfx)
	}
	return plan
}

// bgpContext is what the BGP plan of every address shares: the peers
// selecting Self and, per pool, the advertisements covering it that
// select Self. It depends on the configuration and Self's Node only.
type bgpContext struct {
	peers []*config.BGPPeer
	// off: Self advertises nothing (no Node, excluded, network
	// unavailable or no peer).
	off  bool
	mine map[string]bool
	advs map[string][]*config.BGPAdvertisement
	cfg  *config.Config
}

// newBGPContext works out the context for Self's Node (nil: no Node).
func newBGPContext(cfg *config.Config, self *Node) bgpContext {
	c := bgpContext{off: true, cfg: cfg}
	if self == nil || cfg == nil {
		return c
	}
	c.peers = cfg.PeersFor(self.Labels)
	if _, excluded := self.Labels[ExcludeLabel]; excluded || self.NetworkUnavailable || len(c.peers) == 0 {
		return c
	}
	c.off = false
	c.mine = map[string]bool{}
	for _, p := range c.peers {
		c.mine[p.Name] = true
	}
	c.advs = map[string][]*config.BGPAdvertisement{}
	for _, adv := range cfg.BGPAdvertisements {
		if !adv.NodeSelector.Matches(self.Labels) {
			continue
		}
		for _, p := range adv.Pools {
			c.advs[p.Name] = append(c.advs[p.Name], adv)
		}
	}
	return c
}

// bgpShare is one Service's address advertised as pfx to peer because of
// adv.
type bgpShare struct {
	pfx  netip.Prefix
	peer *config.BGPPeer
	adv  *config.BGPAdvertisement
	svc  string
}

// shares appends to out what svc's address a adds to the plan: nothing
// unless the Service has a ready endpoint (on Self, for Local).
func (c *bgpContext) shares(self string, a netip.Addr, svc *Service, out []bgpShare) []bgpShare {
	if c.off || svc.Local && !slices.Contains(svc.ReadyNodes, self) || !svc.Ready {
		return out
	}
	pool := c.cfg.PoolFor(a)
	if pool == nil {
		return out
	}
	for _, adv := range c.advs[pool.Name] {
		if !adv.SelectsService(svc.Labels) {
			continue
		}
		bits := adv.AggregationLength
		if a.Is6() {
			bits = adv.AggregationLengthV6
		}
		pfx, err := a.Prefix(bits)
		if err != nil {
			continue
		}
		for _, peer := range adv.Peers {
			if c.mine[peer.Name] && peer.Address.Is4() == a.Is4() {
				out = append(out, bgpShare{pfx: pfx, peer: peer, adv: adv, svc: svc.Key})
			}
		}
	}
	return out
}

// tidy sorts and de-duplicates what add appended for pfx.
func (plan *BGPPlan) tidy(pfx netip.Prefix) {
	p := plan.Prefixes[pfx]
	if p == nil {
		return
	}
	p.Services = sortedSet(p.Services)
	p.Peers = sortedSet(p.Peers)
	p.Advertisements = sortedSet(p.Advertisements)
	for _, peer := range p.Peers {
		r := plan.Routes[peer][pfx]
		slices.SortFunc(r.Communities, compareCommunity)
		r.Communities = slices.Compact(r.Communities)
		plan.Routes[peer][pfx] = r
	}
}

func (plan *BGPPlan) add(sh bgpShare) {
	pfx, peer, adv := sh.pfx, sh.peer, sh.adv
	routes := plan.Routes[peer.Name]
	if routes == nil {
		routes = map[netip.Prefix]BGPRoute{}
		plan.Routes[peer.Name] = routes
	}
	r := routes[pfx]
	r.Communities = append(r.Communities, adv.Communities...)
	if adv.LocalPref != nil && peer.IBGP() && (r.LocalPref == nil || *adv.LocalPref > *r.LocalPref) {
		r.LocalPref = adv.LocalPref
	}
	routes[pfx] = r
	p := plan.Prefixes[pfx]
	if p == nil {
		p = &BGPPrefix{}
		plan.Prefixes[pfx] = p
	}
	p.Services = append(p.Services, sh.svc)
	p.Peers = append(p.Peers, peer.Name)
	p.Advertisements = append(p.Advertisements, adv.Name)
}

func sortedSet(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

func compareCommunity(a, b config.Community) int {
	if a.Large != b.Large {
		if a.Large {
			return 1
		}
		return -1
	}
	return cmp.Or(cmp.Compare(a.Standard, b.Standard), cmp.Compare(a.Global, b.Global),
		cmp.Compare(a.Local1, b.Local1), cmp.Compare(a.Local2, b.Local2))
}
