// Package planner is the speaker's brain: from the configuration, the
// cluster's Nodes and the Services' addresses and endpoints, it works out
// which nodes may announce each address in layer 2 mode and on which
// interfaces this node would answer. It is pure; the speaker feeds its
// answer to the election table and the ARP/NDP responders.
package planner

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/dataplane"
	"github.com/ironlb/ironlb/internal/election"
)

// ExcludeLabel keeps a node from announcing any address.
const ExcludeLabel = "node.kubernetes.io/exclude-from-external-load-balancers"

// Node is what the planner needs of a Node.
type Node struct {
	Name   string
	Labels labels.Set
	// NetworkUnavailable: the node's NetworkUnavailable condition is True.
	NetworkUnavailable bool
}

// Service is what the planner needs of a Service ironlb handles.
type Service struct {
	// Key is namespace/name.
	Key string
	// Addrs are the addresses in the Service's status.
	Addrs []netip.Addr
	// Local: externalTrafficPolicy is Local, so only nodes holding a
	// ready endpoint may announce.
	Local bool
	// ReadyNodes are the nodes holding a ready endpoint of the Service.
	ReadyNodes []string
	// Ready: the Service has a ready endpoint (on some node or none).
	Ready bool
	// Ports, Endpoints and Affinity (the sessionAffinity ClientIP
	// timeout, 0 without affinity) are what forwarding needs.
	Ports     []Port
	Endpoints []Endpoint
	Affinity  time.Duration
	// SourceRanges are the clients the Service accepts
	// (loadBalancerSourceRanges); nil: every client.
	SourceRanges *dataplane.SourceRanges
	// Labels are the Service's labels, which advertisements'
	// serviceSelectors match.
	Labels labels.Set
}

// Input is everything a plan depends on.
type Input struct {
	Config   *config.Config
	Nodes    []Node
	Services []Service
	// Self is this speaker's node.
	Self string
}

// L2 is the plan for one address announced in layer 2 mode.
type L2 struct {
	// Services are the keys of the Services using the address, sorted.
	Services []string
	// Pool is the name of the address's pool.
	Pool string
	// Eligible are the nodes that may announce it.
	Eligible *election.Nodes
	// Interfaces are where Self answers when it owns the address; nil
	// means every up, non-loopback Ethernet interface.
	Interfaces []string
	// Advertisements are the L2Advertisements that select Self for the
	// address's pool, sorted (they name the interfaces).
	Advertisements []string
}

// Plan is the layer 2 plan of every address.
type Plan struct {
	L2 map[netip.Addr]*L2
	// Warnings are configuration that does nothing on this cluster (an
	// L2Advertisement selecting no node), sorted by name.
	Warnings []Warning
}

// Warning is an object that has no effect.
type Warning struct {
	// Kind and Name name the object.
	Kind, Name string
	// Message says what and why.
	Message string
}

// poolPlan is what every address of a pool shares.
type poolPlan struct {
	eligible   *election.Nodes
	interfaces []string
	all        bool // some advertisement selecting Self names no interface
	advs       []string
	// selective is set when an advertisement of the pool has a
	// serviceSelector: the plan of an address then depends on its
	// Services (forServices).
	selective *selectivePool
	// balanced: some advertisement announcing the pool asks for balanced
	// placement, so its eligible set is marked (election.Nodes.Balance).
	balanced bool
}

// Layer2 plans every address of the Services that belongs to a pool
// announced in layer 2 mode.
func Layer2(in Input) Plan {
	pools, warnings := poolPlans(in, usableNodes(in.Nodes))
	// local marks the addresses that a Local Service uses: only their
	// eligible nodes depend on the Services (localNodes).
	l2, local := addressPlans(in, pools)
	if len(local) > 0 {
		narrowLocal(l2, in.Services, local)
	}
	for _, l := range l2 {
		slices.Sort(l.Services)
	}
	return Plan{L2: l2, Warnings: warnings}
}

// usableNodes are the nodes that may announce: not excluded, network
// available.
func usableNodes(nodes []Node) []Node {
	usable := make([]Node, 0, len(nodes))
	for _, n := range nodes {
		if _, excluded := n.Labels[ExcludeLabel]; !excluded && !n.NetworkUnavailable {
			usable = append(usable, n)
		}
	}
	return usable
}

// poolPlans works out, per pool announced in layer 2 mode, what its
// addresses share, and warns of every L2Advertisement that selects none of
// the usable nodes.
func poolPlans(in Input, usable []Node) (map[string]*poolPlan, []Warning) {
	var warnings []Warning
	pools := map[string]*poolPlan{}
	names := map[string][]string{}
	for _, adv := range in.Config.L2Advertisements {
		var selected []string
		for _, n := range usable {
			if adv.NodeSelector.Matches(n.Labels) {
				selected = append(selected, n.Name)
			}
		}
		if len(selected) == 0 {
			warnings = append(warnings, Warning{"L2Advertisement", adv.Name,
				fmt.Sprintf("spec.nodeSelector selects none of the %d nodes that may announce (not excluded, network available), so it announces nothing", len(usable))})
		}
		for _, p := range adv.Pools {
			pp := pools[p.Name]
			if pp == nil {
				pp = &poolPlan{}
				pools[p.Name] = pp
			}
			names[p.Name] = append(names[p.Name], selected...)
			pp.balanced = pp.balanced || adv.Balanced
			if slices.Contains(selected, in.Self) {
				pp.advs = append(pp.advs, adv.Name)
				if len(adv.Interfaces) == 0 {
					pp.all = true
				}
				pp.interfaces = append(pp.interfaces, adv.Interfaces...)
			}
		}
	}
	for name, pp := range pools {
		pp.eligible = election.NewNodes(names[name]...)
		if pp.balanced {
			pp.eligible = pp.eligible.Balance()
		}
		if pp.all {
			pp.interfaces = nil
		} else {
			slices.Sort(pp.interfaces)
			pp.interfaces = slices.Compact(pp.interfaces)
		}
		slices.Sort(pp.advs)
	}
	markSelective(in, usable, pools)
	return pools, warnings
}

