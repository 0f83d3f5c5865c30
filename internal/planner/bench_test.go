package planner

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/internal/dataplane"
	"github.com/ironlb/ironlb/internal/election"
)

// BenchmarkLayer2: a full re-plan, as after any Service, endpoint, Node or
// configuration change: 500 nodes, 5,000 Services, one in ten with
// externalTrafficPolicy Local and two ready endpoints; then every address
// given to the election table, as the speaker does.
func BenchmarkLayer2(b *testing.B) {
	cfg := load(b, `
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata: {name: big}
spec: {addresses: [203.0.0.0/16]}
---
apiVersion: ironlb.io/v1alpha1
kind: L2Advertisement
metadata: {name: big}
spec:
  ipPools: [big]
  nodeSelector: {matchLabels: {l2: "yes"}}
`)
	in := Input{Config: cfg, Self: "node-000"}
	for i := range 500 {
		in.Nodes = append(in.Nodes, Node{Name: fmt.Sprintf("node-%03d", i), Labels: labels.Set{"l2": "yes", "zone": fmt.Sprint(i % 3)}})
	}
	for i := range 5000 {
		s := Service{Key: fmt.Sprintf("ns/svc-%d", i), Addrs: []netip.Addr{netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)})}}
		if i%10 == 0 {
			s.Local, s.ReadyNodes = true, []string{in.Nodes[i%500].Name, in.Nodes[(i+7)%500].Name}
		}
		in.Services = append(in.Services, s)
	}
	tb := election.New(election.LatestClaim)
	for _, n := range in.Nodes {
		tb.NodeUp(n.Name)
	}
	b.ReportAllocs()
	for b.Loop() {
		plan := Layer2(in)
		for a, l := range plan.L2 {
			tb.SetEligible(a, l.Eligible)
		}
	}
}

// BenchmarkBGP: what one node advertises after any change, with 10,000
// IPv6 Services (one in ten Local) and two peers, one of them given a
// second advertisement with communities and a local preference.
func BenchmarkBGP(b *testing.B) {
	cfg := load(b, `
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata: {name: big}
spec: {addresses: ["2001:db8:ff66::/112"]}
---
apiVersion: ironlb.io/v1alpha1
kind: BGPPeer
metadata: {name: tor-a}
spec: {peerAddress: "2001:db8:5100::1", peerASN: 64500, myASN: 64512}
---
apiVersion: ironlb.io/v1alpha1
kind: BGPPeer
metadata: {name: core}
spec: {peerAddress: "2001:db8:5100::2", peerASN: 64512, myASN: 64512}
---
apiVersion: ironlb.io/v1alpha1
kind: BGPAdvertisement
metadata: {name: all}
spec: {ipPools: [big]}
---
apiVersion: ironlb.io/v1alpha1
kind: BGPAdvertisement
metadata: {name: core}
spec: {ipPools: [big], peers: [core], localPref: 200, communities: ["65000:100", no-export]}
`)
	in := Input{Config: cfg, Self: "node-000"}
	for i := range 100 {
		in.Nodes = append(in.Nodes, Node{Name: fmt.Sprintf("node-%03d", i)})
	}
	for i := range 10000 {
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 0x66, 14: byte(i >> 8), 15: byte(i)})
		s := Service{Key: fmt.Sprintf("ns/svc-%d", i), Addrs: []netip.Addr{a}, Ready: true, ReadyNodes: []string{in.Nodes[i%100].Name}}
		s.Local = i%10 == 0
		in.Services = append(in.Services, s)
	}
	b.ReportAllocs()
	for b.Loop() {
		if p := BGP(in); len(p.Prefixes) == 0 {
			b.Fatal("nothing advertised")
		}
	}
}

// BenchmarkStateChange: one endpoint of one Service turns unready and
// ready again, planned incrementally by a State holding n IPv6 Services
// (one in ten Local) of ten endpoints each, advertised over BGP and
// forwarded to their endpoints. "plan" is the State's update alone;
// "handoff" adds putting together the full frontend list and the BGP
// plan's routes as the speaker hands them on. The planning cost should
// not depend on n.
func BenchmarkStateChange(b *testing.B) {
	cfg := load(b, `
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata: {name: big}
spec: {addresses: ["2001:db8:ff66::/112"]}
---
apiVersion: ironlb.io/v1alpha1
kind: BGPPeer
metadata: {name: tor-a}
spec: {peerAddress: "2001:db8:5100::1", peerASN: 64500, myASN: 64512}
---
apiVersion: ironlb.io/v1alpha1
kind: BGPAdvertisement
metadata: {name: all}
spec: {ipPools: [big]}
`)
	for _, n := range []int{1000, 10000} {
		st := NewState("node-000", ForwardEndpoints)
		st.SetConfig(cfg)
		var nodes []Node
		for i := range 100 {
			nodes = append(nodes, Node{Name: fmt.Sprintf("node-%03d", i)})
		}
		st.SetNodes(nodes)
		svcs := make([]Service, n)
		for i := range n {
			svcs[i] = benchService(i, nodes)
			st.SetService(svcs[i])
		}
		st.TakeChanges()
		for _, handoff := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/%d", map[bool]string{false: "plan", true: "handoff"}[handoff], n), func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					svc := svcs[i%n]
					svc.Endpoints = slices.Clone(svc.Endpoints)
					svc.Endpoints[3].Ready = !st.services[svc.Key].Endpoints[3].Ready
					st.SetService(svc)
					if c := st.TakeChanges(); !c.Forwarding {
						b.Fatal("the endpoint change changed no frontend")
					}
					if handoff {
						if fes := st.Frontends(); len(fes) != n {
							b.Fatalf("%d frontends, want %d", len(fes), n)
						}
					}
					i++
				}
			})
		}
	}
}

// benchService is the i-th Service of BenchmarkStateChange.
func benchService(i int, nodes []Node) Service {
	a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 0x66, 14: byte(i >> 8), 15: byte(i)})
	s := Service{Key: fmt.Sprintf("ns/svc-%d", i), Addrs: []netip.Addr{a},
		Ports: []Port{{Name: "http", Protocol: dataplane.TCP, Port: 80}}}
	for e := range 10 {
		node := nodes[(i+e)%len(nodes)].Name
		ep := Endpoint{Addr: netip.AddrFrom16([16]byte{0xfd, 0, 12: byte(i >> 8), 13: byte(i), 15: byte(e)}), Node: node, Ready: true, Serving: true,
			Ports: []Port{{Name: "http", Protocol: dataplane.TCP, Port: 8080}}}
		s.Endpoints = append(s.Endpoints, ep)
		s.Ready = true
		s.ReadyNodes = append(s.ReadyNodes, node)
	}
	return s
}
