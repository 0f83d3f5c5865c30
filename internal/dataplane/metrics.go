package dataplane

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/knftables"
)

// Metrics are the forwarding path's Prometheus metrics. A nil *Metrics
// records nothing. The family label is ipv4 or ipv6, as in the other
// ironlb metrics, not the nftables family (ip, ip6).
type Metrics struct {
	syncs    *prometheus.HistogramVec
	failures *prometheus.CounterVec
	elements *prometheus.GaugeVec
}

// NewMetrics makes the metrics and registers them with reg (when reg is
// not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		syncs: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ironlb_forwarding_sync_duration_seconds",
			Help:    "Time taken to bring one family's nftables table to the desired state; kind is full or partial.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"family", "kind", "result"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ironlb_forwarding_sync_failures_total",
			Help: "nftables transactions that failed.",
		}, []string{"family"}),
		elements: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ironlb_forwarding_objects",
			Help: "What ironlb's table holds after the last successful sync: elements per set or map (addresses, services, backends, masquerading) and the number of chains besides the base chains (chains).",
		}, []string{"family", "object"}),
	}
	if reg != nil {
		reg.MustRegister(m.syncs, m.failures, m.elements)
	}
	return m
}

// observe records one table's sync; nftFamily is the table's nftables
// family ("ip" or "ip6").
func (m *Metrics) observe(nftFamily, kind string, took time.Duration, err error, mod *model) {
	if m == nil {
		return
	}
	family := familyLabel(nftFamily)
	result := "ok"
	if err != nil {
		result = "error"
		m.failures.WithLabelValues(family).Inc()
	}
	m.syncs.WithLabelValues(family, kind, result).Observe(took.Seconds())
	if err == nil {
		for k, v := range mod.counts() {
			m.elements.WithLabelValues(family, k).Set(float64(v))
		}
	}
}

// familyLabel is the family label's value for an nftables family, spelled
// as in every ironlb metric: ipv4 or ipv6.
func familyLabel(nftFamily string) string {
	switch knftables.Family(nftFamily) {
	case knftables.IPv4Family:
		return "ipv4"
	case knftables.IPv6Family:
		return "ipv6"
	}
	return nftFamily // no other table is made; shown as it is if one were
}
