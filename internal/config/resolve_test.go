package config

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/config/v1alpha1"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// pool makes an IPPool created `age` minutes after the epoch.
func pool(name string, age int, addrs ...string) v1alpha1.IPPool {
	p := v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(epoch.Add(time.Duration(age) * time.Minute))}}
	for _, a := range addrs {
		p.Spec.Addresses = append(p.Spec.Addresses, v1alpha1.AddressRange(a))
	}
	return p
}

func peer(name, addr string, mutate ...func(*v1alpha1.BGPPeerSpec)) v1alpha1.BGPPeer {
	p := v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.BGPPeerSpec{PeerAddress: addr, PeerASN: 64512, MyASN: 64513}}
	for _, m := range mutate {
		m(&p.Spec)
	}
	return p
}

func l2(name string, pools ...string) v1alpha1.L2Advertisement {
	return v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.L2AdvertisementSpec{IPPools: pools}}
}

func bgpAdv(name string, mutate func(*v1alpha1.BGPAdvertisementSpec)) v1alpha1.BGPAdvertisement {
	a := v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if mutate != nil {
		mutate(&a.Spec)
	}
	return a
}

func ptr[T any](v T) *T { return &v }

// summary is what the tests compare: the names of the valid objects of each
// kind and, per problem, "Kind/name field: substring-checked message".
type summary struct {
	Pools, L2, Peers, BGPAdvs []string
	Problems                  []string
}

