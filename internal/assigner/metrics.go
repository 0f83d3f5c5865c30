package controller

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// metrics are the controller's Prometheus metrics, served by the manager's
// metrics endpoint.
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

// register adds the metrics to controller-runtime's registry; a second
// controller in one process (tests run several) shares the first's.
func (m *metrics) register() error {
	a, err := registerOrExisting(m.addresses)
	if err != nil {
		return err
	}
	r, err := registerOrExisting(m.results)
	if err != nil {
		return err
	}
	m.addresses, m.results = a.(*prometheus.GaugeVec), r.(*prometheus.CounterVec)
	return nil
}

func registerOrExisting(c prometheus.Collector) (prometheus.Collector, error) {
	if err := crmetrics.Registry.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			return are.ExistingCollector, nil
		}
		return nil, err
	}
	return c, nil
}
