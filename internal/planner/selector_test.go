package planner

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/internal/config"
)

// selectorConfig: pool "lan" announced in layer 2 by "web" (tier=web
// Services, rack=a nodes, eth0) and by "db" (tier=db Services, rack=b
// nodes, eth1); pool "bgp" advertised to "edge" by "web-bgp" (tier=web
// Services, community 65000:1) and by "some-bgp" (tier=db Services,
// aggregated to /28).
const selectorConfig = `
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata: {name: lan}
spec: {addresses: [203.0.113.64/28]}
---
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata: {name: bgp}
spec: {addresses: [203.0.113.96/28]}
---
apiVersion: ironlb.io/v1alpha1
kind: L2Advertisement
metadata: {name: web}
spec:
  ipPools: [lan]
  nodeSelector: {matchLabels: {rack: a}}
  serviceSelector: {matchLabels: {tier: web}}
  interfaces: [eth0]
---
apiVersion: ironlb.io/v1alpha1
kind: L2Advertisement
metadata: {name: db}
spec:
  ipPools: [lan]
  nodeSelector: {matchLabels: {rack: b}}
  serviceSelector: {matchExpressions: [{key: tier, operator: In, values: [db]}]}
  interfaces: [eth1]
---
apiVersion: ironlb.io/v1alpha1
kind: BGPPeer
metadata: {name: edge}
spec: {peerAddress: 198.51.100.1, peerASN: 64500, myASN: 64512}
---
apiVersion: ironlb.io/v1alpha1
kind: BGPAdvertisement
metadata: {name: web-bgp}
spec:
  ipPools: [bgp]
  serviceSelector: {matchLabels: {tier: web}}
  communities: ["65000:1"]
---
apiVersion: ironlb.io/v1alpha1
kind: BGPAdvertisement
metadata: {name: some-bgp}
spec:
  ipPools: [bgp]
  serviceSelector: {matchLabels: {tier: db}}
  aggregationLength: 28
`

func selSvc(key, addr string, lbls labels.Set, ready bool) Service {
	s := Service{Key: key, Addrs: []netip.Addr{netip.MustParseAddr(addr)}, Labels: lbls, Ready: ready}
	if ready {
		s.ReadyNodes = []string{"a1"}
	}
	return s
}

// TestLayer2ServiceSelector: an L2Advertisement announces only addresses
// one of whose Services it selects; an address shared by Services that
// different advertisements select gets the nodes and interfaces of both.
func TestLayer2ServiceSelector(t *testing.T) {
	cfg := load(t, selectorConfig)
	nodes := []Node{{Name: "a1", Labels: labels.Set{"rack": "a"}}, {Name: "b1", Labels: labels.Set{"rack": "b"}}}
	web, db := labels.Set{"tier": "web"}, labels.Set{"tier": "db"}
	services := []Service{
		selSvc("ns/web", "203.0.113.64", web, true),
		selSvc("ns/db", "203.0.113.65", db, true),
		selSvc("ns/plain", "203.0.113.66", nil, true),
		// .67: a selected Service shares with one that no advertisement selects.
		selSvc("ns/web2", "203.0.113.67", web, false),
		selSvc("ns/plain2", "203.0.113.67", labels.Set{"tier": "other"}, true),
		// .68: Services that different advertisements select.
		selSvc("ns/web3", "203.0.113.68", web, true),
		selSvc("ns/db3", "203.0.113.68", db, true),
	}
	for _, tc := range []struct {
		self string
		want map[string]got
	}{{
		self: "a1",
		want: map[string]got{
			"203.0.113.64": {[]string{"ns/web"}, "lan", []string{"a1"}, []string{"eth0"}, []string{"web"}},
			"203.0.113.65": {[]string{"ns/db"}, "lan", []string{"b1"}, nil, nil},
			"203.0.113.67": {[]string{"ns/plain2", "ns/web2"}, "lan", []string{"a1"}, []string{"eth0"}, []string{"web"}},
			"203.0.113.68": {[]string{"ns/db3", "ns/web3"}, "lan", []string{"a1", "b1"}, []string{"eth0"}, []string{"web"}},
		},
	}, {
		self: "b1",
		want: map[string]got{
			"203.0.113.64": {[]string{"ns/web"}, "lan", []string{"a1"}, nil, nil},
			"203.0.113.65": {[]string{"ns/db"}, "lan", []string{"b1"}, []string{"eth1"}, []string{"db"}},
			"203.0.113.67": {[]string{"ns/plain2", "ns/web2"}, "lan", []string{"a1"}, nil, nil},
			"203.0.113.68": {[]string{"ns/db3", "ns/web3"}, "lan", []string{"a1", "b1"}, []string{"eth1"}, []string{"db"}},
		},
	}} {
		in := Input{Config: cfg, Nodes: nodes, Services: services, Self: tc.self}
		check := func(what string, plan Plan) {
			g := map[string]got{}
			for a, l := range plan.L2 {
				g[a.String()] = got{l.Services, l.Pool, l.Eligible.Names(), l.Interfaces, l.Advertisements}
			}
			if d := cmp.Diff(tc.want, g); d != "" {
				t.Errorf("self %s, %s (-want +got):\n%s", tc.self, what, d)
			}
		}
		check("Layer2", Layer2(in))
		st := NewState(tc.self, ForwardNone)
		st.SetConfig(cfg)
		st.SetNodes(nodes)
		for _, svc := range services {
			st.SetService(svc)
		}
		check("State", st.Layer2())
	}
}

