package planner

import (
	"context"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/configfile"
)

// testConfig: pool "lan" (IPv4 and IPv6) announced from nodes labelled
// rack=a on eth0 and from every node on eth1; pool "edge" announced from
// every node on every interface; pool "bgp" not announced in layer 2.
const testConfig = `
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata: {name: lan}
spec: {addresses: [203.0.113.64/28, 2001:db8:ff64::/124]}
---
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata: {name: edge}
spec: {addresses: [203.0.113.80/28]}
---
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata: {name: bgp}
spec: {addresses: [203.0.113.96/28]}
---
apiVersion: ironlb.io/v1alpha1
kind: L2Advertisement
metadata: {name: rack-a}
spec:
  ipPools: [lan]
  nodeSelector: {matchLabels: {rack: a}}
  interfaces: [eth0]
---
apiVersion: ironlb.io/v1alpha1
kind: L2Advertisement
metadata: {name: everywhere}
spec:
  ipPools: [lan]
  interfaces: [eth1]
---
apiVersion: ironlb.io/v1alpha1
kind: L2Advertisement
metadata: {name: edge}
spec:
  ipPools: [edge]
`

func load(t testing.TB, doc string) *config.Config {
	t.Helper()
	l, err := configfile.New()
	if err != nil {
		t.Fatal(err)
	}
	snap, err := l.Load(context.Background(), "test.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	cfg, problems := config.Resolve(snap)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	return cfg
}

// got is the comparable part of an L2 plan entry.
type got struct {
	Services       []string
	Pool           string
	Eligible       []string
	Interfaces     []string
	Advertisements []string
}

func TestLayer2(t *testing.T) {
	cfg := load(t, testConfig)
	a := netip.MustParseAddr
	nodes := []Node{
		{Name: "n1", Labels: labels.Set{"rack": "a"}},
		{Name: "n2", Labels: labels.Set{"rack": "b"}},
		{Name: "n3", Labels: labels.Set{"rack": "a", ExcludeLabel: ""}},
		{Name: "n4", Labels: labels.Set{"rack": "a"}, NetworkUnavailable: true},
	}
	tests := []struct {
		name     string
		self     string
		services []Service
		want     map[string]got
	}{
		{
			name: "cluster policy, both families, interfaces from every advertisement selecting self",
			self: "n1",
			services: []Service{
				{Key: "ns/web", Addrs: []netip.Addr{a("203.0.113.65"), a("2001:db8:ff64::5")}},
			},
			want: map[string]got{
				"203.0.113.65":     {[]string{"ns/web"}, "lan", []string{"n1", "n2"}, []string{"eth0", "eth1"}, []string{"everywhere", "rack-a"}},
				"2001:db8:ff64::5": {[]string{"ns/web"}, "lan", []string{"n1", "n2"}, []string{"eth0", "eth1"}, []string{"everywhere", "rack-a"}},
			},
		},
		{
			name:     "a node outside rack a answers on eth1 only",
			self:     "n2",
			services: []Service{{Key: "ns/web", Addrs: []netip.Addr{a("203.0.113.65")}}},
			want: map[string]got{
				"203.0.113.65": {[]string{"ns/web"}, "lan", []string{"n1", "n2"}, []string{"eth1"}, []string{"everywhere"}},
			},
		},
		{
			name:     "an advertisement without interfaces means every interface",
			self:     "n1",
			services: []Service{{Key: "ns/edge", Addrs: []netip.Addr{a("203.0.113.81")}}},
			want: map[string]got{
				"203.0.113.81": {[]string{"ns/edge"}, "edge", []string{"n1", "n2"}, nil, []string{"edge"}},
			},
		},
		{
			name: "addresses outside layer 2 pools are not planned",
			self: "n1",
			services: []Service{
				{Key: "ns/bgp", Addrs: []netip.Addr{a("203.0.113.97")}},
				{Key: "ns/stray", Addrs: []netip.Addr{a("198.51.100.200")}},
			},
			want: map[string]got{},
		},
		{
			name: "local policy: only nodes with a ready endpoint, still not excluded ones",
			self: "n1",
			services: []Service{
				{Key: "ns/local", Addrs: []netip.Addr{a("203.0.113.66")}, Local: true, ReadyNodes: []string{"n2", "n3", "n4"}},
			},
			want: map[string]got{
				"203.0.113.66": {[]string{"ns/local"}, "lan", []string{"n2"}, []string{"eth0", "eth1"}, []string{"everywhere", "rack-a"}},
			},
		},
		{
			name: "local policy without ready endpoints: nobody",
			self: "n1",
			services: []Service{
				{Key: "ns/local", Addrs: []netip.Addr{a("203.0.113.66")}, Local: true},
			},
			want: map[string]got{
				"203.0.113.66": {[]string{"ns/local"}, "lan", nil, []string{"eth0", "eth1"}, []string{"everywhere", "rack-a"}},
			},
		},
		{
			name: "a shared address is announced only where every Service sharing it allows",
			self: "n1",
			services: []Service{
				{Key: "ns/b", Addrs: []netip.Addr{a("2001:db8:ff64::7")}, Local: true, ReadyNodes: []string{"n1", "n2"}},
				{Key: "ns/a", Addrs: []netip.Addr{a("2001:db8:ff64::7")}},
				{Key: "ns/c", Addrs: []netip.Addr{a("2001:db8:ff64::7")}, Local: true, ReadyNodes: []string{"n2"}},
			},
			want: map[string]got{
				"2001:db8:ff64::7": {[]string{"ns/a", "ns/b", "ns/c"}, "lan", []string{"n2"}, []string{"eth0", "eth1"}, []string{"everywhere", "rack-a"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := Layer2(Input{Config: cfg, Nodes: nodes, Services: tt.services, Self: tt.self})
			have := map[string]got{}
			for addr, l := range plan.L2 {
				have[addr.String()] = got{l.Services, l.Pool, l.Eligible.Names(), l.Interfaces, l.Advertisements}
			}
			if diff := cmp.Diff(tt.want, have); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
			if len(plan.Warnings) != 0 {
				t.Errorf("warnings: %v", plan.Warnings)
			}
		})
	}
}

func TestSharedEligibleSets(t *testing.T) {
	// Every Cluster-policy address of a pool must share one eligible set,
	// so the election table holds a set per pool, not per address.
	cfg := load(t, testConfig)
	plan := Layer2(Input{Config: cfg, Self: "n1", Nodes: []Node{{Name: "n1"}, {Name: "n2"}}, Services: []Service{
		{Key: "ns/a", Addrs: []netip.Addr{netip.MustParseAddr("203.0.113.65")}},
		{Key: "ns/b", Addrs: []netip.Addr{netip.MustParseAddr("203.0.113.66")}},
	}})
	if plan.L2[netip.MustParseAddr("203.0.113.65")].Eligible != plan.L2[netip.MustParseAddr("203.0.113.66")].Eligible {
		t.Fatal("two addresses of one pool got different eligible sets")
	}
}

func TestWarnings(t *testing.T) {
	cfg := load(t, testConfig)
	plan := Layer2(Input{Config: cfg, Self: "n2", Nodes: []Node{
		{Name: "n1", Labels: labels.Set{"rack": "a", ExcludeLabel: "true"}},
		{Name: "n2", Labels: labels.Set{"rack": "b"}},
	}})
	want := []Warning{{"L2Advertisement", "rack-a", "spec.nodeSelector selects none of the 1 nodes that may announce (not excluded, network available), so it announces nothing"}}
	if diff := cmp.Diff(want, plan.Warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

// TestLayer2AcrossNamespaces: a sharing key is a name any tenant can copy,
// so Services of another namespace on the same address must never take it
// away from its Services: a Local Service without ready endpoints in
// another namespace leaves the address where it was.
func TestLayer2AcrossNamespaces(t *testing.T) {
	cfg := load(t, testConfig)
	ip := netip.MustParseAddr("203.0.113.66")
	nodes := []Node{
		{Name: "n1", Labels: labels.Set{"rack": "a"}},
		{Name: "n2", Labels: labels.Set{"rack": "b"}},
		{Name: "n3", Labels: labels.Set{"rack": "a", ExcludeLabel: ""}},
	}
	on := func(key string, local bool, ready ...string) Service {
		return Service{Key: key, Addrs: []netip.Addr{ip}, Local: local, ReadyNodes: ready, Ready: len(ready) > 0}
	}
	tests := []struct {
		name     string
		services []Service
		want     []string
	}{
		{
			name:     "victim Cluster, Local Service of another namespace without ready endpoints: every node still",
			services: []Service{on("victim/web", false, "n1"), on("intruder/web", true)},
			want:     []string{"n1", "n2"},
		},
		{
			name:     "victim Local on n1, Local Service of another namespace without ready endpoints: n1 still",
			services: []Service{on("victim/web", true, "n1"), on("intruder/web", true)},
			want:     []string{"n1"},
		},
		{
			name:     "victim Local on n1, Cluster Service of another namespace: n1 still",
			services: []Service{on("victim/web", true, "n1"), on("intruder/web", false)},
			want:     []string{"n1"},
		},
		{
			name:     "victim Cluster, Local Service of another namespace ready on n2: n2, where both are served",
			services: []Service{on("victim/web", false, "n1"), on("other/web", true, "n2")},
			want:     []string{"n2"},
		},
		{
			name:     "Local in two namespaces on different nodes: either namespace's nodes, never none",
			services: []Service{on("victim/web", true, "n1"), on("other/web", true, "n2")},
			want:     []string{"n1", "n2"},
		},
		{
			name:     "a namespace's ready node that may not announce does not count",
			services: []Service{on("victim/web", true, "n1"), on("other/web", true, "n3")},
			want:     []string{"n1"},
		},
		{
			name:     "no namespace has a ready endpoint: nobody",
			services: []Service{on("victim/web", true), on("other/web", true)},
			want:     nil,
		},
		{
			name:     "a namespace whose Local Services leave each other no node is left out",
			services: []Service{on("victim/web", true, "n1"), on("victim/dns", true), on("other/web", false)},
			want:     []string{"n1", "n2"},
		},
		{
			name:     "within one namespace alone, a Local Service without ready endpoints withdraws its own address",
			services: []Service{on("victim/web", true, "n1"), on("victim/dns", true)},
			want:     nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := Layer2(Input{Config: cfg, Nodes: nodes, Services: tt.services, Self: "n1"})
			l := plan.L2[ip]
			if l == nil {
				t.Fatalf("%s is not planned", ip)
			}
			if diff := cmp.Diff(tt.want, l.Eligible.Names()); diff != "" {
				t.Errorf("eligible nodes (-want +got):\n%s", diff)
			}
		})
	}
}

// TestBGPAcrossNamespaces: over BGP each Service is advertised on its own,
// so a Local Service of another namespace without ready endpoints does not
// withdraw the address either.
func TestBGPAcrossNamespaces(t *testing.T) {
	cfg := load(t, bgpConfig)
	ip := netip.MustParseAddr("203.0.113.97")
	nodes := []Node{{Name: "n1"}, {Name: "n2"}}
	for _, victimLocal := range []bool{false, true} {
		plan := BGP(Input{Config: cfg, Nodes: nodes, Self: "n1", Services: []Service{
			{Key: "victim/web", Addrs: []netip.Addr{ip}, Local: victimLocal, ReadyNodes: []string{"n1"}, Ready: true},
			{Key: "intruder/web", Addrs: []netip.Addr{ip}, Local: true},
		}})
		p := plan.Prefixes[netip.PrefixFrom(ip, 32)]
		if p == nil {
			t.Fatalf("victim Local=%v: %s is not advertised", victimLocal, ip)
		}
		if diff := cmp.Diff([]string{"victim/web"}, p.Services); diff != "" {
			t.Errorf("victim Local=%v: Services behind the prefix (-want +got):\n%s", victimLocal, diff)
		}
	}
}
