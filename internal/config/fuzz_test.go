package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/iprange"
)

// gen draws values from the fuzzer's bytes; once they run out it returns
// zeros, so every input makes a snapshot.
type gen struct{ b []byte }

func (g *gen) byte() byte {
	if len(g.b) == 0 {
		return 0
	}
	v := g.b[0]
	g.b = g.b[1:]
	return v
}

func (g *gen) n(max int) int { return int(g.byte()) % max }

// Few names, so that references hit and duplicates happen.
var fuzzNames = []string{"a", "b", "c", "d"}

func (g *gen) name() string { return fuzzNames[g.n(len(fuzzNames))] }

func (g *gen) names() []string {
	var out []string
	for range g.n(3) {
		out = append(out, g.name())
	}
	return out
}

// addr makes an address near a handful of interesting places: the test
// ranges, the unsafe blocks and the edges of both address spaces.
func (g *gen) addr() netip.Addr {
	bases := []string{"203.0.113.0", "198.51.100.0", "0.0.0.0", "127.0.0.0", "169.254.0.0", "224.0.0.0", "255.255.255.0", "126.255.255.0",
		"2001:db8::", "::", "fe80::", "ff00::", "fec0::"}
	b := netip.MustParseAddr(bases[g.n(len(bases))]).AsSlice()
	b[len(b)-1] += g.byte() % 16
	if g.n(4) == 0 {
		b[len(b)-2] ^= g.byte()
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// entry makes a pool entry: a CIDR, a range, a single address, or junk.
func (g *gen) entry() string {
	a := g.addr()
	switch g.n(5) {
	case 0:
		return a.String()
	case 1:
		return netip.PrefixFrom(a, a.BitLen()-g.n(12)).Masked().String()
	case 2:
		return netip.PrefixFrom(a, g.n(a.BitLen()+1)).String() // host bits may be set
	case 3:
		b := a
		for range g.n(40) {
			b = b.Next()
		}
		if !b.IsValid() {
			b = a
		}
		if g.n(8) == 0 {
			a, b = b, a // sometimes in the wrong order
		}
		return a.String() + "-" + b.String()
	}
	return []string{"", "-", "x", "203.0.113.1-2001:db8::1", "203.0.113.0/33", "fe80::1%eth0"}[g.n(6)]
}

func (g *gen) selector() *v1alpha1.Selector {
	switch g.n(3) {
	case 0:
		return nil
	case 1:
		return &v1alpha1.Selector{MatchLabels: map[string]v1alpha1.LabelValue{"tier": v1alpha1.LabelValue(g.name())}}
	}
	op := []string{"In", "NotIn", "Exists", "Bogus"}[g.n(4)]
	return &v1alpha1.Selector{MatchExpressions: []v1alpha1.SelectorRequirement{{Key: "tier", Operator: op, Values: []v1alpha1.LabelValue{"a"}}}}
}

func (g *gen) meta() metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:              g.name(),
		Labels:            map[string]string{"tier": g.name()},
		CreationTimestamp: metav1.NewTime(epoch.Add(time.Duration(g.n(3)) * time.Minute)),
	}
}

func (g *gen) snapshot() Snapshot {
	var s Snapshot
	for range g.n(5) {
		p := v1alpha1.IPPool{ObjectMeta: g.meta()}
		for range g.n(4) {
			p.Spec.Addresses = append(p.Spec.Addresses, v1alpha1.AddressRange(g.entry()))
		}
		if g.n(2) == 0 {
			p.Spec.AllocateTo = &v1alpha1.AllocateTo{Priority: ptr(int32(g.n(4)) - 1), Namespaces: g.names(), ServiceSelector: g.selector()}
		}
		s.IPPools = append(s.IPPools, p)
	}
	for range g.n(3) {
		s.L2Advertisements = append(s.L2Advertisements, v1alpha1.L2Advertisement{ObjectMeta: g.meta(),
			Spec: v1alpha1.L2AdvertisementSpec{IPPools: g.names(), IPPoolSelector: g.selector(), NodeSelector: g.selector()}})
	}
	for range g.n(3) {
		spec := v1alpha1.BGPPeerSpec{PeerAddress: g.addr().String(), PeerASN: int64(g.n(3)) * 64512, MyASN: 64512, PeerPort: int32(g.n(3)) * 40000}
		if g.n(2) == 0 {
			spec.SourceAddress = g.addr().String()
		}
		if g.n(2) == 0 {
			spec.HoldTime = &metav1.Duration{Duration: time.Duration(g.n(200)) * time.Second / 2}
		}
		if g.n(2) == 0 {
			spec.KeepaliveTime = &metav1.Duration{Duration: time.Duration(g.n(100)) * time.Second}
		}
		s.BGPPeers = append(s.BGPPeers, v1alpha1.BGPPeer{ObjectMeta: g.meta(), Spec: spec})
	}
	for range g.n(3) {
		spec := v1alpha1.BGPAdvertisementSpec{IPPools: g.names(), IPPoolSelector: g.selector(), Peers: g.names(), NodeSelector: g.selector()}
		if g.n(2) == 0 {
			spec.AggregationLength = ptr(int32(g.n(40)))
		}
		if g.n(2) == 0 {
			spec.AggregationLengthV6 = ptr(int32(g.n(140)))
		}
		if g.n(2) == 0 {
			spec.Communities = []v1alpha1.Community{v1alpha1.Community([]string{"65000:100", "no-export", "l:1:2:3", "x:y", "70000:1"}[g.n(5)])}
		}
		s.BGPAdvertisements = append(s.BGPAdvertisements, v1alpha1.BGPAdvertisement{ObjectMeta: g.meta(), Spec: spec})
	}
	return s
}

