package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// CertExpiry is one served certificate name and when its certificate
// expires.
type CertExpiry struct {
	Name     string
	NotAfter time.Time
}

// TLS exposes the certificates the https listeners serve and the outcome
// of every ACME order (package acme's Observer). Create it with NewTLS.
type TLS struct {
	orders *prometheus.CounterVec
	expiry *prometheus.Desc
	certs  func() []CertExpiry
	now    func() time.Time
}

// NewTLS registers the TLS collectors with reg; certs lists the served
// certificates at scrape time. A nil now means time.Now.
func NewTLS(reg prometheus.Registerer, certs func() []CertExpiry, now func() time.Time) *TLS {
	if now == nil {
		now = time.Now
	}
	m := &TLS{
		orders: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "tls", Name: "certificate_renewals_total",
			Help: "ACME orders finished, by kind (obtain: first certificate for a name; renew) and result (success, failure). Each failed attempt counts once.",
		}, []string{"kind", "result"}),
		// Seconds left rather than a timestamp: an alert reads
		// "handoff_tls_certificate_expiry_seconds < 7*86400" without
		// subtracting time() (Caddy and cert-exporter expose the
		// timestamp; node_exporter's ssl probe the seconds left).
		expiry: prometheus.NewDesc(namespace+"_tls_certificate_expiry_seconds",
			"Seconds until the certificate served for the name expires (negative once expired), for static and ACME certificates.",
			[]string{"name"}, nil),
		certs: certs,
		now:   now,
	}
	for _, k := range []string{"obtain", "renew"} {
		for _, r := range []string{"success", "failure"} {
			m.orders.WithLabelValues(k, r)
		}
	}
	reg.MustRegister(m.orders, m)
	return m
}

// ACMEOutcome counts an order's outcome.
func (m *TLS) ACMEOutcome(_ string, renewal bool, err error) {
	kind, result := "obtain", "success"
	if renewal {
		kind = "renew"
	}
	if err != nil {
		result = "failure"
	}
	m.orders.WithLabelValues(kind, result).Inc()
}

// Describe implements prometheus.Collector for the expiry gauge.
func (m *TLS) Describe(ch chan<- *prometheus.Desc) { ch <- m.expiry }

// Collect implements prometheus.Collector for the expiry gauge.
func (m *TLS) Collect(ch chan<- prometheus.Metric) {
	now := m.now()
	for _, c := range m.certs() {
		ch <- prometheus.MustNewConstMetric(m.expiry, prometheus.GaugeValue, c.NotAfter.Sub(now).Seconds(), c.Name)
	}
}
