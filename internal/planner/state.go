package planner

import (
	"maps"
	"net/netip"
	"reflect"
	"slices"

	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/dataplane"
	"github.com/ironlb/ironlb/internal/iprange"
)

// State is one node's plan, kept up to date change by change. A Service
// that changes re-plans only the addresses it uses and used before; a
// change of the configuration, of a Node's labels or network
// availability, or of Self's addresses (NodePort forwarding) re-plans
// every address. After any sequence of changes, the plan equals what
// Layer2, BGP and Forwarding return for the same input
// (TestStateRandomOrder), and what changed since the last TakeChanges is
// recorded, so that the speaker hands on only that.
//
// A State is not safe for concurrent use. The plans it returns are its
// own: callers read them and must not change them; they stay valid until
// the next change.
type State struct {
	self      string
	mode      ForwardingMode
	cfg       *config.Config
	nodes     map[string]Node
	selfAddrs []netip.Addr
	services  map[string]*Service
	// users holds, per address, the keys of the Services using it, sorted.
	users map[netip.Addr][]string

	// What every address shares, from the configuration and the Nodes.
	pools    map[string]*poolPlan
	warnings []Warning
	bgpCtx   bgpContext

	l2  map[netip.Addr]*L2
	bgp BGPPlan
	// bgpAddr holds each address's shares of the BGP plan, and pfxAddrs
	// the addresses with a share in each prefix, sorted.
	bgpAddr  map[netip.Addr][]bgpShare
	pfxAddrs map[netip.Prefix][]netip.Addr
	// fwd holds each address's frontends; fwdAddrs its keys, sorted;
	// frontends all of them in that order as last handed on, and fwdAt
	// where each address's begin in it. fwdPatch are the addresses whose
	// frontends changed since, keeping their number; fwdStale: others
	// changed too, so the list must be put together again.
	fwd       map[netip.Addr][]dataplane.Frontend
	fwdAddrs  []netip.Addr
	frontends []dataplane.Frontend
	fwdAt     map[netip.Addr]int
	fwdPatch  []netip.Addr
	fwdStale  bool

	changes Changes
	// forgetWithdrawn is a mutant for the tests: a Service's former
	// addresses are not re-planned when it stops using them.
	forgetWithdrawn bool
}

// Changes says what changed in a State's plan since the last
// TakeChanges.
type Changes struct {
	// L2 are the addresses whose layer 2 plan is new, changed or gone.
	L2 map[netip.Addr]bool
	// BGPPrefixes are the prefixes whose BGP plan may have changed (new,
	// changed or gone).
	BGPPrefixes map[netip.Prefix]bool
	// Warnings, BGPPeers and Forwarding: the warnings, the BGP peers or
	// the frontends changed.
	Warnings, BGPPeers, Forwarding bool
}

// BGP tells whether the BGP plan changed.
func (c Changes) BGP() bool { return c.BGPPeers || len(c.BGPPrefixes) > 0 }

// Any tells whether anything changed.
func (c Changes) Any() bool {
	return len(c.L2) > 0 || c.Warnings || c.BGP() || c.Forwarding
}

func newChanges() Changes {
	return Changes{L2: map[netip.Addr]bool{}, BGPPrefixes: map[netip.Prefix]bool{}}
}

// NewState returns the empty plan of node self, forwarding in mode.
func NewState(self string, mode ForwardingMode) *State {
	s := &State{
		self: self, mode: mode,
		nodes: map[string]Node{}, services: map[string]*Service{}, users: map[netip.Addr][]string{},
		l2: map[netip.Addr]*L2{}, bgpAddr: map[netip.Addr][]bgpShare{}, pfxAddrs: map[netip.Prefix][]netip.Addr{},
		fwd: map[netip.Addr][]dataplane.Frontend{}, fwdAt: map[netip.Addr]int{},
		changes: newChanges(),
	}
	s.bgp = BGPPlan{Routes: map[string]map[netip.Prefix]BGPRoute{}, Prefixes: map[netip.Prefix]*BGPPrefix{}}
	s.rederive()
	return s
}

