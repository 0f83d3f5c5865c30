package lab

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/iprange"
)

func TestNewPlan(t *testing.T) {
	p, err := NewPlan("ilb", 3)
	if err != nil {
		t.Fatal(err)
	}
	// Every address is where the plan's doc says, and inside the test ranges.
	checks := map[string]struct {
		got  netip.Prefix
		want string
	}{
		"router":           {p.Router.Addr, "198.51.100.1/25"},
		"control plane":    {p.ControlPlane.Addr, "198.51.100.2/25"},
		"host":             {p.HostLeg.Addr, "198.51.100.3/25"},
		"node1":            {p.Nodes[0].Addr, "198.51.100.11/25"},
		"node3":            {p.Nodes[2].Addr, "198.51.100.13/25"},
		"client":           {p.Client.Addr, "198.51.100.100/25"},
		"router remote":    {p.RouterRemote.Addr, "198.51.100.129/25"},
		"remote":           {p.Remote.Addr, "198.51.100.130/25"},
		"node2 pods":       {p.Nodes[1].PodCIDR, "203.0.113.16/28"},
		"node2 gateway":    {p.Nodes[1].PodGateway(), "203.0.113.17/28"},
		"router v6":        {p.Router.Addr6, "2001:db8:5100::1/64"},
		"control plane v6": {p.ControlPlane.Addr6, "2001:db8:5100::2/64"},
		"host v6":          {p.HostLeg.Addr6, "2001:db8:5100::3/64"},
		"node1 v6":         {p.Nodes[0].Addr6, "2001:db8:5100::11/64"},
		"node3 v6":         {p.Nodes[2].Addr6, "2001:db8:5100::13/64"},
		"client v6":        {p.Client.Addr6, "2001:db8:5100::100/64"},
		"router remote v6": {p.RouterRemote.Addr6, "2001:db8:5101::1/64"},
		"remote v6":        {p.Remote.Addr6, "2001:db8:5101::2/64"},
		"node2 pods v6":    {p.Nodes[1].PodCIDR6, "2001:db8:ff63::10/124"},
		"node2 gateway v6": {p.Nodes[1].PodGateway6(), "2001:db8:ff63::11/124"},
		"a pod's v6":       {netip.PrefixFrom(PodAddr6(netip.MustParseAddr("203.0.113.18")), 128), "2001:db8:ff63::12/128"},
	}
	for name, c := range checks {
		if c.got.String() != c.want {
			t.Errorf("%s = %s, want %s", name, c.got, c.want)
		}
	}
	seen := map[string]bool{}
	for _, ns := range p.Namespaces() {
		if seen[ns] || !strings.HasPrefix(ns, "ilb-") {
			t.Errorf("namespace %q repeated or without the lab's prefix", ns)
		}
		seen[ns] = true
	}
	pods := netip.MustParsePrefix("203.0.113.0/24")
	for _, n := range p.Nodes {
		if !PodNet.Contains(n.PodCIDR.Addr()) || !pods.Contains(n.PodCIDR.Addr()) || n.PodCIDR.Overlaps(L2PoolNet) || n.PodCIDR.Overlaps(BGPPoolNet) {
			t.Errorf("pod CIDR %s of %s outside the pod range or overlapping a pool", n.PodCIDR, n.Name)
		}
	}
	for _, n := range p.Nodes {
		if !PodNet6.Contains(n.PodCIDR6.Addr()) || n.PodCIDR6.Bits() < PodNet6.Bits() || !n.PodCIDR6.Contains(n.PodGateway6().Addr()) {
			t.Errorf("IPv6 pod CIDR %s of %s outside %s, or without its gateway %s", n.PodCIDR6, n.Name, PodNet6, n.PodGateway6())
		}
		for _, other := range p.Nodes {
			if other.Name != n.Name && other.PodCIDR6.Overlaps(n.PodCIDR6) {
				t.Errorf("IPv6 pod CIDRs of %s and %s overlap", n.Name, other.Name)
			}
		}
	}
	// Each family on its own segments, inside the test ranges; the pools
	// apart from the segments.
	v6 := netip.MustParsePrefix("2001:db8::/32")
	for _, pool := range []netip.Prefix{L2PoolNet6, LANNet6, RemoteNet6, PodNet6, BGPPoolNet6} {
		for _, other := range []netip.Prefix{L2PoolNet6, LANNet6, RemoteNet6, PodNet6, BGPPoolNet6} {
			if pool != other && pool.Overlaps(other) {
				t.Errorf("%s overlaps %s", pool, other)
			}
		}
		if !v6.Contains(pool.Addr()) || pool.Bits() < v6.Bits() {
			t.Errorf("%s is outside %s", pool, v6)
		}
	}
	for _, h := range append(p.lanMembers(), p.HostLeg, p.RouterRemote, p.Remote) {
		lan4, lan6 := LANNet, LANNet6
		if h == p.RouterRemote || h == p.Remote {
			lan4, lan6 = RemoteNet, RemoteNet6
		}
		if !h.Addr.Addr().Is4() || !lan4.Contains(h.Addr.Addr()) || h.Addr.Bits() != lan4.Bits() ||
			!h.Addr6.Addr().Is6() || !lan6.Contains(h.Addr6.Addr()) || h.Addr6.Bits() != lan6.Bits() {
			t.Errorf("%q has %v, want one address of each family on %s and %s", h.NetNS, h.Addrs(), lan4, lan6)
		}
	}
	if n, err := p.Node("node2"); err != nil || n.NetNS != "ilb-node2" {
		t.Errorf("Node(node2) = %+v, %v", n, err)
	}
	if _, err := p.Node("node4"); err == nil {
		t.Error("Node(node4) of a three-node lab succeeded")
	}
	if len(p.HostIface) > 15 {
		t.Errorf("host interface name %q is longer than 15", p.HostIface)
	}
}