func summarize(c *Config, ps Problems) summary {
	var s summary
	for _, p := range c.Pools {
		s.Pools = append(s.Pools, p.Name)
	}
	for _, a := range c.L2Advertisements {
		s.L2 = append(s.L2, a.Name)
	}
	for _, p := range c.BGPPeers {
		s.Peers = append(s.Peers, p.Name)
	}
	for _, a := range c.BGPAdvertisements {
		s.BGPAdvs = append(s.BGPAdvs, a.Name)
	}
	for _, p := range ps {
		s.Problems = append(s.Problems, p.Kind+"/"+p.Name+" "+p.Field)
	}
	return s
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name string
		in   Snapshot
		want summary
		// msgs are substrings expected in the problems' messages, in order.
		msgs []string
	}{
		{
			name: "valid dual-stack pools",
			in:   Snapshot{IPPools: []v1alpha1.IPPool{pool("v4", 0, "203.0.113.0/25"), pool("v6", 0, "2001:db8::/64"), pool("dual", 0, "203.0.113.128/25", "2001:db8:1::-2001:db8:1::ff")}},
			want: summary{Pools: []string{"dual", "v4", "v6"}},
		},
		{
			name: "overlapping IPv4 CIDR and range: the newer pool is invalid and names the older",
			in:   Snapshot{IPPools: []v1alpha1.IPPool{pool("new", 5, "203.0.113.100-203.0.113.200"), pool("old", 1, "203.0.113.0/25")}},
			want: summary{Pools: []string{"old"}, Problems: []string{"IPPool/new spec.addresses[0]"}},
			msgs: []string{`203.0.113.100-203.0.113.200 overlaps 203.0.113.0/25 (spec.addresses[0]) of IPPool "old"`},
		},
		{
			name: "overlapping IPv6 ranges, found in the second entry",
			in:   Snapshot{IPPools: []v1alpha1.IPPool{pool("a", 1, "2001:db8::/64"), pool("b", 2, "2001:db8:1::/64", "2001:db8::ffff-2001:db8:0:1::5")}},
			want: summary{Pools: []string{"a"}, Problems: []string{"IPPool/b spec.addresses[1]"}},
			msgs: []string{`of IPPool "a"`},
		},
		{
			name: "same creation time: the name decides",
			in:   Snapshot{IPPools: []v1alpha1.IPPool{pool("zeta", 0, "203.0.113.7"), pool("alpha", 0, "203.0.113.0/29")}},
			want: summary{Pools: []string{"alpha"}, Problems: []string{"IPPool/zeta spec.addresses[0]"}},
		},
		{
			name: "IPv4 and IPv6 never overlap, whatever their bytes",
			in:   Snapshot{IPPools: []v1alpha1.IPPool{pool("a", 0, "203.0.113.0/24"), pool("b", 0, "::cb00:7100/120")}},
			want: summary{Pools: []string{"a", "b"}},
		},
		{
			name: "entries of one pool overlapping each other",
			in:   Snapshot{IPPools: []v1alpha1.IPPool{pool("self", 0, "203.0.113.0/28", "203.0.113.8-203.0.113.20")}},
			want: summary{Problems: []string{"IPPool/self spec.addresses[1]"}},
			msgs: []string{"overlaps spec.addresses[0] (203.0.113.0/28) of the same pool"},
		},
		{
			name: "adjacent entries do not overlap",
			in:   Snapshot{IPPools: []v1alpha1.IPPool{pool("p", 0, "203.0.113.0/28", "203.0.113.16-203.0.113.20"), pool("q", 0, "203.0.113.21")}},
			want: summary{Pools: []string{"p", "q"}},
		},
		{
			name: "one invalid pool among valid ones; an advertisement naming it keeps the others",
			in: Snapshot{
				IPPools:          []v1alpha1.IPPool{pool("good", 0, "203.0.113.0/28"), pool("bad", 0, "203.0.113.17/28"), pool("other", 0, "2001:db8::/120")},
				L2Advertisements: []v1alpha1.L2Advertisement{l2("both", "good", "bad")},
			},
			want: summary{Pools: []string{"good", "other"}, L2: []string{"both"}, Problems: []string{"IPPool/bad spec.addresses[0]"}},
			msgs: []string{"the network address is 203.0.113.16/28"},
		},
		{
			name: "an advertisement naming a pool that does not exist is invalid",
			in: Snapshot{
				IPPools:          []v1alpha1.IPPool{pool("good", 0, "203.0.113.0/28")},
				L2Advertisements: []v1alpha1.L2Advertisement{l2("typo", "good", "goood"), l2("fine", "good")},
			},
			want: summary{Pools: []string{"good"}, L2: []string{"fine"}, Problems: []string{"L2Advertisement/typo spec.ipPools[1]"}},
			msgs: []string{`IPPool "goood" does not exist`},
		},
		{
			name: "BGP advertisement naming a peer that does not exist",
			in: Snapshot{
				IPPools:           []v1alpha1.IPPool{pool("good", 0, "203.0.113.0/28")},
				BGPPeers:          []v1alpha1.BGPPeer{peer("rtr", "198.51.100.1")},
				BGPAdvertisements: []v1alpha1.BGPAdvertisement{bgpAdv("a", func(s *v1alpha1.BGPAdvertisementSpec) { s.Peers = []string{"rtr", "rtr2"} })},
			},
			want: summary{Pools: []string{"good"}, Peers: []string{"rtr"}, Problems: []string{"BGPAdvertisement/a spec.peers[1]"}},
			msgs: []string{`BGPPeer "rtr2" does not exist`},
		},
		{
			name: "aggregation length shorter than a pool's prefix",
			in: Snapshot{
				IPPools: []v1alpha1.IPPool{pool("p", 0, "203.0.113.0/28", "2001:db8::/64")},
				BGPAdvertisements: []v1alpha1.BGPAdvertisement{
					bgpAdv("too-short", func(s *v1alpha1.BGPAdvertisementSpec) { s.AggregationLength = ptr[int32](24) }),
					bgpAdv("v6-too-short", func(s *v1alpha1.BGPAdvertisementSpec) { s.AggregationLengthV6 = ptr[int32](48) }),
					bgpAdv("ok", func(s *v1alpha1.BGPAdvertisementSpec) {
						s.AggregationLength = ptr[int32](28)
						s.AggregationLengthV6 = ptr[int32](64)
					}),
				},
			},
			want: summary{Pools: []string{"p"}, BGPAdvs: []string{"ok"}, Problems: []string{"BGPAdvertisement/too-short spec.aggregationLength", "BGPAdvertisement/v6-too-short spec.aggregationLengthV6"}},
			msgs: []string{`24 is shorter than 203.0.113.0/28 of IPPool "p"`, `48 is shorter than 2001:db8::/64`},
		},
		{
			name: "peer checks the schema also makes",
			in: Snapshot{BGPPeers: []v1alpha1.BGPPeer{
				peer("asn0", "198.51.100.1", func(s *v1alpha1.BGPPeerSpec) { s.PeerASN = 0 }),
				peer("hold", "198.51.100.1", func(s *v1alpha1.BGPPeerSpec) { s.HoldTime = &metav1.Duration{Duration: 2 * time.Second} }),
				peer("keepalive", "198.51.100.1", func(s *v1alpha1.BGPPeerSpec) { s.KeepaliveTime = &metav1.Duration{Duration: 91 * time.Second} }),
				peer("family", "198.51.100.1", func(s *v1alpha1.BGPPeerSpec) { s.SourceAddress = "2001:db8::1" }),
				peer("ok", "2001:db8::1"),
			}},
			want: summary{Peers: []string{"ok"}, Problems: []string{"BGPPeer/asn0 spec.peerASN", "BGPPeer/family spec.sourceAddress", "BGPPeer/hold spec.holdTime", "BGPPeer/keepalive spec.keepaliveTime"}},
		},
		{
			name: "dynamic AS, connect time and received prefixes",
			in: Snapshot{BGPPeers: []v1alpha1.BGPPeer{
				peer("both", "198.51.100.1", func(s *v1alpha1.BGPPeerSpec) { s.DynamicASN = "internal" }),
				peer("bad-dynamic", "198.51.100.1", func(s *v1alpha1.BGPPeerSpec) { s.PeerASN, s.DynamicASN = 0, "confederation" }),
				peer("connect", "198.51.100.1", func(s *v1alpha1.BGPPeerSpec) { s.ConnectTime = &metav1.Duration{Duration: 1500 * time.Millisecond} }),
				peer("max", "198.51.100.1", func(s *v1alpha1.BGPPeerSpec) { s.MaxReceivedPrefixes = ptr[int64](0) }),
				peer("internal", "198.51.100.2", func(s *v1alpha1.BGPPeerSpec) { s.PeerASN, s.DynamicASN = 0, "internal" }),
				peer("external", "198.51.100.3", func(s *v1alpha1.BGPPeerSpec) {
					s.PeerASN, s.DynamicASN = 0, "external"
					s.ConnectTime, s.MaxReceivedPrefixes = &metav1.Duration{Duration: 2 * time.Second}, ptr[int64](10)
				}),
			}},
			want: summary{Peers: []string{"external", "internal"}, Problems: []string{
				"BGPPeer/bad-dynamic spec.dynamicASN", "BGPPeer/both spec.dynamicASN", "BGPPeer/connect spec.connectTime", "BGPPeer/max spec.maxReceivedPrefixes"}},
			msgs: []string{`"confederation": must be internal or external`, `set either peerASN (64512) or dynamicASN, not both`,
				"1.5s: must be a whole number of seconds from 1s to 65535s", "0: must be from 1 to 4294967295"},
		},
		{
			name: "bfd block",
			in: Snapshot{BGPPeers: []v1alpha1.BGPPeer{
				peer("short", "198.51.100.1", func(s *v1alpha1.BGPPeerSpec) {
					s.BFD = &v1alpha1.BFDSettings{ReceiveInterval: &metav1.Duration{Duration: 5 * time.Millisecond}}
				}),
				peer("fraction", "198.51.100.1", func(s *v1alpha1.BGPPeerSpec) {
					s.BFD = &v1alpha1.BFDSettings{TransmitInterval: &metav1.Duration{Duration: 1500 * time.Microsecond}}
				}),
				peer("long", "198.51.100.1", func(s *v1alpha1.BGPPeerSpec) {
					s.BFD = &v1alpha1.BFDSettings{TransmitInterval: &metav1.Duration{Duration: time.Minute + time.Millisecond}}
				}),
				peer("mult", "198.51.100.1", func(s *v1alpha1.BGPPeerSpec) { s.BFD = &v1alpha1.BFDSettings{DetectMultiplier: ptr[int32](1)} }),
				peer("echo", "198.51.100.1", func(s *v1alpha1.BGPPeerSpec) { s.BFD = &v1alpha1.BFDSettings{EchoMode: true} }),
				peer("ok", "198.51.100.2", func(s *v1alpha1.BGPPeerSpec) { s.BFD = &v1alpha1.BFDSettings{} }),
			}},
			want: summary{Peers: []string{"ok"}, Problems: []string{"BGPPeer/echo spec.bfd.echoMode", "BGPPeer/fraction spec.bfd.transmitInterval",
				"BGPPeer/long spec.bfd.transmitInterval", "BGPPeer/mult spec.bfd.detectMultiplier", "BGPPeer/short spec.bfd.receiveInterval"}},
			msgs: []string{"echo mode is not supported, only false", "1.5ms: must be a whole number of milliseconds from 10ms to 60s",
				"1m0.001s: must be a whole number of milliseconds from 10ms to 60s", "1: must be from 2 to 255", "5ms: must be a whole number of milliseconds from 10ms to 60s"},
		},
		{
			name: "duplicate names (from a file)",
			in:   Snapshot{IPPools: []v1alpha1.IPPool{pool("p", 0, "203.0.113.0/28"), pool("p", 0, "203.0.113.16/28")}},
			want: summary{Pools: []string{"p"}, Problems: []string{"IPPool/p metadata.name"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ps := Resolve(tt.in)
			if diff := cmp.Diff(tt.want, summarize(c, ps)); diff != "" {
				t.Fatalf("Resolve (-want +got):\n%s\nproblems: %v", diff, ps.Err())
			}
			for i, m := range tt.msgs {
				if !strings.Contains(ps[i].Error(), m) {
					t.Errorf("problem %d = %q, want it to contain %q", i, ps[i], m)
				}
			}
		})
	}
}

