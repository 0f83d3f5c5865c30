package lab

import (
	"net/netip"
	"strings"
	"testing"
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
		"router":        {p.Router.Addr, "198.51.100.1/25"},
		"control plane": {p.ControlPlane.Addr, "198.51.100.2/25"},
		"host":          {p.HostLeg.Addr, "198.51.100.3/25"},
		"node1":         {p.Nodes[0].Addr, "198.51.100.11/25"},
		"node3":         {p.Nodes[2].Addr, "198.51.100.13/25"},
		"client":        {p.Client.Addr, "198.51.100.100/25"},
		"router remote": {p.RouterRemote.Addr, "198.51.100.129/25"},
		"remote":        {p.Remote.Addr, "198.51.100.130/25"},
		"node2 pods":    {p.Nodes[1].PodCIDR, "203.0.113.16/28"},
		"node2 gateway": {p.Nodes[1].PodGateway(), "203.0.113.17/28"},
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
