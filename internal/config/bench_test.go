package config

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/ironlb/ironlb/config/v1alpha1"
)

// bigSnapshot has n dual-stack pools (a /28 and a /120 each), one L2 and
// one BGP advertisement per 10 pools, and n/20 peers.
func bigSnapshot(n int) Snapshot {
	var s Snapshot
	for i := range n {
		s.IPPools = append(s.IPPools, pool(fmt.Sprintf("pool-%05d", i), i,
			netip.PrefixFrom(netip.AddrFrom4([4]byte{203, byte(i >> 4), byte(i << 4), 0}), 28).Masked().String(),
			fmt.Sprintf("2001:db8:%x::/120", i)))
	}
	for i := 0; i < n; i += 10 {
		s.L2Advertisements = append(s.L2Advertisements, l2(fmt.Sprintf("l2-%05d", i), fmt.Sprintf("pool-%05d", i)))
		s.BGPAdvertisements = append(s.BGPAdvertisements, bgpAdv(fmt.Sprintf("bgp-%05d", i), func(a *v1alpha1.BGPAdvertisementSpec) {
			a.IPPools = []string{fmt.Sprintf("pool-%05d", i)}
			a.Communities = []v1alpha1.Community{"64512:1", "no-export"}
		}))
	}
	for i := range n / 20 {
		s.BGPPeers = append(s.BGPPeers, peer(fmt.Sprintf("peer-%03d", i), fmt.Sprintf("198.51.100.%d", i+1)))
	}
	return s
}

func BenchmarkResolve1000Pools(b *testing.B) {
	s := bigSnapshot(1000)
	b.ReportAllocs()
	for b.Loop() {
		if _, ps := Resolve(s); len(ps) > 0 {
			b.Fatal(ps.Err())
		}
	}
}

func BenchmarkPoolFor1000Pools(b *testing.B) {
	c, ps := Resolve(bigSnapshot(1000))
	if len(ps) > 0 {
		b.Fatal(ps.Err())
	}
	addrs := []netip.Addr{netip.MustParseAddr("203.0.113.5"), netip.MustParseAddr("2001:db8:3e7::7"), netip.MustParseAddr("198.51.100.1")}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.PoolFor(addrs[i%len(addrs)])
		i++
	}
}