// Layer2 is the layer 2 plan.
func (s *State) Layer2() Plan { return Plan{L2: s.l2, Warnings: s.warnings} }

// BGP is the BGP plan.
func (s *State) BGP() BGPPlan { return s.bgp }

// Frontends are the frontends to forward, ordered by address; an
// unchanged frontend keeps its Backends slice from one list to the next,
// which spares the dataplane comparing it. A new list is made after
// every change of forwarding, so a list handed on is never changed: a
// copy of the last one with the changed frontends replaced when no
// address gained or lost frontends, otherwise put together anew.
func (s *State) Frontends() []dataplane.Frontend {
	switch {
	case s.fwdStale:
		n := 0
		for _, a := range s.fwdAddrs {
			n += len(s.fwd[a])
		}
		s.frontends = make([]dataplane.Frontend, 0, n)
		clear(s.fwdAt)
		for _, a := range s.fwdAddrs {
			s.fwdAt[a] = len(s.frontends)
			s.frontends = append(s.frontends, s.fwd[a]...)
		}
	case len(s.fwdPatch) > 0:
		s.frontends = slices.Clone(s.frontends)
		for _, a := range s.fwdPatch {
			copy(s.frontends[s.fwdAt[a]:], s.fwd[a])
		}
	}
	s.fwdStale, s.fwdPatch = false, s.fwdPatch[:0]
	return s.frontends
}

// TakeChanges returns what changed since it was last called.
func (s *State) TakeChanges() Changes {
	c := s.changes
	s.changes = newChanges()
	return c
}

// SetConfig replaces the configuration and re-plans every address.
func (s *State) SetConfig(cfg *config.Config) {
	s.cfg = cfg
	s.rederive()
}

// SetNodes replaces the Nodes; when any changed in what the plan reads,
// every address is re-planned.
func (s *State) SetNodes(nodes []Node) {
	next := make(map[string]Node, len(nodes))
	for _, n := range nodes {
		next[n.Name] = n
	}
	if !maps.EqualFunc(s.nodes, next, sameNode) {
		s.nodes = next
		s.rederive()
	}
}

func sameNode(a, b Node) bool {
	return a.Name == b.Name && a.NetworkUnavailable == b.NetworkUnavailable && maps.Equal(a.Labels, b.Labels)
}

// SetSelfAddrs replaces Self's addresses, the backends of NodePort
// forwarding.
func (s *State) SetSelfAddrs(addrs []netip.Addr) {
	if slices.Equal(s.selfAddrs, addrs) {
		return
	}
	s.selfAddrs = slices.Clone(addrs)
	if s.mode == ForwardNodePort {
		for a := range s.users {
			s.replanForwarding(a)
		}
	}
}

// SetService adds or replaces a Service; one without addresses is
// removed.
func (s *State) SetService(svc Service) {
	if len(svc.Addrs) == 0 {
		s.DeleteService(svc.Key)
		return
	}
	old := s.services[svc.Key]
	if old != nil && reflect.DeepEqual(*old, svc) {
		return
	}
	s.services[svc.Key] = &svc
	var stale []netip.Addr
	if old != nil {
		for _, a := range old.Addrs {
			if !slices.Contains(svc.Addrs, a) {
				stale = append(stale, a)
			}
		}
	}
	for _, a := range svc.Addrs {
		s.use(a, svc.Key)
	}
	s.unuse(stale, svc.Key)
	s.replan(svc.Addrs)
}

// DeleteService removes a Service, if it is there.
func (s *State) DeleteService(key string) {
	old := s.services[key]
	if old == nil {
		return
	}
	delete(s.services, key)
	s.unuse(old.Addrs, key)
}

// Services are the keys of the Services in the plan, in no order.
func (s *State) Services() []string { return slices.Collect(maps.Keys(s.services)) }

// use records that Service key uses a.
func (s *State) use(a netip.Addr, key string) {
	keys := s.users[a]
	if i, found := slices.BinarySearch(keys, key); !found {
		s.users[a] = slices.Insert(keys, i, key)
	}
}