// TestBGPServiceSelector: a BGPAdvertisement advertises a Service's
// address only when it selects the Service; a shared address (or an
// aggregate) is advertised when it selects one of its Services that has a
// ready endpoint, and lists only those Services.
func TestBGPServiceSelector(t *testing.T) {
	cfg := load(t, selectorConfig)
	nodes := []Node{{Name: "a1", Labels: labels.Set{"rack": "a"}}}
	web, db := labels.Set{"tier": "web"}, labels.Set{"tier": "db"}
	services := []Service{
		selSvc("ns/web", "203.0.113.97", web, true),
		selSvc("ns/plain", "203.0.113.98", nil, true),
		// .99: the selected Service has no ready endpoint, the other is
		// not selected: nothing is advertised.
		selSvc("ns/web-down", "203.0.113.99", web, false),
		selSvc("ns/plain-up", "203.0.113.99", nil, true),
		// .100: shared by a selected ready Service and one not selected.
		selSvc("ns/web-up", "203.0.113.100", web, true),
		selSvc("ns/plain-up2", "203.0.113.100", nil, true),
		// The aggregate of some-bgp covers the db Service only.
		selSvc("ns/db", "203.0.113.101", db, true),
	}
	want := bgpGot{
		Peers: []string{"edge"},
		Routes: map[string]map[string]routeGot{"edge": {
			"203.0.113.97/32":  {Communities: []string{"65000:1"}},
			"203.0.113.100/32": {Communities: []string{"65000:1"}},
			"203.0.113.96/28":  {},
		}},
		Prefixes: map[string]BGPPrefix{
			"203.0.113.97/32":  {Services: []string{"ns/web"}, Peers: []string{"edge"}, Advertisements: []string{"web-bgp"}},
			"203.0.113.100/32": {Services: []string{"ns/web-up"}, Peers: []string{"edge"}, Advertisements: []string{"web-bgp"}},
			"203.0.113.96/28":  {Services: []string{"ns/db"}, Peers: []string{"edge"}, Advertisements: []string{"some-bgp"}},
		},
	}
	in := Input{Config: cfg, Nodes: nodes, Services: services, Self: "a1"}
	if d := cmp.Diff(want, bgpComparable(BGP(in))); d != "" {
		t.Errorf("BGP (-want +got):\n%s", d)
	}
	st := NewState("a1", ForwardNone)
	st.SetConfig(cfg)
	st.SetNodes(nodes)
	for _, svc := range services {
		st.SetService(svc)
	}
	if d := cmp.Diff(want, bgpComparable(st.BGP())); d != "" {
		t.Errorf("State (-want +got):\n%s", d)
	}
	// Relabelling ns/plain to tier=web advertises its address, and the
	// change names the prefix.
	st.TakeChanges()
	st.SetService(selSvc("ns/plain", "203.0.113.98", web, true))
	if c := st.TakeChanges(); !c.BGPPrefixes[netip.MustParsePrefix("203.0.113.98/32")] {
		t.Errorf("relabelling a Service: changed prefixes %v, want 203.0.113.98/32 among them", c.BGPPrefixes)
	}
	if st.BGP().Prefixes[netip.MustParsePrefix("203.0.113.98/32")] == nil {
		t.Error("after relabelling ns/plain to tier=web, 203.0.113.98/32 is not advertised")
	}
}

// walkSelectors adds serviceSelectors to stateL2Config for the random
// walk (TestStateRandomOrder): l2-all and the "all" BGP advertisement
// select tier=web Services, l2-rack-a those not tier=db, and a further L2
// advertisement announces l2only from rack=b nodes on eth3 for tier=db
// Services.
var walkSelectors = strings.NewReplacer(
	"spec: {ipPools: [l2only], interfaces: [eth1]}",
	"spec: {ipPools: [l2only], interfaces: [eth1], serviceSelector: {matchLabels: {tier: web}}}",
	"  ipPools: [l2only]\n  nodeSelector: {matchLabels: {rack: a}}\n",
	"  ipPools: [l2only]\n  nodeSelector: {matchLabels: {rack: a}}\n  serviceSelector: {matchExpressions: [{key: tier, operator: NotIn, values: [db]}]}\n",
	"  ipPools: [bgp]\n  communities: [\"65000:100\", no-export]\n",
	"  ipPools: [bgp]\n  serviceSelector: {matchLabels: {tier: web}}\n  communities: [\"65000:100\", no-export]\n",
).Replace(stateL2Config) + `
---
apiVersion: ironlb.io/v1alpha1
kind: L2Advertisement
metadata: {name: l2-db}
spec:
  ipPools: [l2only]
  nodeSelector: {matchLabels: {rack: b}}
  serviceSelector: {matchLabels: {tier: db}}
  interfaces: [eth3]
`

// walkLabels are the labels the random walk gives its Services.
var walkLabels = []labels.Set{nil, {"tier": "web"}, {"tier": "db"}}

// walkSelective is the walk's configuration with serviceSelectors.
func walkSelective(t testing.TB) *config.Config {
	cfg := load(t, walkSelectors)
	n := 0
	for _, a := range cfg.L2Advertisements {
		if a.ServiceSelector != nil {
			n++
		}
	}
	for _, a := range cfg.BGPAdvertisements {
		if a.ServiceSelector != nil {
			n++
		}
	}
	if n != 4 {
		t.Fatalf("walkSelectors has %d advertisements with a serviceSelector, want 4: its replacements no longer match stateL2Config", n)
	}
	return cfg
}

// relabel changes only the labels of one of the walk's Services, as a
// user relabelling it does.
func (w *walk) relabel() string {
	i := w.rnd.IntN(len(w.in.Services))
	svc := w.in.Services[i]
	svc.Labels = walkLabels[w.rnd.IntN(len(walkLabels))]
	w.in.Services[i] = svc
	w.st.SetService(svc)
	return fmt.Sprintf("relabel %s %v", svc.Key, svc.Labels)
}
