package membership

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the Prometheus metrics of one Cluster.
type Metrics struct {
	members prometheus.Gauge
}

// NewMetrics creates the metrics and registers them with reg (unless reg is
// nil); registering twice with one registry panics, as MustRegister does.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		members: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ironlb_memberlist_members",
			Help: "Speakers this speaker sees alive in memberlist, itself included; 0 when it is not running.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.members)
	}
	return m
}

func (m *Metrics) setMembers(n int) {
	if m != nil {
		m.members.Set(float64(n))
	}
}
