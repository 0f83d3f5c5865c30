package allocator

import (
	"fmt"
	"testing"
)

// BenchmarkAssignRelease assigns an address to n Services from one pool and
// then releases them all; one op is the whole round. A /24 cannot hold
// more than 256 Services, so most of its assignments end as PoolExhausted,
// which is measured too. ns/service is the cost per Service (assign and
// release together).
func BenchmarkAssignRelease(b *testing.B) {
	pools := []struct {
		name, cidr string
		fam        Family
	}{
		{"v4-24", "203.0.113.0/24", IPv4},
		{"v4-16", "198.18.0.0/16", IPv4},
		{"v6-64", "2001:db8::/64", IPv6},
	}
	for _, p := range pools {
		for _, n := range []int{1000, 20000, 100000} {
			if p.fam == IPv4 && p.cidr == "198.18.0.0/16" && n > 65536 {
				continue
			}
			b.Run(fmt.Sprintf("%s/%d", p.name, n), func(b *testing.B) {
				cfg := cfgOf(b, poolSpec{name: "p", addrs: []string{p.cidr}})
				keys := make([]string, n)
				for i := range keys {
					keys[i] = fmt.Sprintf("ns/svc-%d", i)
				}
				b.ReportAllocs()
				for b.Loop() {
					a := New(cfg)
					for _, k := range keys {
						a.Assign(Request{Key: k, Namespace: "ns", Families: []Family{p.fam}})
					}
					for _, k := range keys {
						a.Release(k)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/service")
			})
		}
	}
}