// unuse records that Service key no longer uses addrs, and re-plans them.
func (s *State) unuse(addrs []netip.Addr, key string) {
	for _, a := range addrs {
		keys := s.users[a]
		if i, found := slices.BinarySearch(keys, key); found {
			keys = slices.Delete(keys, i, i+1)
		}
		if len(keys) == 0 {
			delete(s.users, a)
		} else {
			s.users[a] = keys
		}
	}
	if !s.forgetWithdrawn {
		s.replan(addrs)
	}
}

// rederive works out again what every address shares, and re-plans them
// all.
func (s *State) rederive() {
	var nodes []Node
	var self *Node
	for _, name := range slices.Sorted(maps.Keys(s.nodes)) {
		n := s.nodes[name]
		nodes = append(nodes, n)
		if name == s.self {
			self = &n
		}
	}
	warnings := s.warnings
	if s.cfg != nil {
		s.pools, s.warnings = poolPlans(Input{Config: s.cfg, Nodes: nodes, Self: s.self}, usableNodes(nodes))
	} else {
		s.pools, s.warnings = nil, nil
	}
	if !slices.Equal(warnings, s.warnings) {
		s.changes.Warnings = true
	}
	peers := s.bgpCtx.peers
	s.bgpCtx = newBGPContext(s.cfg, self)
	s.bgp.Peers = s.bgpCtx.peers
	if !slices.Equal(peers, s.bgp.Peers) {
		s.changes.BGPPeers = true
	}
	// Addresses no longer used were re-planned when their last Service
	// left; everything planned is used.
	s.replan(slices.Collect(maps.Keys(s.users)))
}

// replan plans addrs again.
func (s *State) replan(addrs []netip.Addr) {
	var prefixes []netip.Prefix
	for _, a := range addrs {
		s.replanL2(a)
		prefixes = s.replanBGPShares(a, prefixes)
		s.replanForwarding(a)
	}
	slices.SortFunc(prefixes, iprange.ComparePrefixes)
	for _, pfx := range slices.Compact(prefixes) {
		s.replanPrefix(pfx)
	}
}

// poolFor is the pool of a; nil without a configuration.
func (s *State) poolFor(a netip.Addr) *config.Pool {
	if s.cfg == nil {
		return nil
	}
	return s.cfg.PoolFor(a)
}

// servicesOf are the Services using a, by key.
func (s *State) servicesOf(a netip.Addr) []*Service {
	keys := s.users[a]
	out := make([]*Service, len(keys))
	for i, k := range keys {
		out[i] = s.services[k]
	}
	return out
}

// replanL2 plans a's layer 2 announcement, as Layer2 does.
func (s *State) replanL2(a netip.Addr) {
	var l *L2
	if pool := s.poolFor(a); pool != nil && s.pools[pool.Name] != nil && len(s.users[a]) > 0 {
		svcs := s.servicesOf(a)
		if pp := s.pools[pool.Name].forServices(svcs); pp != nil {
			l = &L2{Pool: pool.Name, Eligible: pp.eligible, Interfaces: pp.interfaces, Advertisements: pp.advs, Services: slices.Clone(s.users[a])}
			if slices.ContainsFunc(svcs, func(svc *Service) bool { return svc.Local }) {
				if nodes, narrowed := localNodes(pp.eligible, svcs); narrowed {
					l.Eligible = sameMark(pp.eligible, nodes)
				}
			}
		}
	}
	old := s.l2[a]
	switch {
	case l == nil && old == nil:
		return
	case l == nil:
		delete(s.l2, a)
	case old != nil && sameL2(old, l):
		return
	default:
		s.l2[a] = l
	}
	s.changes.L2[a] = true
}

func sameL2(a, b *L2) bool {
	return a.Pool == b.Pool && slices.Equal(a.Services, b.Services) && slices.Equal(a.Interfaces, b.Interfaces) &&
		slices.Equal(a.Advertisements, b.Advertisements) && slices.Equal(a.Eligible.Names(), b.Eligible.Names()) && a.Eligible.Balanced() == b.Eligible.Balanced()
}

