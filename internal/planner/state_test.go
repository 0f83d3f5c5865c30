package planner

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/dataplane"
)

// stateL2Config adds layer 2 announcements to bgpConfig: l2only on
// every node's eth1 and, for rack=a nodes, on every interface; agg on
// rack=b nodes too (announced both ways).
const stateL2Config = bgpConfig + `
---
apiVersion: ironlb.io/v1alpha1
kind: L2Advertisement
metadata: {name: l2-all}
spec: {ipPools: [l2only], interfaces: [eth1]}
---
apiVersion: ironlb.io/v1alpha1
kind: L2Advertisement
metadata: {name: l2-rack-a}
spec:
  ipPools: [l2only]
  nodeSelector: {matchLabels: {rack: a}}
---
apiVersion: ironlb.io/v1alpha1
kind: L2Advertisement
metadata: {name: agg-rack-b}
spec:
  ipPools: [agg]
  nodeSelector: {matchLabels: {rack: b}}
  interfaces: [eth2]
`

// walk is a random sequence of changes given to one State, checked after
// every step against a plan made from scratch of the same input.
type walk struct {
	t       testing.TB
	rnd     *rand.Rand
	configs []*config.Config
	in      Input
	mode    ForwardingMode
	self    []netip.Addr
	st      *State
	// seen is the BGP plan as a consumer of TakeChanges alone knows it:
	// a copy taken when the peers change, and the prefixes the changes
	// name copied after every step.
	seen BGPPlan
}

// follow brings seen up to date from c, as the speaker does.
func (w *walk) follow(c Changes) {
	plan := w.st.BGP()
	if c.BGPPeers || w.seen.Routes == nil {
		w.seen = BGPPlan{Peers: plan.Peers, Routes: map[string]map[netip.Prefix]BGPRoute{}, Prefixes: maps.Clone(plan.Prefixes)}
		for peer, routes := range plan.Routes {
			w.seen.Routes[peer] = maps.Clone(routes)
		}
		return
	}
	for pfx := range c.BGPPrefixes {
		if d := plan.Prefixes[pfx]; d != nil {
			w.seen.Prefixes[pfx] = d
		} else {
			delete(w.seen.Prefixes, pfx)
		}
		for _, peer := range plan.Peers {
			r, ok := plan.Routes[peer.Name][pfx]
			switch {
			case ok && w.seen.Routes[peer.Name] == nil:
				w.seen.Routes[peer.Name] = map[netip.Prefix]BGPRoute{pfx: r}
			case ok:
				w.seen.Routes[peer.Name][pfx] = r
			default:
				delete(w.seen.Routes[peer.Name], pfx)
				if len(w.seen.Routes[peer.Name]) == 0 {
					delete(w.seen.Routes, peer.Name)
				}
			}
		}
	}
}

