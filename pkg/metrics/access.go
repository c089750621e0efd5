package metrics

import "github.com/prometheus/client_golang/prometheus"

// accessMetrics are access control's, rate limits', authentication's and
// the forward proxy's.
type accessMetrics struct {
	denied      *prometheus.CounterVec
	rateLimited *prometheus.CounterVec
	authFailed  *prometheus.CounterVec
	tunnels     *prometheus.CounterVec
	tunnelBytes *prometheus.CounterVec
}

func newAccessMetrics(reg *prometheus.Registry) *accessMetrics {
	a := &accessMetrics{
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "denied_requests_total",
			Help: "Requests and connections refused by policy, by reason (access, destination, conn_limit).",
		}, []string{"reason"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "rate_limited_requests_total",
			Help: "Requests answered 429 by a rate limit, by route.",
		}, []string{"route"}),
		authFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "auth_failures_total",
			Help: "Failed authentications, by route (or forward proxy listener) and reason (missing, invalid, locked).",
		}, []string{"route", "reason"}),
		tunnels: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "tunnels_total",
			Help: "CONNECT tunnels of the forward proxy, by result (ok, forbidden, error).",
		}, []string{"result"}),
		tunnelBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "tunnel_bytes_total",
			Help: "Bytes carried by finished CONNECT tunnels, by direction (up: client to destination, down).",
		}, []string{"direction"}),
	}
	reg.MustRegister(a.denied, a.rateLimited, a.authFailed, a.tunnels, a.tunnelBytes)
	return a
}

// Denied counts a refusal by reason. It implements policy.Observer.
func (m *Metrics) Denied(reason string) { m.access.denied.WithLabelValues(label(reason)).Inc() }

// RateLimited counts a 429 of route's limit. It implements policy.Observer.
func (m *Metrics) RateLimited(route string) {
	m.access.rateLimited.WithLabelValues(label(route)).Inc()
}

// AuthFailed counts a failed authentication. It implements policy.Observer.
func (m *Metrics) AuthFailed(route, reason string) {
	m.access.authFailed.WithLabelValues(label(route), label(reason)).Inc()
}

// Tunnel counts a CONNECT tunnel. It implements forwardproxy.Observer.
func (m *Metrics) Tunnel(result string, up, down int64) {
	m.access.tunnels.WithLabelValues(label(result)).Inc()
	if up > 0 {
		m.access.tunnelBytes.WithLabelValues("up").Add(float64(up))
	}
	if down > 0 {
		m.access.tunnelBytes.WithLabelValues("down").Add(float64(down))
	}
}
