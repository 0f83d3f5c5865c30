package bgp

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the BGP side's Prometheus metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	up         *prometheus.GaugeVec
	advertised *prometheus.GaugeVec
	syncs      *prometheus.HistogramVec
	bfdUp      *prometheus.GaugeVec
}

// NewMetrics makes the metrics and registers them with reg (when reg is
// not nil); registering twice with one registry panics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ironlb_bgp_session_up",
			Help: "1 when the BGP session with the peer is established, 0 otherwise.",
		}, []string{"peer"}),
		advertised: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ironlb_bgp_advertised_prefixes",
			Help: "Prefixes handed to the BGP session with the peer.",
		}, []string{"peer"}),
		syncs: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ironlb_bgp_sync_duration_seconds",
			Help:    "Time taken to bring the embedded BGP server to the desired state.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"result"}),
		bfdUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ironlb_bfd_session_up",
			Help: "1 when the BFD session with the peer is Up, 0 otherwise; absent for peers without BFD.",
		}, []string{"peer"}),
	}
	if reg != nil {
		reg.MustRegister(m.up, m.advertised, m.syncs, m.bfdUp)
	}
	return m
}

func (m *Metrics) setSession(peer string, up bool) {
	if m == nil {
		return
	}
	v := 0.0
	if up {
		v = 1
	}
	m.up.WithLabelValues(peer).Set(v)
}

func (m *Metrics) setAdvertised(peer string, n int) {
	if m != nil {
		m.advertised.WithLabelValues(peer).Set(float64(n))
	}
}

// forget drops a peer that is no longer configured.
func (m *Metrics) forget(peer string) {
	if m != nil {
		m.up.DeleteLabelValues(peer)
		m.advertised.DeleteLabelValues(peer)
	}
}

func (m *Metrics) observeSync(d time.Duration, err error) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.syncs.WithLabelValues(result).Observe(d.Seconds())
}

func (m *Metrics) setBFD(peer string, up bool) {
	if m == nil {
		return
	}
	v := 0.0
	if up {
		v = 1
	}
	m.bfdUp.WithLabelValues(peer).Set(v)
}

// forgetBFD drops a peer that no longer has a BFD session.
func (m *Metrics) forgetBFD(peer string) {
	if m != nil {
		m.bfdUp.DeleteLabelValues(peer)
	}
}
