package assigner

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ironlb/ironlb/internal/allocator"
)

// metrics are the controller's Prometheus metrics, registered with
// Options.Registry.
//
// A pool's size has a metric of its own rather than a state of
// ironlb_pool_addresses, so that a sum over the states of that one counts
// every address once.
type metrics struct {
	addresses *prometheus.GaugeVec
	size      *prometheus.GaugeVec
	results   *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{
		addresses: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ironlb_pool_addresses",
			Help: "Addresses of an IPPool by family and state (assigned, available); the states add up to ironlb_pool_size.",
		}, []string{"pool", "family", "state"}),
		size: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ironlb_pool_size",
			Help: "Addresses an IPPool holds of a family, assigned or not (Service CIDRs and node addresses left out).",
		}, []string{"pool", "family"}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ironlb_allocation_results_total",
			Help: "Changes of Services' ironlb.io/IPAllocated condition, by the new reason.",
		}, []string{"reason"}),
	}
}

// register adds the metrics to reg; nil keeps them unregistered.
func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m.addresses, m.size, m.results} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("registering the controller's metrics: %w", err)
		}
	}
	return nil
}

// setPool records one family's counts of a pool.
func (m *metrics) setPool(pool string, f allocator.Family, c allocator.Counts) {
	fam := familyLabel(f)
	m.size.WithLabelValues(pool, fam).Set(float(c.Total))
	m.addresses.WithLabelValues(pool, fam, "assigned").Set(float(c.Assigned))
	m.addresses.WithLabelValues(pool, fam, "available").Set(float(c.Available))
}

// forgetPool drops the series of a pool's family that is gone (the pool,
// or its last address of the family).
func (m *metrics) forgetPool(pool string, f allocator.Family) {
	fam := familyLabel(f)
	m.size.DeleteLabelValues(pool, fam)
	m.addresses.DeleteLabelValues(pool, fam, "assigned")
	m.addresses.DeleteLabelValues(pool, fam, "available")
}

// familyLabel is the value of the family label, spelled as in every
// ironlb metric: ipv4 or ipv6.
func familyLabel(f allocator.Family) string {
	if f == allocator.IPv4 {
		return "ipv4"
	}
	return "ipv6"
}
