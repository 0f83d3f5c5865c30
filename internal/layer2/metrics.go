package layer2

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the layer 2 announcer's Prometheus metrics. A nil *Metrics
// records nothing.
//
// Labels are bounded: interface and family only, never an address or a
// MAC (a spoofer on the LAN could mint those without end), and the series
// of an interface are deleted when it stops being used (forget).
type Metrics struct {
	answered   *prometheus.CounterVec
	gratuitous *prometheus.CounterVec
	conflicts  *prometheus.CounterVec
	owned      *prometheus.GaugeVec
}

// NewMetrics makes the metrics and registers them with reg (when reg is
// not nil); registering twice with one registry panics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		answered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ironlb_l2_requests_answered_total",
			Help: "ARP requests and IPv6 neighbor solicitations answered for owned addresses.",
		}, []string{"interface", "family"}),
		gratuitous: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ironlb_l2_gratuitous_sent_total",
			Help: "Gratuitous ARP requests and unsolicited neighbor advertisements sent.",
		}, []string{"interface", "family"}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ironlb_l2_conflicts_total",
			Help: "Announcements from another host (not a handoff's successor) of an address this node answers for.",
		}, []string{"interface", "family"}),
		owned: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ironlb_l2_owned_addresses",
			Help: "Addresses this node owns in layer 2 mode (the desired state given to the announcer).",
		}, []string{"family"}),
	}
	if reg != nil {
		reg.MustRegister(m.answered, m.gratuitous, m.conflicts, m.owned)
	}
	return m
}

func (m *Metrics) answer(k key) {
	if m != nil {
		m.answered.WithLabelValues(k.name, k.fam.String()).Inc()
	}
}

func (m *Metrics) announce(k key) {
	if m != nil {
		m.gratuitous.WithLabelValues(k.name, k.fam.String()).Inc()
	}
}

func (m *Metrics) conflict(k key) {
	if m != nil {
		m.conflicts.WithLabelValues(k.name, k.fam.String()).Inc()
	}
}

// forget deletes the series of a responder that closed for good: its
// interface went away or is no longer used for that family. Call it once
// the responder's goroutines have ended, or they may make the series again.
func (m *Metrics) forget(k key) {
	if m != nil {
		for _, v := range []*prometheus.CounterVec{m.answered, m.gratuitous, m.conflicts} {
			v.DeleteLabelValues(k.name, k.fam.String())
		}
	}
}

func (m *Metrics) setOwned(f family, n int) {
	if m != nil {
		m.owned.WithLabelValues(f.String()).Set(float64(n))
	}
}
