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
	tb := election.New()
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
