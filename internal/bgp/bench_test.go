package bgp

import (
	"fmt"
	"net/netip"
	"strconv"
	"testing"

	"github.com/ironlb/ironlb/internal/testutil"
)

// BenchmarkAdvertiseFRR measures, over one IPv6 eBGP session, the time
// from Set with every prefix until FRR holds them all, and the speaker
// process's memory once it advertises them. Withdrawing them again is
// not timed.
func BenchmarkAdvertiseFRR(b *testing.B) {
	for _, n := range []int{1_000, 10_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) { benchmarkAdvertise(b, n) })
	}
}

func benchmarkAdvertise(b *testing.B, n int) {
	needNet(b)
	l := newLab(b)
	l.r1.quiet = true
	l.r1.start(fromSpk16)
	sp := l.startSpeaker("info")
	none := Peer{Name: "r1-v6", Session: session(r1v6, asR1)}
	sp.set(Desired{RouterID: routerID, Peers: []Peer{none}})
	sp.waitEstablished("r1-v6")

	// /128s from 2001:db8:ff66::/104.
	all := none
	all.Routes = make(map[netip.Prefix]Route, n)
	for i := range n {
		a := netip.MustParseAddr("2001:db8:ff66::").As16()
		a[13], a[14], a[15] = byte((i+1)>>16), byte((i+1)>>8), byte(i+1)
		all.Routes[netip.PrefixFrom(netip.AddrFrom16(a), 128)] = Route{Communities: []uint32{community(65000, 100)}}
	}
	holds := func(want int) {
		b.Helper()
		testutil.Eventually(b, fmt.Sprintf("r1 holding %d prefixes", want), func() (bool, string) {
			got := l.r1.receivedCount(b, "ipv6", spk16)
			return got == want, fmt.Sprintf("%d prefixes", got)
		})
	}

	var mem helperMemory
	for b.Loop() {
		sp.set(Desired{RouterID: routerID, Peers: []Peer{all}})
		holds(n)
		b.StopTimer()
		mem = sp.memory()
		sp.set(Desired{RouterID: routerID, Peers: []Peer{none}})
		holds(0)
		b.StartTimer()
	}
	b.ReportMetric(float64(mem.RSS)/(1<<20), "rss-MB")
	b.ReportMetric(float64(mem.HeapInuse)/(1<<20), "heap-MB")
}