var walkAddrs = func() []netip.Addr {
	var out []netip.Addr
	for _, s := range []string{"203.0.113.96", "203.0.113.97", "203.0.113.98", "203.0.113.112", "203.0.113.113",
		"203.0.113.64", "203.0.113.65", "2001:db8:ff66::1", "2001:db8:ff66::2", "2001:db8:ff67::1", "2001:db8:ff67::2", "192.0.2.9"} {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}()

var walkNodes = []string{"a1", "a2", "b1"}

// walkConfigs are stateL2Config, the same without the rack-a BGP
// advertisement and the eth1-only L2 advertisement, and the full one with
// the rack-a L2 advertisement placed Balanced (which alone changes no
// name, node or interface of any plan: only the placement of l2only).
func walkConfigs(t testing.TB) []*config.Config {
	full := load(t, stateL2Config)
	trimmed := *full
	trimmed.BGPAdvertisements = slices.DeleteFunc(slices.Clone(full.BGPAdvertisements), func(a *config.BGPAdvertisement) bool { return a.Name == "rack-a" })
	trimmed.L2Advertisements = slices.DeleteFunc(slices.Clone(full.L2Advertisements), func(a *config.L2Advertisement) bool { return a.Name == "l2-all" })
	balanced := *full
	balanced.L2Advertisements = slices.Clone(full.L2Advertisements)
	for i, a := range balanced.L2Advertisements {
		if a.Name == "l2-rack-a" {
			b := *a
			b.Balanced = true
			balanced.L2Advertisements[i] = &b
		}
	}
	return []*config.Config{full, &trimmed, &balanced, walkSelective(t)}
}

func newWalk(t testing.TB, configs []*config.Config, seed uint64, mode ForwardingMode, mutant bool) *walk {
	w := &walk{t: t, rnd: rand.New(rand.NewPCG(seed, 19)), mode: mode, configs: configs}
	full := configs[0]
	w.in = Input{Config: full, Self: "a1"}
	w.st = NewState("a1", mode)
	w.st.forgetWithdrawn = mutant
	w.st.SetConfig(full)
	for _, n := range walkNodes {
		w.setNode(Node{Name: n, Labels: labels.Set{"rack": n[:1]}})
	}
	return w
}

func (w *walk) setNode(n Node) {
	w.in.Nodes = slices.DeleteFunc(w.in.Nodes, func(o Node) bool { return o.Name == n.Name })
	w.in.Nodes = append(w.in.Nodes, n)
	w.st.SetNodes(slices.Clone(w.in.Nodes))
}

// randomService is a Service of one of twelve keys in two namespaces.
func (w *walk) randomService() Service {
	r := w.rnd
	svc := Service{Key: fmt.Sprintf("ns%d/s%d", r.IntN(2), r.IntN(6)), Local: r.IntN(3) == 0, Labels: walkLabels[r.IntN(len(walkLabels))]}
	for range 1 + r.IntN(2) {
		if a := walkAddrs[r.IntN(len(walkAddrs))]; !slices.Contains(svc.Addrs, a) {
			svc.Addrs = append(svc.Addrs, a)
		}
	}
	ports := []Port{{Name: "http", Protocol: dataplane.TCP, Port: 80, NodePort: 30080}, {Name: "dns", Protocol: dataplane.UDP, Port: 53}}
	svc.Ports = ports[:1+r.IntN(2)]
	if r.IntN(4) == 0 {
		svc.Affinity = 10 * time.Second
	}
	if r.IntN(4) == 0 {
		svc.SourceRanges = dataplane.AllowOnly(netip.MustParsePrefix("198.51.100.0/24"))
	}
	for i := range r.IntN(4) {
		ep := Endpoint{Addr: netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), Node: walkNodes[r.IntN(3)], Ready: r.IntN(3) > 0, Ports: []Port{{Name: "http", Protocol: dataplane.TCP, Port: 8080}}}
		ep.Serving, ep.Terminating = ep.Ready || r.IntN(2) == 0, !ep.Ready
		svc.Endpoints = append(svc.Endpoints, ep)
		if ep.Ready {
			svc.Ready = true
			if !slices.Contains(svc.ReadyNodes, ep.Node) {
				svc.ReadyNodes = append(svc.ReadyNodes, ep.Node)
			}
		}
	}
	return svc
}

// step makes one random change and says which.
func (w *walk) step() string {
	r := w.rnd
	switch n := r.IntN(22); {
	case n >= 20 && len(w.in.Services) > 0:
		return w.relabel()
	case n < 10:
		svc := w.randomService()
		w.in.Services = slices.DeleteFunc(w.in.Services, func(o Service) bool { return o.Key == svc.Key })
		w.in.Services = append(w.in.Services, svc)
		w.st.SetService(svc)
		return fmt.Sprintf("set %s %v", svc.Key, svc.Addrs)
	case n < 15 && len(w.in.Services) > 0:
		i := r.IntN(len(w.in.Services))
		key := w.in.Services[i].Key
		w.in.Services = slices.Delete(w.in.Services, i, i+1)
		w.st.DeleteService(key)
		return "delete " + key
	case n < 18:
		name := walkNodes[r.IntN(3)]
		node := Node{Name: name, Labels: labels.Set{"rack": []string{"a", "b"}[r.IntN(2)]}, NetworkUnavailable: r.IntN(4) == 0}
		if r.IntN(5) == 0 {
			node.Labels[ExcludeLabel] = ""
		}
		w.setNode(node)
		return fmt.Sprintf("node %v", node)
	case n < 19 || n >= 20:
		w.in.Config = w.configs[r.IntN(len(w.configs))]
		w.st.SetConfig(w.in.Config)
		return "config"
	default:
		w.self = [][]netip.Addr{nil, {netip.MustParseAddr("198.51.100.11")}, {netip.MustParseAddr("198.51.100.12"), netip.MustParseAddr("2001:db8:5100::12")}}[r.IntN(3)]
		w.st.SetSelfAddrs(w.self)
		return fmt.Sprintf("self addresses %v", w.self)
	}
}

// diff compares the State with plans from scratch; "" when they agree.
func (w *walk) diff() string {
	want := Layer2(w.in)
	if d := gocmp.Diff(l2Comparable(want), l2Comparable(w.st.Layer2())); d != "" {
		return "layer 2 (-scratch +state):\n" + d
	}
	scratch := bgpComparable(BGP(w.in))
	if d := gocmp.Diff(scratch, bgpComparable(w.st.BGP())); d != "" {
		return "BGP (-scratch +state):\n" + d
	}
	if d := gocmp.Diff(scratch, bgpComparable(w.seen)); d != "" {
		return "BGP as followed through TakeChanges (-scratch +followed):\n" + d
	}
	if d := gocmp.Diff(fwdComparable(Forwarding(w.in, w.mode, w.self)), fwdComparable(w.st.Frontends())); d != "" {
		return "forwarding (-scratch +state):\n" + d
	}
	return ""
}

