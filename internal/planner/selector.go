package planner

import (
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/ironlb/ironlb/internal/config"
)

// An advertisement with a serviceSelector applies only to the Services it
// selects. An address is announced by such an advertisement when it
// selects at least one of the Services using the address; the address then
// carries all of them (an address cannot be half announced). Over BGP the
// rule is applied per Service (bgpContext.shares): a Service the
// advertisement does not select adds no route, so a prefix is advertised
// by it when a selected Service would be advertised anyway (it has a ready
// endpoint, on Self for Local).
//
// In layer 2 mode the eligible nodes, interfaces and advertisements of an
// address then depend on which of its pool's advertisements select one of
// its Services. Pools none of whose advertisements has a selector keep one
// plan for all their addresses; the others keep a plan per combination of
// advertisements met so far, so that addresses with the same combination
// share one eligible set.

// selectivePool is what each L2Advertisement of a pool contributes, for a
// pool with at least one advertisement that has a serviceSelector.
type selectivePool struct {
	advs []poolAdv
	// pool is the plan of the pool as a whole (every advertisement);
	// variants are plans for combinations of advertisements, by the
	// combination's key (see plan).
	pool     *poolPlan
	variants map[string]*poolPlan
}

// poolAdv is one L2Advertisement of a pool.
type poolAdv struct {
	adv *config.L2Advertisement
	// nodes are the usable nodes it selects.
	nodes []string
	self  bool
}

// forServices is the plan of an address of the pool used by svcs: the
// pool's own plan unless some advertisement of the pool has a
// serviceSelector; nil when no advertisement selects any of svcs.
func (pp *poolPlan) forServices(svcs []*Service) *poolPlan {
	if pp == nil || pp.selective == nil {
		return pp
	}
	return pp.selective.plan(svcs)
}

// plan is the plan made of the advertisements selecting one of svcs.
func (sp *selectivePool) plan(svcs []*Service) *poolPlan {
	key := make([]byte, len(sp.advs))
	some := false
	for i, pa := range sp.advs {
		key[i] = '0'
		if slices.ContainsFunc(svcs, func(svc *Service) bool { return pa.adv.SelectsService(svc.Labels) }) {
			key[i], some = '1', true
		}
	}
	if !some {
		return nil
	}
	if !strings.Contains(string(key), "0") {
		return sp.pool
	}
	if pp := sp.variants[string(key)]; pp != nil {
		return pp
	}
	pp := &poolPlan{}
	var nodes []string
	for i, pa := range sp.advs {
		if key[i] == '0' {
			continue
		}
		nodes = append(nodes, pa.nodes...)
		if pa.self {
			pp.advs = append(pp.advs, pa.adv.Name)
			pp.all = pp.all || len(pa.adv.Interfaces) == 0
			pp.interfaces = append(pp.interfaces, pa.adv.Interfaces...)
		}
	}
	pp.eligible = sameMark(sp.pool.eligible, nodes)
	pp.balanced = sp.pool.balanced
	if pp.all {
		pp.interfaces = nil
	} else {
		slices.Sort(pp.interfaces)
		pp.interfaces = slices.Compact(pp.interfaces)
	}
	slices.Sort(pp.advs)
	sp.variants[string(key)] = pp
	return pp
}

// markSelective gives every pool of pools announced by an advertisement
// with a serviceSelector what it needs to plan per combination of
// advertisements. It costs nothing when no advertisement has one.
func markSelective(in Input, usable []Node, pools map[string]*poolPlan) {
	if !slices.ContainsFunc(in.Config.L2Advertisements, func(a *config.L2Advertisement) bool { return a.ServiceSelector != nil }) {
		return
	}
	for _, adv := range in.Config.L2Advertisements {
		if adv.ServiceSelector == nil {
			continue
		}
		for _, p := range adv.Pools {
			if pp := pools[p.Name]; pp != nil && pp.selective == nil {
				pp.selective = &selectivePool{pool: pp, variants: map[string]*poolPlan{}}
			}
		}
	}
	for _, adv := range in.Config.L2Advertisements {
		pa := poolAdv{adv: adv}
		for _, n := range usable {
			if adv.NodeSelector.Matches(n.Labels) {
				pa.nodes = append(pa.nodes, n.Name)
			}
		}
		pa.self = slices.Contains(pa.nodes, in.Self)
		for _, p := range adv.Pools {
			if pp := pools[p.Name]; pp != nil && pp.selective != nil {
				pp.selective.advs = append(pp.selective.advs, pa)
			}
		}
	}
}

// servicesByAddr lists, per address, the Services using it, in the order
// of services; nil when no pool needs it.
func servicesByAddr(services []Service, pools map[string]*poolPlan) map[netip.Addr][]*Service {
	need := false
	for pp := range maps.Values(pools) {
		need = need || pp.selective != nil
	}
	if !need {
		return nil
	}
	out := map[netip.Addr][]*Service{}
	for i := range services {
		for _, a := range services[i].Addrs {
			out[a] = append(out[a], &services[i])
		}
	}
	return out
}