// FuzzResolve resolves random snapshots and checks that nothing panics and
// that every configuration accepted keeps the resolver's promises.
func FuzzResolve(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{4, 0, 3, 1, 1, 0, 2, 1, 3, 7, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	f.Add([]byte("\x03\x01\x00\x02\x03\x00\x05\x02\x04\x01\x02\x02\x01\x00\x02\x02\x01\x03\x01\x02\x00\x01\x02\x03\x04\x05"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := (&gen{b: data}).snapshot()
		cfg, problems := Resolve(s)
		if err := checkInvariants(s, cfg, problems); err != nil {
			t.Fatalf("%v\nsnapshot: %+v\nproblems: %v", err, s, problems.Err())
		}
		// The same snapshot resolves the same way.
		again, problems2 := Resolve(s)
		if a, b := fmt.Sprint(summarize(cfg, problems)), fmt.Sprint(summarize(again, problems2)); a != b {
			t.Fatalf("two resolutions differ:\n%s\n%s", a, b)
		}
	})
}

// checkInvariants lists what resolve.go promises of its output.
func checkInvariants(s Snapshot, cfg *Config, problems Problems) error {
	for _, p := range problems {
		if p.Kind == "" || p.Name == "" || p.Field == "" || p.Err == nil {
			return fmt.Errorf("a problem lacks its kind, name, field or error: %#v", p)
		}
	}
	if !slices.IsSortedFunc(cfg.Pools, func(a, b *Pool) int { return strings.Compare(a.Name, b.Name) }) {
		return fmt.Errorf("pools are not sorted by name")
	}
	var all []poolRange
	for _, p := range cfg.Pools {
		if cfg.Pool(p.Name) != p {
			return fmt.Errorf("pool %q is not found by its name", p.Name)
		}
		if !slices.ContainsFunc(s.IPPools, func(in v1alpha1.IPPool) bool { return in.Name == p.Name }) {
			return fmt.Errorf("pool %q is not in the snapshot", p.Name)
		}
		for _, e := range problems.For(v1alpha1.KindIPPool, p.Name) {
			if e.Field != "metadata.name" { // a later duplicate is reported under the same name
				return fmt.Errorf("valid pool %q has a problem: %v", p.Name, e)
			}
		}
		if len(p.Ranges) == 0 {
			return fmt.Errorf("valid pool %q has no addresses", p.Name)
		}
		for i, r := range p.Ranges {
			if !r.First.IsValid() || r.Last.Less(r.First) || r.First.Is4() != r.Last.Is4() {
				return fmt.Errorf("pool %q has a malformed range %v", p.Name, r)
			}
			if i > 0 && p.Ranges[i-1].Compare(r) >= 0 {
				return fmt.Errorf("pool %q: ranges not sorted: %v", p.Name, p.Ranges)
			}
			if msgs := unsafeProblems(r.String(), r); len(msgs) > 0 {
				return fmt.Errorf("pool %q holds unsafe addresses: %v", p.Name, msgs)
			}
			for _, a := range []netip.Addr{r.First, r.Last} {
				if cfg.PoolFor(a) != p {
					return fmt.Errorf("PoolFor(%s) is not pool %q", a, p.Name)
				}
			}
			all = append(all, poolRange{Range: r, pool: p})
		}
	}
	// No address belongs to two pools (nor twice to one).
	slices.SortFunc(all, func(a, b poolRange) int { return a.Compare(b.Range) })
	for i := 1; i < len(all); i++ {
		if all[i-1].Overlaps(all[i].Range) {
			return fmt.Errorf("pools %q and %q overlap: %v and %v", all[i-1].pool.Name, all[i].pool.Name, all[i-1].Range, all[i].Range)
		}
	}
	valid := func(p *Pool) bool { return cfg.Pool(p.Name) == p }
	for _, a := range cfg.L2Advertisements {
		if a.NodeSelector == nil {
			return fmt.Errorf("L2Advertisement %q has no node selector", a.Name)
		}
		for _, p := range a.Pools {
			if !valid(p) {
				return fmt.Errorf("L2Advertisement %q refers to a pool not in the model: %q", a.Name, p.Name)
			}
		}
	}
	for _, p := range cfg.BGPPeers {
		if !p.Address.IsValid() || p.ASN == 0 || p.MyASN == 0 || p.Port == 0 || p.NodeSelector == nil {
			return fmt.Errorf("BGPPeer %q is incomplete: %+v", p.Name, p)
		}
		if p.SourceAddress.IsValid() && p.SourceAddress.Is4() != p.Address.Is4() {
			return fmt.Errorf("BGPPeer %q mixes families", p.Name)
		}
		if p.HoldTime != 0 && (p.KeepaliveTime < time.Second || p.KeepaliveTime > p.HoldTime) {
			return fmt.Errorf("BGPPeer %q: keepalive %s with hold time %s", p.Name, p.KeepaliveTime, p.HoldTime)
		}
	}
	for _, a := range cfg.BGPAdvertisements {
		if a.NodeSelector == nil {
			return fmt.Errorf("BGPAdvertisement %q has no node selector", a.Name)
		}
		for _, p := range a.Peers {
			if !slices.Contains(cfg.BGPPeers, p) {
				return fmt.Errorf("BGPAdvertisement %q refers to a peer not in the model: %q", a.Name, p.Name)
			}
		}
		for _, p := range a.Pools {
			if !valid(p) {
				return fmt.Errorf("BGPAdvertisement %q refers to a pool not in the model: %q", a.Name, p.Name)
			}
			for _, r := range p.Ranges {
				length := a.AggregationLengthV6
				if r.Is4() {
					length = a.AggregationLength
				}
				for _, pfx := range r.Prefixes() {
					if length < pfx.Bits() || length > pfx.Addr().BitLen() {
						return fmt.Errorf("BGPAdvertisement %q aggregates %s of pool %q to /%d", a.Name, pfx, p.Name, length)
					}
				}
			}
		}
	}
	return nil
}

// TestUnsafeRanges checks the unsafe-address rule at the edges of each
// block, with ranges that only span a block as well as ones that touch it.
func TestUnsafeRanges(t *testing.T) {
	for entry, want := range map[string][]string{
		"203.0.113.0/24":                  nil,
		"0.0.0.0":                         {"unspecified"},
		"0.0.0.1-126.255.255.255":         nil,
		"0.0.0.0/1":                       {"unspecified", "loopback"},
		"126.255.255.255-128.0.0.0":       {"loopback"},
		"128.0.0.0-169.253.255.255":       nil,
		"169.253.0.0-169.255.0.0":         {"link-local"},
		"169.255.0.0-223.255.255.255":     nil,
		"223.255.255.255-240.0.0.0":       {"multicast"},
		"240.0.0.0-255.255.255.254":       nil,
		"255.255.255.254-255.255.255.255": {"limited-broadcast"},
		"::":                              {"unspecified"},
		"::-::2":                          {"unspecified", "loopback"},
		"::2-fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff": nil,
		"fe00::-fec0::":  {"link-local"},
		"fe00::-ff00::1": {"multicast", "link-local"},
		"fec0::/10":      nil,
		"feff::-ff00::":  {"multicast"},
		"::/0":           {"unspecified", "loopback", "multicast", "link-local"},
		"0.0.0.0/0":      {"unspecified", "loopback", "multicast", "link-local", "limited-broadcast"},
	} {
		r, err := iprange.Parse(entry)
		if err != nil {
			t.Fatalf("%s: %v", entry, err)
		}
		got := unsafeProblems(entry, r)
		if len(got) != len(want) {
			t.Errorf("%s: got %q, want kinds %q", entry, got, want)
			continue
		}
		for i := range want {
			if !strings.Contains(got[i], want[i]) || !strings.HasPrefix(got[i], entry+" contains ") {
				t.Errorf("%s: problem %d = %q, want it to name %q", entry, i, got[i], want[i])
			}
		}
	}
}