func TestNewPlanRefuses(t *testing.T) {
	for _, tt := range []struct {
		name  string
		nodes int
		want  string
	}{
		{"ilb", 0, "1 to 4 nodes"},
		{"ilb", 5, "1 to 4 nodes"},
		{"", 3, "1 to 6 characters"},
		{"toolong", 3, "1 to 6 characters"},
		{"Lab", 3, "lowercase"},
		{"l-b", 3, "lowercase"},
	} {
		if _, err := NewPlan(tt.name, tt.nodes); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewPlan(%q, %d) = %v, want an error containing %q", tt.name, tt.nodes, err, tt.want)
		}
	}
}

// TestExampleConfig: the example configuration resolves with ironlb's
// own resolver, and announces the plan's layer 2 pool of each family on
// the lab's LAN interface.
func TestExampleConfig(t *testing.T) {
	var snap config.Snapshot
	for i, doc := range strings.Split(string(ExampleConfig), "\n---\n") {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("example.yaml document %d: %v", i+1, err)
		}
		var err error
		switch meta.Kind {
		case v1alpha1.KindIPPool:
			snap.IPPools = append(snap.IPPools, v1alpha1.IPPool{})
			err = yaml.UnmarshalStrict([]byte(doc), &snap.IPPools[len(snap.IPPools)-1])
		case v1alpha1.KindL2Advertisement:
			snap.L2Advertisements = append(snap.L2Advertisements, v1alpha1.L2Advertisement{})
			err = yaml.UnmarshalStrict([]byte(doc), &snap.L2Advertisements[len(snap.L2Advertisements)-1])
		case v1alpha1.KindBGPPeer:
			snap.BGPPeers = append(snap.BGPPeers, v1alpha1.BGPPeer{})
			err = yaml.UnmarshalStrict([]byte(doc), &snap.BGPPeers[len(snap.BGPPeers)-1])
		case v1alpha1.KindBGPAdvertisement:
			snap.BGPAdvertisements = append(snap.BGPAdvertisements, v1alpha1.BGPAdvertisement{})
			err = yaml.UnmarshalStrict([]byte(doc), &snap.BGPAdvertisements[len(snap.BGPAdvertisements)-1])
		default:
			err = fmt.Errorf("unknown kind %q", meta.Kind)
		}
		if err != nil {
			t.Fatalf("example.yaml document %d: %v", i+1, err)
		}
	}
	cfg, problems := config.Resolve(snap)
	if len(problems) > 0 {
		t.Fatalf("example.yaml: %v", problems)
	}
	for _, pool := range []netip.Prefix{L2PoolNet, L2PoolNet6} {
		p := cfg.PoolFor(pool.Masked().Addr())
		if p == nil || cfg.PoolFor(iprange.FromPrefix(pool).Last) != p {
			t.Errorf("example.yaml: %s is not all in one pool", pool)
			continue
		}
		announced := false
		for _, adv := range cfg.L2Advertisements {
			announced = announced || slices.Contains(adv.Pools, p) && slices.Equal(adv.Interfaces, []string{InsideIface})
		}
		if !announced {
			t.Errorf("example.yaml: pool %s (holding %s) is not announced in layer 2 on %s", p.Name, pool, InsideIface)
		}
	}
}

func TestPoolAddr(t *testing.T) {
	for _, tt := range []struct {
		pool netip.Prefix
		last int
		want string
	}{
		{L2PoolNet, 70, "203.0.113.70"},
		{L2PoolNet6, 0x70, "2001:db8:ff64::70"},
		{BGPPoolNet, 100, "203.0.113.100"},
		{BGPPoolNet6, 0x100, "2001:db8:ff66::100"},
		{BGPPoolNet6, 0xfde8, "2001:db8:ff66::fde8"},
		{HandEndpointNet6, 1, "2001:db8:ff65::1"},
	} {
		if got := PoolAddr(tt.pool, tt.last); got.String() != tt.want {
			t.Errorf("PoolAddr(%s, %d) = %s, want %s", tt.pool, tt.last, got, tt.want)
		}
	}
	for _, tt := range []struct {
		pool netip.Prefix
		last int
	}{{L2PoolNet, 10}, {L2PoolNet, 300}, {L2PoolNet6, 0x170}, {BGPPoolNet, -1}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("PoolAddr(%s, %d) did not panic", tt.pool, tt.last)
				}
			}()
			PoolAddr(tt.pool, tt.last)
		}()
	}
}
