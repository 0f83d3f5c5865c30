package planner

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/labels"
)

// bgpConfig: pool "bgp" (IPv4 and IPv6) advertised by "all" to every peer
// with a community, and by "rack-a" (nodes labelled rack=a) to the iBGP
// peer "core" only, aggregated, with a local preference and a large
// community; pool "agg" advertised as /28 and /120 aggregates by "agg"
// (local preference 100) and "agg-core" (to "core" only, 300). Peer
// "edge" (eBGP, IPv4) selects every node, "core" (iBGP, IPv4) rack=a
// nodes, "edge6" (eBGP, IPv6) every node.
const bgpConfig = `
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata: {name: bgp}
spec: {addresses: [203.0.113.96/28, 2001:db8:ff66::/124]}
---
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata: {name: agg}
spec: {addresses: [203.0.113.112/28, 2001:db8:ff67::/120]}
---
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata: {name: l2only}
spec: {addresses: [203.0.113.64/28]}
---
apiVersion: ironlb.io/v1alpha1
kind: BGPPeer
metadata: {name: edge}
spec: {peerAddress: 198.51.100.1, peerASN: 64500, myASN: 64512}
---
apiVersion: ironlb.io/v1alpha1
kind: BGPPeer
metadata: {name: edge6}
spec: {peerAddress: "2001:db8:5100::1", peerASN: 64500, myASN: 64512}
---
apiVersion: ironlb.io/v1alpha1
kind: BGPPeer
metadata: {name: core}
spec:
  peerAddress: 198.51.100.2
  peerASN: 64512
  myASN: 64512
  nodeSelector: {matchLabels: {rack: a}}
---
apiVersion: ironlb.io/v1alpha1
kind: BGPAdvertisement
metadata: {name: all}
spec:
  ipPools: [bgp]
  communities: ["65000:100", no-export]
  localPref: 50
---
apiVersion: ironlb.io/v1alpha1
kind: BGPAdvertisement
metadata: {name: rack-a}
spec:
  ipPools: [bgp]
  peers: [core]
  nodeSelector: {matchLabels: {rack: a}}
  aggregationLength: 30
  localPref: 200
  communities: ["large:64512:1:2", "65000:100"]
---
apiVersion: ironlb.io/v1alpha1
kind: BGPAdvertisement
metadata: {name: agg}
spec:
  ipPools: [agg]
  aggregationLength: 28
  aggregationLengthV6: 120
  localPref: 100
---
apiVersion: ironlb.io/v1alpha1
kind: BGPAdvertisement
metadata: {name: agg-core}
spec:
  ipPools: [agg]
  peers: [core]
  aggregationLength: 28
  localPref: 300
  communities: ["65000:200"]
`

// bgpGot is a BGP plan in comparable form.
type bgpGot struct {
	Peers    []string
	Routes   map[string]map[string]routeGot
	Prefixes map[string]BGPPrefix
}

type routeGot struct {
	LocalPref   any
	Communities []string
}

func bgpComparable(p BGPPlan) bgpGot {
	g := bgpGot{Routes: map[string]map[string]routeGot{}, Prefixes: map[string]BGPPrefix{}}
	for _, peer := range p.Peers {
		g.Peers = append(g.Peers, peer.Name)
	}
	for peer, routes := range p.Routes {
		g.Routes[peer] = map[string]routeGot{}
		for pfx, r := range routes {
			var rg routeGot
			if r.LocalPref != nil {
				rg.LocalPref = *r.LocalPref
			}
			for _, c := range r.Communities {
				rg.Communities = append(rg.Communities, c.String())
			}
			g.Routes[peer][pfx.String()] = rg
		}
	}
	for pfx, d := range p.Prefixes {
		g.Prefixes[pfx.String()] = *d
	}
	return g
}