// TestResolvePeerASN: the router's AS as the model holds it for a fixed
// and each dynamic peerASN, and the defaults of the new fields.
func TestResolvePeerASN(t *testing.T) {
	c, ps := Resolve(Snapshot{BGPPeers: []v1alpha1.BGPPeer{
		peer("fixed", "198.51.100.1"),
		peer("internal", "198.51.100.2", func(s *v1alpha1.BGPPeerSpec) { s.PeerASN, s.DynamicASN = 0, "internal" }),
		peer("external", "198.51.100.3", func(s *v1alpha1.BGPPeerSpec) {
			s.PeerASN, s.DynamicASN = 0, "external"
			s.ConnectTime, s.MaxReceivedPrefixes = &metav1.Duration{Duration: 2 * time.Second}, ptr[int64](10)
		}),
	}})
	if err := ps.Err(); err != nil {
		t.Fatal(err)
	}
	type got struct {
		ASN, MaxReceived uint32
		IBGP             bool
		ConnectTime      time.Duration
	}
	want := map[string]got{
		"fixed":    {ASN: 64512, MaxReceived: DefaultMaxReceivedPrefixes},
		"internal": {ASN: 64513, MaxReceived: DefaultMaxReceivedPrefixes, IBGP: true},
		"external": {ASN: 0, MaxReceived: 10, ConnectTime: 2 * time.Second},
	}
	for _, p := range c.BGPPeers {
		if g := (got{p.ASN, p.MaxReceived, p.IBGP(), p.ConnectTime}); g != want[p.Name] {
			t.Errorf("peer %s: %+v, want %+v", p.Name, g, want[p.Name])
		}
	}
}