func l2Comparable(p Plan) map[string]any {
	out := map[string]any{"warnings": p.Warnings}
	for a, l := range p.L2 {
		eligible := l.Eligible.Names()
		if len(eligible) == 0 {
			eligible = nil // no node, however it is spelled
		}
		out[a.String()] = got{l.Services, l.Pool, eligible, l.Interfaces, l.Advertisements}
		if l.Eligible.Balanced() {
			out[a.String()+" placement"] = "Balanced"
		}
	}
	return out
}

func fwdComparable(fes []dataplane.Frontend) []string {
	var out []string
	for _, fe := range fes {
		out = append(out, fmt.Sprintf("%s %s/%d affinity %s ranges %s backends %v", fe.Addr, fe.Protocol, fe.Port, fe.Affinity, fe.SourceRanges, fe.Backends))
	}
	slices.SortFunc(out, cmp.Compare)
	return out
}

// run walks steps changes and returns the first disagreement.
func (w *walk) run(steps int) (history []string, diff string) {
	for range steps {
		history = append(history, w.step())
		w.follow(w.st.TakeChanges())
		if d := w.diff(); d != "" {
			return history, d
		}
	}
	return history, ""
}

// TestStateRandomOrder: after every change of a random sequence, the
// incremental plan equals the plan made from scratch, in every forwarding
// mode.
func TestStateRandomOrder(t *testing.T) {
	configs := walkConfigs(t)
	for _, mode := range ForwardingModes {
		for seed := range uint64(40) {
			w := newWalk(t, configs, seed, mode, false)
			if history, d := w.run(150); d != "" {
				t.Fatalf("mode %s seed %d: after %d steps (last: %s): %s", mode, seed, len(history), history[len(history)-1], d)
			}
		}
	}
}

// TestStateRandomOrderCatchesForgottenWithdrawal: a State that does not
// re-plan the addresses a Service stops using fails the random walk.
func TestStateRandomOrderCatchesForgottenWithdrawal(t *testing.T) {
	configs := walkConfigs(t)
	for seed := range uint64(40) {
		if _, d := newWalk(t, configs, seed, ForwardEndpoints, true).run(150); d != "" {
			return
		}
	}
	t.Fatal("the mutant that forgets withdrawn Services passed every random walk")
}

// TestStateChanges: an endpoint change of one Service changes only its
// frontend, keeps the other frontends' Backends slices, and reports
// nothing for layer 2.
func TestStateChanges(t *testing.T) {
	st := NewState("a1", ForwardEndpoints)
	st.SetConfig(load(t, stateL2Config))
	st.SetNodes([]Node{{Name: "a1", Labels: labels.Set{"rack": "a"}}})
	ep := func(ready bool) []Endpoint {
		return []Endpoint{{Addr: netip.MustParseAddr("10.0.0.1"), Node: "a1", Ready: ready, Serving: ready, Ports: []Port{{Name: "http", Protocol: dataplane.TCP, Port: 8080}}}}
	}
	svc := func(key, addr string, ready bool) Service {
		return Service{Key: key, Addrs: []netip.Addr{netip.MustParseAddr(addr)}, Ready: ready, ReadyNodes: []string{"a1"},
			Ports: []Port{{Name: "http", Protocol: dataplane.TCP, Port: 80}}, Endpoints: ep(ready)}
	}
	st.SetService(svc("ns/a", "203.0.113.64", true))
	st.SetService(svc("ns/b", "203.0.113.65", true))
	first := st.Frontends()
	if c := st.TakeChanges(); len(c.L2) != 2 || !c.Forwarding {
		t.Fatalf("after adding two Services: changes %+v, want both addresses and forwarding", c)
	}
	st.SetService(svc("ns/b", "203.0.113.65", true))
	if c := st.TakeChanges(); c.Any() {
		t.Fatalf("the same Service again changed %+v", c)
	}
	st.SetService(svc("ns/b", "203.0.113.65", false))
	c := st.TakeChanges()
	if len(c.L2) != 0 || !c.Forwarding || c.BGP() {
		t.Fatalf("an endpoint change: changes %+v, want forwarding only", c)
	}
	second := st.Frontends()
	if &first[0].Backends[0] != &second[0].Backends[0] {
		t.Error("the unchanged frontend of ns/a got a new Backends slice")
	}
	if len(second[1].Backends) != 0 {
		t.Errorf("ns/b's frontend after its endpoint turned unready: %v, want no backends", second[1].Backends)
	}
}