func TestBGP(t *testing.T) {
	cfg := load(t, bgpConfig)
	rackA := Node{Name: "a1", Labels: labels.Set{"rack": "a"}}
	rackB := Node{Name: "b1", Labels: labels.Set{"rack": "b"}}
	svc := func(key string, local bool, ready []string, addrs ...string) Service {
		s := Service{Key: key, Local: local, ReadyNodes: ready, Ready: len(ready) > 0}
		for _, a := range addrs {
			s.Addrs = append(s.Addrs, netip.MustParseAddr(a))
		}
		return s
	}
	std := routeGot{Communities: []string{"65000:100", "no-export"}}
	cases := []struct {
		name     string
		nodes    []Node
		self     string
		services []Service
		want     bgpGot
	}{{
		name:     "ebgp peers get the address with the advertisement's communities and no local preference",
		nodes:    []Node{rackA, rackB},
		self:     "b1",
		services: []Service{svc("ns/web", false, []string{"a1"}, "203.0.113.97", "2001:db8:ff66::7")},
		want: bgpGot{
			Peers: []string{"edge", "edge6"},
			Routes: map[string]map[string]routeGot{
				"edge":  {"203.0.113.97/32": std},
				"edge6": {"2001:db8:ff66::7/128": std},
			},
			Prefixes: map[string]BGPPrefix{
				"203.0.113.97/32":      {Services: []string{"ns/web"}, Peers: []string{"edge"}, Advertisements: []string{"all"}},
				"2001:db8:ff66::7/128": {Services: []string{"ns/web"}, Peers: []string{"edge6"}, Advertisements: []string{"all"}},
			},
		},
	}, {
		name:     "the iBGP peer gets the highest local preference and the union of communities, per prefix",
		nodes:    []Node{rackA, rackB},
		self:     "a1",
		services: []Service{svc("ns/web", false, []string{"b1"}, "203.0.113.97")},
		want: bgpGot{
			Peers: []string{"core", "edge", "edge6"},
			Routes: map[string]map[string]routeGot{
				"edge": {"203.0.113.97/32": std},
				"core": {
					"203.0.113.97/32": {LocalPref: uint32(50), Communities: []string{"65000:100", "no-export"}},
					"203.0.113.96/30": {LocalPref: uint32(200), Communities: []string{"65000:100", "large:64512:1:2"}},
				},
			},
			Prefixes: map[string]BGPPrefix{
				"203.0.113.97/32": {Services: []string{"ns/web"}, Peers: []string{"core", "edge"}, Advertisements: []string{"all"}},
				"203.0.113.96/30": {Services: []string{"ns/web"}, Peers: []string{"core"}, Advertisements: []string{"rack-a"}},
			},
		},
	}, {
		name:  "aggregates cover several Services",
		nodes: []Node{rackB},
		self:  "b1",
		services: []Service{
			svc("ns/a", false, []string{"b1"}, "203.0.113.113", "2001:db8:ff67::1"),
			svc("ns/b", false, []string{"b1"}, "203.0.113.120"),
		},
		want: bgpGot{
			Peers: []string{"edge", "edge6"},
			Routes: map[string]map[string]routeGot{
				"edge":  {"203.0.113.112/28": {}},
				"edge6": {"2001:db8:ff67::/120": {}},
			},
			Prefixes: map[string]BGPPrefix{
				"203.0.113.112/28":    {Services: []string{"ns/a", "ns/b"}, Peers: []string{"edge"}, Advertisements: []string{"agg"}},
				"2001:db8:ff67::/120": {Services: []string{"ns/a"}, Peers: []string{"edge6"}, Advertisements: []string{"agg"}},
			},
		},
	}, {
		name:     "two advertisements of one prefix to one peer merge",
		nodes:    []Node{rackA},
		self:     "a1",
		services: []Service{svc("ns/a", false, []string{"a1"}, "203.0.113.113")},
		want: bgpGot{
			Peers: []string{"core", "edge", "edge6"},
			Routes: map[string]map[string]routeGot{
				"edge": {"203.0.113.112/28": {}},
				"core": {"203.0.113.112/28": {LocalPref: uint32(300), Communities: []string{"65000:200"}}},
			},
			Prefixes: map[string]BGPPrefix{
				"203.0.113.112/28": {Services: []string{"ns/a"}, Peers: []string{"core", "edge"}, Advertisements: []string{"agg", "agg-core"}},
			},
		},
	}, {
		name:  "Local: only from a node with a ready endpoint; Cluster: only while some endpoint is ready; other pools not at all",
		nodes: []Node{rackB},
		self:  "b1",
		services: []Service{
			svc("ns/local-elsewhere", true, []string{"a1"}, "203.0.113.98"),
			svc("ns/local-here", true, []string{"a1", "b1"}, "203.0.113.99"),
			svc("ns/no-endpoints", false, nil, "203.0.113.100"),
			svc("ns/l2", false, []string{"b1"}, "203.0.113.65"),
		},
		want: bgpGot{
			Peers:    []string{"edge", "edge6"},
			Routes:   map[string]map[string]routeGot{"edge": {"203.0.113.99/32": std}},
			Prefixes: map[string]BGPPrefix{"203.0.113.99/32": {Services: []string{"ns/local-here"}, Peers: []string{"edge"}, Advertisements: []string{"all"}}},
		},
	}, {
		name:     "an excluded node keeps its sessions and advertises nothing",
		nodes:    []Node{{Name: "b1", Labels: labels.Set{ExcludeLabel: ""}}},
		self:     "b1",
		services: []Service{svc("ns/web", false, []string{"b1"}, "203.0.113.97")},
		want:     bgpGot{Peers: []string{"edge", "edge6"}, Routes: map[string]map[string]routeGot{}, Prefixes: map[string]BGPPrefix{}},
	}, {
		name:     "a node with its network unavailable advertises nothing",
		nodes:    []Node{{Name: "b1", NetworkUnavailable: true}},
		self:     "b1",
		services: []Service{svc("ns/web", false, []string{"b1"}, "203.0.113.97")},
		want:     bgpGot{Peers: []string{"edge", "edge6"}, Routes: map[string]map[string]routeGot{}, Prefixes: map[string]BGPPrefix{}},
	}, {
		name:     "a node that is not in the cluster does nothing",
		nodes:    []Node{rackA},
		self:     "b1",
		services: []Service{svc("ns/web", false, []string{"b1"}, "203.0.113.97")},
		want:     bgpGot{Routes: map[string]map[string]routeGot{}, Prefixes: map[string]BGPPrefix{}},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := bgpComparable(BGP(Input{Config: cfg, Nodes: tc.nodes, Services: tc.services, Self: tc.self}))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBGPNoPeers(t *testing.T) {
	cfg := load(t, `
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata: {name: bgp}
spec: {addresses: [203.0.113.96/28]}
---
apiVersion: ironlb.io/v1alpha1
kind: BGPAdvertisement
metadata: {name: all}
`)
	got := BGP(Input{Config: cfg, Nodes: []Node{{Name: "n"}}, Self: "n",
		Services: []Service{{Key: "ns/a", Addrs: []netip.Addr{netip.MustParseAddr("203.0.113.97")}, ReadyNodes: []string{"n"}, Ready: true}}})
	if len(got.Peers) != 0 || len(got.Routes) != 0 || len(got.Prefixes) != 0 {
		t.Errorf("without peers nothing is advertised; got %+v", got)
	}
}
