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
// each BGPAdvertisement covering its pool and selecting Self, as its
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
	if self == nil {
		return plan
	}
	plan.Peers = in.Config.PeersFor(self.Labels)
	if _, excluded := self.Labels[ExcludeLabel]; excluded || self.NetworkUnavailable || len(plan.Peers) == 0 {
		return plan
	}
	mine := map[string]bool{}
	for _, p := range plan.Peers {
		mine[p.Name] = true
	}
	// advs holds, per pool, the advertisements covering it that select Self.
	advs := map[string][]*config.BGPAdvertisement{}
	for _, adv := range in.Config.BGPAdvertisements {
		if !adv.NodeSelector.Matches(self.Labels) {
			continue
		}
		for _, p := range adv.Pools {
			advs[p.Name] = append(advs[p.Name], adv)
		}
	}
	for _, svc := range in.Services {
		if svc.Local && !slices.Contains(svc.ReadyNodes, in.Self) || !svc.Ready {
			continue
		}
		for _, a := range svc.Addrs {
			pool := in.Config.PoolFor(a)
			if pool == nil {
				continue
			}
			for _, adv := range advs[pool.Name] {
				bits := adv.AggregationLength
				if a.Is6() {
					bits = adv.AggregationLengthV6
				}
				pfx, err := a.Prefix(bits)
				if err != nil {
					continue
				}
				for _, peer := range adv.Peers {
					if !mine[peer.Name] || peer.Address.Is4() != a.Is4() {
						continue
					}
					plan.add(pfx, peer, adv, svc.Key)
				}
			}
		}
	}
	for _, p := range plan.Prefixes {
		p.Services = sortedSet(p.Services)
		p.Peers = sortedSet(p.Peers)
		p.Advertisements = sortedSet(p.Advertisements)
	}
	for _, routes := range plan.Routes {
		for pfx, r := range routes {
			slices.SortFunc(r.Communities, compareCommunity)
			r.Communities = slices.Compact(r.Communities)
			routes[pfx] = r
		}
	}
	return plan
}

func (plan *BGPPlan) add(pfx netip.Prefix, peer *config.BGPPeer, adv *config.BGPAdvertisement, svc string) {
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
	p.Services = append(p.Services, svc)
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
