package planner

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/labels"
)

// placementConfig announces pool even from rack a with balanced placement
// and from rack b with the hash ranking (a pool is balanced when any of
// its advertisements asks), and pool plain with the hash ranking only.
const placementConfig = `
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata: {name: even}
spec: {addresses: [203.0.113.64/28]}
---
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata: {name: plain}
spec: {addresses: [203.0.113.80/28]}
---
apiVersion: ironlb.io/v1alpha1
kind: L2Advertisement
metadata: {name: even-a}
spec:
  ipPools: [even]
  nodeSelector: {matchLabels: {rack: a}}
  placement: Balanced
---
apiVersion: ironlb.io/v1alpha1
kind: L2Advertisement
metadata: {name: even-b}
spec:
  ipPools: [even]
  nodeSelector: {matchLabels: {rack: b}}
  placement: Hash
---
apiVersion: ironlb.io/v1alpha1
kind: L2Advertisement
metadata: {name: plain}
spec: {ipPools: [plain]}
`

// TestLayer2Placement: the eligible set of every address of a balanced
// pool is marked balanced, also when externalTrafficPolicy Local narrows
// it to the nodes with a ready endpoint; other pools' sets are not. The
// incremental State agrees.
func TestLayer2Placement(t *testing.T) {
	a := netip.MustParseAddr
	in := Input{
		Config: load(t, placementConfig),
		Self:   "a1",
		Nodes: []Node{
			{Name: "a1", Labels: labels.Set{"rack": "a"}},
			{Name: "a2", Labels: labels.Set{"rack": "a"}},
			{Name: "b1", Labels: labels.Set{"rack": "b"}},
		},
		Services: []Service{
			{Key: "ns/even", Addrs: []netip.Addr{a("203.0.113.64")}},
			{Key: "ns/even-local", Addrs: []netip.Addr{a("203.0.113.65")}, Local: true, Ready: true, ReadyNodes: []string{"a2", "b1"}},
			{Key: "ns/plain", Addrs: []netip.Addr{a("203.0.113.80")}},
			{Key: "ns/plain-local", Addrs: []netip.Addr{a("203.0.113.81")}, Local: true, Ready: true, ReadyNodes: []string{"a2"}},
		},
	}
	type placed struct {
		Eligible []string
		Balanced bool
	}
	want := map[string]placed{
		"203.0.113.64": {[]string{"a1", "a2", "b1"}, true},
		"203.0.113.65": {[]string{"a2", "b1"}, true},
		"203.0.113.80": {[]string{"a1", "a2", "b1"}, false},
		"203.0.113.81": {[]string{"a2"}, false},
	}
	summarize := func(l2 map[netip.Addr]*L2) map[string]placed {
		out := map[string]placed{}
		for addr, l := range l2 {
			out[addr.String()] = placed{l.Eligible.Names(), l.Eligible.Balanced()}
		}
		return out
	}
	if d := cmp.Diff(want, summarize(Layer2(in).L2)); d != "" {
		t.Errorf("Layer2 (-want +got):\n%s", d)
	}
	st := NewState(in.Self, ForwardEndpoints)
	st.SetConfig(in.Config)
	st.SetNodes(in.Nodes)
	for _, svc := range in.Services {
		st.SetService(svc)
	}
	if d := cmp.Diff(want, summarize(st.Layer2().L2)); d != "" {
		t.Errorf("State (-want +got):\n%s", d)
	}
}
