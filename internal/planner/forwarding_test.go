package planner

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ironlb/ironlb/internal/dataplane"
)

const fwdConfig = `
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata: {name: pool}
spec: {addresses: [203.0.113.96/28, 2001:db8:ff66::/124]}
`

// addrs compares netip values, whose fields cmp cannot see.
var addrs = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
}

func ep(addr, node string, ready, serving, terminating bool, ports ...Port) Endpoint {
	return Endpoint{Addr: netip.MustParseAddr(addr), Node: node, Ready: ready, Serving: serving, Terminating: terminating, Ports: ports}
}

func be(ap string, masquerade bool) dataplane.Backend {
	return dataplane.Backend{AddrPort: netip.MustParseAddrPort(ap), Masquerade: masquerade}
}

func TestForwarding(t *testing.T) {
	cfg := load(t, fwdConfig)
	http := Port{Name: "http", Protocol: dataplane.TCP, Port: 80, NodePort: 30080}
	dns := Port{Name: "dns", Protocol: dataplane.UDP, Port: 53}
	// The pods listen on other ports than the Service's.
	podHTTP := Port{Name: "http", Protocol: dataplane.TCP, Port: 8080}
	podDNS := Port{Name: "dns", Protocol: dataplane.UDP, Port: 5353}
	lb4, lb6 := netip.MustParseAddr("203.0.113.97"), netip.MustParseAddr("2001:db8:ff66::1")
	self4, self6 := netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("2001:db8:5100::2")
	cluster := Service{
		Key: "ns/cluster", Addrs: []netip.Addr{lb4, lb6}, Ports: []Port{http, dns},
		Endpoints: []Endpoint{
			ep("203.0.113.20", "b", true, true, false, podHTTP, podDNS),
			ep("203.0.113.10", "a", true, true, false, podHTTP, podDNS),
			// Not ready: never used while others are.
			ep("203.0.113.30", "a", false, true, true, podHTTP, podDNS),
			ep("2001:db8:10::10", "a", true, true, false, podHTTP),
			// A slice port of another name serves nothing here.
			ep("203.0.113.40", "a", true, true, false, Port{Name: "metrics", Protocol: dataplane.TCP, Port: 9090}),
		},
	}
	local := Service{
		Key: "ns/local", Local: true, Addrs: []netip.Addr{netip.MustParseAddr("203.0.113.98")}, Ports: []Port{http},
		Affinity: time.Minute,
		Endpoints: []Endpoint{
			ep("203.0.113.10", "a", true, true, false, podHTTP),
			ep("203.0.113.20", "b", true, true, false, podHTTP),
		},
	}
	// Only terminating endpoints left: they still serve, so they are used.
	draining := Service{
		Key: "ns/draining", Addrs: []netip.Addr{netip.MustParseAddr("203.0.113.99")}, Ports: []Port{http},
		Endpoints: []Endpoint{
			ep("203.0.113.10", "a", false, true, true, podHTTP),
			ep("203.0.113.20", "b", false, false, true, podHTTP),
		},
	}
	// Out of every pool: not forwarded.
	stray := Service{Key: "ns/stray", Addrs: []netip.Addr{netip.MustParseAddr("203.0.113.5")}, Ports: []Port{http}}
	// Claims a frontend ns/cluster has: the first by key keeps it.
	clash := Service{Key: "ns/zclash", Addrs: []netip.Addr{lb4}, Ports: []Port{http},
		Endpoints: []Endpoint{ep("203.0.113.50", "a", true, true, false, podHTTP)}}
	in := Input{Config: cfg, Self: "a", Services: []Service{clash, stray, draining, local, cluster}}

	got := Forwarding(in, ForwardEndpoints, nil)
	want := []dataplane.Frontend{
		{Addr: lb4, Protocol: dataplane.TCP, Port: 80, Backends: []dataplane.Backend{be("203.0.113.10:8080", false), be("203.0.113.20:8080", true)}},
		{Addr: lb4, Protocol: dataplane.UDP, Port: 53, Backends: []dataplane.Backend{be("203.0.113.10:5353", false), be("203.0.113.20:5353", true)}},
		{Addr: lb6, Protocol: dataplane.TCP, Port: 80, Backends: []dataplane.Backend{be("[2001:db8:10::10]:8080", false)}},
		// No IPv6 endpoint serves dns: refused.
		{Addr: lb6, Protocol: dataplane.UDP, Port: 53},
		{Addr: netip.MustParseAddr("203.0.113.99"), Protocol: dataplane.TCP, Port: 80, Backends: []dataplane.Backend{be("203.0.113.10:8080", false)}},
		{Addr: netip.MustParseAddr("203.0.113.98"), Protocol: dataplane.TCP, Port: 80, Affinity: time.Minute, Backends: []dataplane.Backend{be("203.0.113.10:8080", false)}},
	}
	if diff := cmp.Diff(want, got, addrs); diff != "" {
		t.Errorf("endpoints mode (-want +got):\n%s", diff)
	}

	// On node b the Local Service has b's endpoint, the Cluster one
	// masquerades a's.
	in.Self = "b"
	got = Forwarding(in, ForwardEndpoints, nil)
	if diff := cmp.Diff([]dataplane.Backend{be("203.0.113.10:8080", true), be("203.0.113.20:8080", false)}, got[0].Backends, addrs); diff != "" {
		t.Errorf("cluster on b (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]dataplane.Backend{be("203.0.113.20:8080", false)}, got[5].Backends, addrs); diff != "" {
		t.Errorf("local on b (-want +got):\n%s", diff)
	}
	// A node with no endpoint of the Local Service refuses its traffic.
	in.Self = "c"
	if got = Forwarding(in, ForwardEndpoints, nil); got[5].Backends != nil {
		t.Errorf("local on a node without its endpoints: %v", got[5].Backends)
	}

	in.Self = "a"
	got = Forwarding(in, ForwardNodePort, []netip.Addr{self4, self6})
	node := func(a netip.Addr) []dataplane.Backend {
		return []dataplane.Backend{{AddrPort: netip.AddrPortFrom(a, 30080)}}
	}
	want = []dataplane.Frontend{
		{Addr: lb4, Protocol: dataplane.TCP, Port: 80, Backends: node(self4)},
		// dns has no NodePort.
		{Addr: lb4, Protocol: dataplane.UDP, Port: 53},
		{Addr: lb6, Protocol: dataplane.TCP, Port: 80, Backends: node(self6)},
		{Addr: lb6, Protocol: dataplane.UDP, Port: 53},
		{Addr: netip.MustParseAddr("203.0.113.99"), Protocol: dataplane.TCP, Port: 80, Backends: node(self4)},
		{Addr: netip.MustParseAddr("203.0.113.98"), Protocol: dataplane.TCP, Port: 80, Affinity: time.Minute, Backends: node(self4)},
	}
	if diff := cmp.Diff(want, got, addrs); diff != "" {
		t.Errorf("nodeport mode (-want +got):\n%s", diff)
	}
	// Without an IPv6 address of its own the node refuses IPv6.
	if got = Forwarding(in, ForwardNodePort, []netip.Addr{self4}); got[2].Backends != nil {
		t.Errorf("nodeport without an IPv6 node address: %v", got[2].Backends)
	}

	if got = Forwarding(in, ForwardNone, []netip.Addr{self4}); got != nil {
		t.Errorf("none mode: %v", got)
	}
}

const rangesConfig = `
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata: {name: l2}
spec: {addresses: [203.0.113.64/28, 2001:db8:ff64::/124]}
---
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata: {name: bgp}
spec: {addresses: [203.0.113.96/28, 2001:db8:ff66::/124]}
---
apiVersion: ironlb.io/v1alpha1
kind: L2Advertisement
metadata: {name: l2}
spec: {ipPools: [l2]}
---
apiVersion: ironlb.io/v1alpha1
kind: BGPPeer
metadata: {name: edge}
spec: {peerAddress: 198.51.100.1, peerASN: 64500, myASN: 64512}
---
apiVersion: ironlb.io/v1alpha1
kind: BGPAdvertisement
metadata: {name: bgp}
spec: {ipPools: [bgp]}
`

// TestForwardingSourceRanges: every frontend of a Service carries the
// Service's source ranges, as they are, in both forwarding modes, for its
// layer 2 and its BGP addresses of both families; a Service without
// ranges gives nil (every client), one whose ranges could not be read
// its empty ranges (no client), which stay distinct.
func TestForwardingSourceRanges(t *testing.T) {
	cfg := load(t, rangesConfig)
	http := Port{Name: "http", Protocol: dataplane.TCP, Port: 80, NodePort: 30080}
	podHTTP := Port{Name: "http", Protocol: dataplane.TCP, Port: 8080}
	addr := netip.MustParseAddr
	allowed := dataplane.AllowOnly(netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:5100::/48"))
	nobody := dataplane.AllowOnly()
	svc := func(key string, ranges *dataplane.SourceRanges, addrs ...string) Service {
		s := Service{Key: key, Ports: []Port{http}, SourceRanges: ranges,
			Endpoints: []Endpoint{ep("203.0.113.10", "a", true, true, false, podHTTP), ep("2001:db8:10::10", "a", true, true, false, podHTTP)}}
		for _, a := range addrs {
			s.Addrs = append(s.Addrs, addr(a))
		}
		return s
	}
	in := Input{Config: cfg, Self: "a", Services: []Service{
		svc("ns/l2", allowed, "203.0.113.65", "2001:db8:ff64::1"),
		svc("ns/bgp", allowed, "203.0.113.97", "2001:db8:ff66::1"),
		svc("ns/open", nil, "203.0.113.66"),
		svc("ns/unreadable", nobody, "203.0.113.98"),
	}}
	self := []netip.Addr{addr("198.51.100.2"), addr("2001:db8:5100::2")}
	want := map[netip.Addr]*dataplane.SourceRanges{
		addr("203.0.113.65"): allowed, addr("2001:db8:ff64::1"): allowed,
		addr("203.0.113.97"): allowed, addr("2001:db8:ff66::1"): allowed,
		addr("203.0.113.66"): nil,
		addr("203.0.113.98"): nobody,
	}
	for _, mode := range []ForwardingMode{ForwardEndpoints, ForwardNodePort} {
		got := Forwarding(in, mode, self)
		if len(got) != len(want) {
			t.Fatalf("%s: %d frontends, want %d: %v", mode, len(got), len(want), got)
		}
		for _, fe := range got {
			w, ok := want[fe.Addr]
			if !ok {
				t.Errorf("%s: unexpected frontend %s", mode, fe.Addr)
				continue
			}
			if !w.Equal(fe.SourceRanges) {
				t.Errorf("%s: %s carries %v, want %v", mode, fe.Addr, fe.SourceRanges, w)
			}
			if (fe.SourceRanges == nil) != (w == nil) {
				t.Errorf("%s: %s: restricted is %v, want %v", mode, fe.Addr, fe.SourceRanges != nil, w != nil)
			}
			if len(fe.Backends) != 1 {
				t.Errorf("%s: %s has backends %v, want one: ranges restrict clients, not backends", mode, fe.Addr, fe.Backends)
			}
		}
	}
	if got := Forwarding(in, ForwardNone, self); got != nil {
		t.Errorf("none mode: %v", got)
	}
}
