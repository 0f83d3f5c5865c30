package assigner

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the controller's Prometheus metrics, registered with
// Options.Registry.
type metrics struct {
	addresses *prometheus.GaugeVec
	results   *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{
		addresses: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ironlb_pool_addresses",
			Help: "Addresses of an IPPool by family and state (total, assigned, available).",
		}, []string{"pool", "family", "state"}),
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
	for _, c := range []prometheus.Collector{m.addresses, m.results} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("registering the controller's metrics: %w", err)
		}
	}
	return nil
}
