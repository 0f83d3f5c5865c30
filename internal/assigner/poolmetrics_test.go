package assigner

import (
	"math/big"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/allocator"
)

func pow2(k uint) *big.Int { return new(big.Int).Lsh(big.NewInt(1), k) }

func add(a *big.Int, d int64) *big.Int { return new(big.Int).Add(a, big.NewInt(d)) }

// TestPoolCountsText: the integer fields saturate, the text ones stay exact.
func TestPoolCountsText(t *testing.T) {
	c := allocator.Counts{Total: pow2(64), Assigned: big.NewInt(3), Available: add(pow2(64), -3)}
	got := countsOf(c)
	want := v1alpha1.AddressCounts{Total: 1<<63 - 1, Assigned: 3, Available: 1<<63 - 1, TotalText: "2^64", AvailableText: "2^64-3"}
	if *got != want {
		t.Errorf("countsOf = %+v, want %+v", *got, want)
	}
}

// TestPoolMetrics: one family label spelling, ipv4 and ipv6, and the
// states of ironlb_pool_addresses add up to ironlb_pool_size.
func TestPoolMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics()
	if err := m.register(reg); err != nil {
		t.Fatal(err)
	}
	m.setPool("p", allocator.IPv4, allocator.Counts{Total: big.NewInt(16), Assigned: big.NewInt(3), Available: big.NewInt(13)})
	m.setPool("p", allocator.IPv6, allocator.Counts{Total: big.NewInt(256), Assigned: big.NewInt(1), Available: big.NewInt(255)})
	m.setPool("gone", allocator.IPv6, allocator.Counts{Total: big.NewInt(1), Assigned: big.NewInt(0), Available: big.NewInt(1)})
	m.forgetPool("gone", allocator.IPv6)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sums := map[string]float64{}
	sizes := map[string]float64{}
	for _, mf := range families {
		for _, s := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["pool"] == "gone" {
				t.Errorf("%s: series of a forgotten pool: %v", mf.GetName(), labels)
			}
			fam, ok := labels["family"]
			if !ok {
				continue
			}
			if fam != "ipv4" && fam != "ipv6" {
				t.Errorf("%s: family %q, want ipv4 or ipv6", mf.GetName(), fam)
			}
			switch mf.GetName() {
			case "ironlb_pool_addresses":
				sums[fam] += s.GetGauge().GetValue()
			case "ironlb_pool_size":
				sizes[fam] = s.GetGauge().GetValue()
			}
		}
	}
	for _, fam := range []string{"ipv4", "ipv6"} {
		if sums[fam] != sizes[fam] || sizes[fam] == 0 {
			t.Errorf("%s: states add up to %v, size %v", fam, sums[fam], sizes[fam])
		}
	}
	if n := testutil.CollectAndCount(m.addresses); n != 4 {
		t.Errorf("ironlb_pool_addresses has %d series, want 4 (assigned and available of two families)", n)
	}
}