func TestResolveModel(t *testing.T) {
	c, ps := Resolve(Snapshot{
		IPPools: []v1alpha1.IPPool{
			pool("a", 0, "203.0.113.0/28", "2001:db8::10-2001:db8::1f"),
			pool("b", 0, "203.0.113.64-203.0.113.70"),
			{ObjectMeta: metav1.ObjectMeta{Name: "c", Labels: map[string]string{"tier": "gold"}}, Spec: v1alpha1.IPPoolSpec{
				Addresses: []v1alpha1.AddressRange{"203.0.113.128/26"}, AutoAssign: ptr(false),
				AllocateTo: &v1alpha1.AllocateTo{Priority: ptr[int32](3), Namespaces: []string{"web"}},
			}},
		},
		L2Advertisements: []v1alpha1.L2Advertisement{{ObjectMeta: metav1.ObjectMeta{Name: "gold"}, Spec: v1alpha1.L2AdvertisementSpec{
			IPPoolSelector: &v1alpha1.Selector{MatchLabels: map[string]v1alpha1.LabelValue{"tier": "gold"}},
		}}, l2("all")},
		BGPPeers: []v1alpha1.BGPPeer{
			peer("everywhere", "198.51.100.1"),
			peer("rack1", "198.51.100.2", func(s *v1alpha1.BGPPeerSpec) {
				s.NodeSelector = &v1alpha1.Selector{MatchExpressions: []v1alpha1.SelectorRequirement{{Key: "rack", Operator: "In", Values: []v1alpha1.LabelValue{"r1"}}}}
				s.HoldTime = &metav1.Duration{Duration: 9 * time.Second}
			}),
		},
		BGPAdvertisements: []v1alpha1.BGPAdvertisement{bgpAdv("x", func(s *v1alpha1.BGPAdvertisementSpec) {
			s.IPPools = []string{"b"}
			s.Communities = []v1alpha1.Community{"65000:100", "no-export", "l:64512:1:2"}
			s.LocalPref = ptr[int64](200)
		})},
	})
	if len(ps) != 0 {
		t.Fatalf("unexpected problems: %v", ps.Err())
	}
	for addr, want := range map[string]string{
		"203.0.113.0": "a", "203.0.113.15": "a", "203.0.113.16": "", "203.0.113.64": "b", "203.0.113.70": "b",
		"203.0.113.71": "", "203.0.113.191": "c", "2001:db8::10": "a", "2001:db8::1f": "a", "2001:db8::20": "",
		"::cb00:7100": "", "198.51.100.1": "",
	} {
		got := ""
		if p := c.PoolFor(netip.MustParseAddr(addr)); p != nil {
			got = p.Name
		}
		if got != want {
			t.Errorf("PoolFor(%s) = %q, want %q", addr, got, want)
		}
	}
	if p := c.Pool("c"); p.AutoAssign || p.Priority != 3 || !p.Namespaces["web"] || p.HasFamily(false) {
		t.Errorf("pool c resolved wrongly: %+v", p)
	}
	if p := c.Pool("a"); !p.AutoAssign || p.Priority != NoPriority || !p.HasFamily(true) || !p.HasFamily(false) {
		t.Errorf("pool a resolved wrongly: %+v", p)
	}
	poolNames := func(ps []*Pool) (out []string) {
		for _, p := range ps {
			out = append(out, p.Name)
		}
		return out
	}
	if diff := cmp.Diff([]string{"a", "b", "c"}, poolNames(c.L2Advertisements[0].Pools)); diff != "" {
		t.Errorf("L2Advertisement all pools (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"c"}, poolNames(c.L2Advertisements[1].Pools)); diff != "" {
		t.Errorf("L2Advertisement gold pools (-want +got):\n%s", diff)
	}
	peerNames := func(node labels.Set) (out []string) {
		for _, p := range c.PeersFor(node) {
			out = append(out, p.Name)
		}
		return out
	}
	if diff := cmp.Diff([]string{"everywhere", "rack1"}, peerNames(labels.Set{"rack": "r1"})); diff != "" {
		t.Errorf("peers of a rack r1 node (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"everywhere"}, peerNames(labels.Set{"rack": "r2"})); diff != "" {
		t.Errorf("peers of a rack r2 node (-want +got):\n%s", diff)
	}
	rack1 := c.BGPPeers[1]
	if rack1.HoldTime != 9*time.Second || rack1.KeepaliveTime != 3*time.Second || rack1.Port != 179 || rack1.IBGP() {
		t.Errorf("peer rack1 resolved wrongly: %+v", rack1)
	}
	if ev := c.BGPPeers[0]; ev.HoldTime != 90*time.Second || ev.KeepaliveTime != 30*time.Second {
		t.Errorf("peer defaults wrong: %+v", ev)
	}
	adv := c.BGPAdvertisements[0]
	want := []Community{{Standard: 65000<<16 | 100}, {Standard: 0xFFFFFF01}, {Large: true, Global: 64512, Local1: 1, Local2: 2}}
	if diff := cmp.Diff(want, adv.Communities); diff != "" {
		t.Errorf("communities (-want +got):\n%s", diff)
	}
	if len(adv.Peers) != 2 || *adv.LocalPref != 200 || adv.AggregationLength != 32 || adv.AggregationLengthV6 != 128 {
		t.Errorf("advertisement resolved wrongly: %+v", adv)
	}
}

func TestParseCommunity(t *testing.T) {
	for _, s := range []string{"0:0", "65535:65535", "large:0:0:0", "l:4294967295:4294967295:4294967295", "no-peer", "blackhole"} {
		c, err := ParseCommunity(s)
		if err != nil {
			t.Errorf("ParseCommunity(%q): %v", s, err)
			continue
		}
		if back, err := ParseCommunity(c.String()); err != nil || back != c {
			t.Errorf("ParseCommunity(%q) = %v, printed %q, parsed back %v, %v", s, c, c.String(), back, err)
		}
	}
	for _, s := range []string{"65536:1", "1:65536", "1:2:3", "large:4294967296:0:0", "x:1:2:3", "no_export", "", ":", "1:", "123456:1", "-1:5", "+1:5"} {
		if _, err := ParseCommunity(s); err == nil || !errors.Is(err, ErrInvalidValue) {
			t.Errorf("ParseCommunity(%q) = %v, want an ErrInvalidValue", s, err)
		}
	}
}

func TestPoolAllows(t *testing.T) {
	sel := func(k, v string) *v1alpha1.Selector {
		return &v1alpha1.Selector{MatchLabels: map[string]v1alpha1.LabelValue{k: v1alpha1.LabelValue(v)}}
	}
	mk := func(at *v1alpha1.AllocateTo) *Pool {
		p := pool("p", 0, "203.0.113.0/28")
		p.Spec.AllocateTo = at
		c, ps := Resolve(Snapshot{IPPools: []v1alpha1.IPPool{p}})
		if len(ps) > 0 {
			t.Fatal(ps.Err())
		}
		return c.Pool("p")
	}
	open := mk(nil)
	listed := mk(&v1alpha1.AllocateTo{Namespaces: []string{"web"}})
	either := mk(&v1alpha1.AllocateTo{Namespaces: []string{"web"}, NamespaceSelector: sel("team", "pay")})
	both := mk(&v1alpha1.AllocateTo{NamespaceSelector: sel("team", "pay"), ServiceSelector: sel("expose", "yes")})
	tests := []struct {
		name     string
		pool     *Pool
		ns       string
		nsLabels labels.Set
		svc      labels.Set
		want     bool
	}{
		{"no restriction", open, "any", nil, nil, true},
		{"listed namespace", listed, "web", nil, nil, true},
		{"unlisted namespace", listed, "db", nil, nil, false},
		{"listed, selector not matching", either, "web", labels.Set{"team": "x"}, nil, true},
		{"unlisted, selector matching", either, "db", labels.Set{"team": "pay"}, nil, true},
		{"unlisted, selector not matching", either, "db", labels.Set{"team": "x"}, nil, false},
		{"namespace and service match", both, "db", labels.Set{"team": "pay"}, labels.Set{"expose": "yes"}, true},
		{"namespace matches, service does not", both, "db", labels.Set{"team": "pay"}, labels.Set{"expose": "no"}, false},
		{"service matches, namespace does not", both, "db", nil, labels.Set{"expose": "yes"}, false},
	}
	for _, tt := range tests {
		if got := tt.pool.Allows(tt.ns, tt.nsLabels, tt.svc); got != tt.want {
			t.Errorf("%s: Allows = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestResolveBFD: the bfd block's defaults and given values in the model;
// no block, no BFD.
func TestResolveBFD(t *testing.T) {
	c, ps := Resolve(Snapshot{BGPPeers: []v1alpha1.BGPPeer{
		peer("none", "198.51.100.1"),
		peer("defaults", "198.51.100.2", func(s *v1alpha1.BGPPeerSpec) { s.BFD = &v1alpha1.BFDSettings{} }),
		peer("given", "198.51.100.3", func(s *v1alpha1.BGPPeerSpec) {
			s.BFD = &v1alpha1.BFDSettings{ReceiveInterval: &metav1.Duration{Duration: 50 * time.Millisecond},
				TransmitInterval: &metav1.Duration{Duration: time.Second}, DetectMultiplier: ptr[int32](255)}
		}),
	}})
	if err := ps.Err(); err != nil {
		t.Fatal(err)
	}
	want := map[string]*BFD{
		"none":     nil,
		"defaults": {ReceiveInterval: 300 * time.Millisecond, TransmitInterval: 300 * time.Millisecond, DetectMultiplier: 3},
		"given":    {ReceiveInterval: 50 * time.Millisecond, TransmitInterval: time.Second, DetectMultiplier: 255},
	}
	for _, p := range c.BGPPeers {
		if diff := cmp.Diff(want[p.Name], p.BFD); diff != "" {
			t.Errorf("peer %s BFD (-want +got):\n%s", p.Name, diff)
		}
	}
}
