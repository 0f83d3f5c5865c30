package planner

import (
	"fmt"
	"net/netip"
	"testing"

	"k8s.io/apimachinery/pkg/labels"

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