// replanBGPShares works out a's shares of the BGP plan, and appends to
// prefixes those whose plan that changes.
func (s *State) replanBGPShares(a netip.Addr, prefixes []netip.Prefix) []netip.Prefix {
	var shares []bgpShare
	for _, svc := range s.servicesOf(a) {
		shares = s.bgpCtx.shares(s.self, a, svc, shares)
	}
	old := s.bgpAddr[a]
	if slices.Equal(old, shares) {
		return prefixes
	}
	for _, sh := range old {
		prefixes = append(prefixes, sh.pfx)
		s.pfxAddrs[sh.pfx] = removeAddr(s.pfxAddrs[sh.pfx], a)
	}
	for _, sh := range shares {
		prefixes = append(prefixes, sh.pfx)
		list := s.pfxAddrs[sh.pfx]
		if i, found := slices.BinarySearchFunc(list, a, netip.Addr.Compare); !found {
			s.pfxAddrs[sh.pfx] = slices.Insert(list, i, a)
		}
	}
	if len(shares) == 0 {
		delete(s.bgpAddr, a)
	} else {
		s.bgpAddr[a] = shares
	}
	return prefixes
}

func removeAddr(list []netip.Addr, a netip.Addr) []netip.Addr {
	if i, found := slices.BinarySearchFunc(list, a, netip.Addr.Compare); found {
		return slices.Delete(list, i, i+1)
	}
	return list
}

// replanPrefix puts pfx's routes and description together again from the
// shares of the addresses it covers.
func (s *State) replanPrefix(pfx netip.Prefix) {
	s.changes.BGPPrefixes[pfx] = true
	if old := s.bgp.Prefixes[pfx]; old != nil {
		for _, peer := range old.Peers {
			delete(s.bgp.Routes[peer], pfx)
			if len(s.bgp.Routes[peer]) == 0 {
				delete(s.bgp.Routes, peer)
			}
		}
		delete(s.bgp.Prefixes, pfx)
	}
	if len(s.pfxAddrs[pfx]) == 0 {
		delete(s.pfxAddrs, pfx)
		return
	}
	for _, a := range s.pfxAddrs[pfx] {
		for _, sh := range s.bgpAddr[a] {
			if sh.pfx == pfx {
				s.bgp.add(sh)
			}
		}
	}
	s.bgp.tidy(pfx)
}

// replanForwarding works out a's frontends, as Forwarding does, keeping
// those that did not change as they were.
func (s *State) replanForwarding(a netip.Addr) {
	var fes []dataplane.Frontend
	if s.mode != ForwardNone && s.poolFor(a) != nil {
		type portKey struct {
			proto dataplane.Protocol
			port  uint16
		}
		seen := map[portKey]bool{}
		for _, svc := range s.servicesOf(a) {
			for _, p := range svc.Ports {
				if k := (portKey{p.Protocol, p.Port}); !seen[k] {
					seen[k] = true
					fes = append(fes, frontend(svc, a, p, s.mode, s.self, s.selfAddrs))
				}
			}
		}
	}
	old := s.fwd[a]
	same := len(old) == len(fes)
	for i := range fes {
		if i < len(old) && old[i].Equal(&fes[i]) {
			fes[i] = old[i]
		} else {
			same = false
		}
	}
	if same {
		return
	}
	s.changes.Forwarding = true
	if len(old) == len(fes) && !s.fwdStale {
		s.fwdPatch = append(s.fwdPatch, a)
	} else {
		s.fwdStale = true
	}
	i, found := slices.BinarySearchFunc(s.fwdAddrs, a, netip.Addr.Compare)
	switch {
	case len(fes) == 0:
		delete(s.fwd, a)
		if found {
			s.fwdAddrs = slices.Delete(s.fwdAddrs, i, i+1)
		}
	default:
		s.fwd[a] = fes
		if !found {
			s.fwdAddrs = slices.Insert(s.fwdAddrs, i, a)
		}
	}
}