// addressPlans plans every address of the Services that belongs to one of
// pools, and marks those that a Local Service uses.
func addressPlans(in Input, pools map[string]*poolPlan) (map[netip.Addr]*L2, map[netip.Addr]bool) {
	plans := map[netip.Addr]*L2{}
	local := map[netip.Addr]bool{}
	users := servicesByAddr(in.Services, pools)
	for _, svc := range in.Services {
		for _, a := range svc.Addrs {
			pool := in.Config.PoolFor(a)
			if pool == nil || pools[pool.Name] == nil {
				continue
			}
			pp := pools[pool.Name].forServices(users[a])
			if pp == nil {
				continue
			}
			l := plans[a]
			if l == nil {
				l = &L2{Pool: pool.Name, Eligible: pp.eligible, Interfaces: pp.interfaces, Advertisements: pp.advs}
				plans[a] = l
			}
			l.Services = append(l.Services, svc.Key)
			if svc.Local {
				local[a] = true
			}
		}
	}
	return plans, local
}

// narrowLocal narrows the eligible nodes of the addresses that a Local
// Service uses (localNodes).
func narrowLocal(plans map[netip.Addr]*L2, services []Service, local map[netip.Addr]bool) {
	users := map[netip.Addr][]*Service{}
	for i := range services {
		for _, a := range services[i].Addrs {
			if local[a] {
				users[a] = append(users[a], &services[i])
			}
		}
	}
	for a, svcs := range users {
		if nodes, narrowed := localNodes(plans[a].Eligible, svcs); narrowed {
			plans[a].Eligible = sameMark(plans[a].Eligible, nodes)
		}
	}
}

// sameMark is the set of nodes, marked balanced when pool's set is.
func sameMark(pool *election.Nodes, nodes []string) *election.Nodes {
	set := election.NewNodes(nodes...)
	if pool.Balanced() {
		return set.Balance()
	}
	return set
}

// localNodes works out where an address used by svcs may be announced,
// among the eligible nodes of its pool; narrowed is false when the pool's
// set stands as it is (no Service using the address is Local).
//
// Within a namespace, Services sharing an address must select the same
// pods, so the address goes only to nodes that every Local one of them
// allows; with no such node, nobody announces it, as for a lone Local
// Service without ready endpoints.
//
// Across namespaces a selector names different pods, and one tenant must
// not be able to take an address away from another. Each namespace's
// Services narrow the nodes only for that namespace; a namespace left with
// no node (Local Services without ready endpoints) is left out, since it
// has nothing to serve. The address goes to the nodes every remaining
// namespace allows, or, when they have none in common, to those that any
// of them allows. The controller lets Local Services share only within a
// namespace, so this arbitrates only sharing that predates that rule and
// the moment between a Service turning Local and the controller moving it.
func localNodes(eligible *election.Nodes, svcs []*Service) (nodes []string, narrowed bool) {
	type scope struct {
		local bool
		nodes []string
	}
	scopes := map[string]*scope{}
	var order []string
	for _, svc := range svcs {
		ns, _, _ := strings.Cut(svc.Key, "/")
		sc := scopes[ns]
		if sc == nil {
			sc = &scope{}
			scopes[ns] = sc
			order = append(order, ns)
		}
		if !svc.Local {
			continue
		}
		ready := slices.DeleteFunc(slices.Clone(svc.ReadyNodes), func(n string) bool { return !eligible.Contains(n) })
		if sc.local {
			ready = intersect(sc.nodes, ready)
		}
		sc.local, sc.nodes = true, ready
	}
	if len(scopes) == 1 {
		sc := scopes[order[0]]
		return sc.nodes, sc.local
	}
	var sets [][]string
	narrowing := false
	for _, ns := range order {
		sc := scopes[ns]
		switch {
		case !sc.local:
			sets = append(sets, eligible.Names())
		case len(sc.nodes) > 0:
			sets = append(sets, sc.nodes)
			narrowing = true
		}
	}
	if !narrowing {
		// No namespace narrows: either none is Local, or the Local ones
		// have no node to offer and do not count.
		if len(sets) > 0 {
			return nil, false
		}
		return nil, true
	}
	common := sets[0]
	for _, s := range sets[1:] {
		common = intersect(common, s)
	}
	if len(common) > 0 {
		return common, true
	}
	var union []string
	for _, s := range sets {
		union = append(union, s...)
	}
	return union, true
}

func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}
