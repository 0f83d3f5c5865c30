package layer2

import (
	"net/netip"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMetricsFamilyLabel: every layer 2 metric spells the family ipv4 or
// ipv6, as every ironlb metric does.
func TestMetricsFamilyLabel(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	for _, a := range []netip.Addr{netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("2001:db8::1")} {
		f := familyOf(a)
		k := key{name: "eth0", fam: f}
		m.answer(k)
		m.announce(k)
		m.conflict(k)
		m.setOwned(f, 1)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 4 {
		t.Errorf("%d metrics gathered, want 4", len(mfs))
	}
	for _, mf := range mfs {
		got := map[string]bool{}
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "family" {
					got[l.GetValue()] = true
				}
			}
		}
		if len(got) != 2 || !got["ipv4"] || !got["ipv6"] {
			t.Errorf("%s: family values %v, want ipv4 and ipv6", mf.GetName(), got)
		}
	}
}
