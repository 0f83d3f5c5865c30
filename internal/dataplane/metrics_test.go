package dataplane

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/knftables"
)

// TestMetricsFamilyLabel: a sync of both tables is recorded under family
// ipv4 and ipv6, the spelling of every ironlb metric, not under the
// nftables families ip and ip6.
func TestMetricsFamilyLabel(t *testing.T) {
	reg := prometheus.NewRegistry()
	d, err := New(Options{Metrics: NewMetrics(reg), NFT: map[knftables.Family]knftables.Interface{
		knftables.IPv4Family: knftables.NewFake(knftables.IPv4Family, tableName),
		knftables.IPv6Family: knftables.NewFake(knftables.IPv6Family, tableName),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]map[string]bool{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() != "family" {
					continue
				}
				if seen[mf.GetName()] == nil {
					seen[mf.GetName()] = map[string]bool{}
				}
				seen[mf.GetName()][l.GetValue()] = true
			}
		}
	}
	for _, name := range []string{"ironlb_forwarding_sync_duration_seconds", "ironlb_forwarding_objects"} {
		if got := seen[name]; len(got) != 2 || !got["ipv4"] || !got["ipv6"] {
			t.Errorf("%s: family values %v, want ipv4 and ipv6", name, got)
		}
	}
	if got := familyLabel(string(knftables.InetFamily)); got != "inet" {
		t.Errorf("familyLabel(inet) = %q, want it shown as it is", got)
	}
}
