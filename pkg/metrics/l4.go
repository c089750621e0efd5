package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/handoff-proxy/handoff/pkg/l4"
)

// L4 counts what the tcp and replicate listeners do (package l4's
// Observer and ReplicateObserver), and the HTTP request mirror's
// decisions (pkg/server/mirror.go). Create it with NewL4.
type L4 struct {
	conns     *prometheus.CounterVec
	bytes     *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	connErrs  *prometheus.CounterVec
	mirrorOut *prometheus.CounterVec
	replConns *prometheus.CounterVec
	replBytes *prometheus.CounterVec
	replDrop  *prometheus.CounterVec
	mirrored  *prometheus.CounterVec // HTTP request mirroring
}

// NewL4 registers the L4 collectors with reg.
func NewL4(reg prometheus.Registerer) *L4 {
	m := &L4{
		conns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "l4", Name: "connections_total",
			Help: "TCP connections relayed, by listener, target and result (ok, idle_timeout, no_target, connect_failed, proxy_header, error).",
		}, []string{"listener", "target", "result"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "l4", Name: "bytes_total",
			Help: "Bytes relayed, by listener, target and direction (up: client to target; down: target to client), counted when the connection ends.",
		}, []string{"listener", "target", "direction"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "l4", Name: "connection_duration_seconds",
			Help:    "How long relayed TCP connections lasted, by listener and target.",
			Buckets: []float64{.01, .1, 1, 10, 60, 600, 3600},
		}, []string{"listener", "target"}),
		connErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "l4", Name: "connect_errors_total",
			Help: "Failed connects to a target (each is retried on another target), by listener and target.",
		}, []string{"listener", "target"}),
		mirrorOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "l4", Name: "mirror_dropped_total",
			Help: "Mirror connections given up, by listener, mirror and reason (overflow: it fell behind by more than its buffer; error).",
		}, []string{"listener", "mirror", "reason"}),
		replConns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "replicate", Name: "connections_total",
			Help: "Connections to replicate listeners, by listener and role (input, output, refused).",
		}, []string{"listener", "role"}),
		replBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "replicate", Name: "input_bytes_total",
			Help: "Bytes read from inputs of replicate listeners.",
		}, []string{"listener"}),
		replDrop: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "replicate", Name: "outputs_dropped_total",
			Help: "Outputs dropped for falling behind by more than their buffer.",
		}, []string{"listener"}),
		mirrored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "mirror_requests_total",
			Help: "HTTP requests picked for mirroring (routes[].mirror), by route and result (mirrored; dropped: max_in_flight copies were under way; too_large: body over max_body; failed: the shadow answered 5xx or broke off, counted besides mirrored).",
		}, []string{"route", "result"}),
	}
	reg.MustRegister(m.conns, m.bytes, m.duration, m.connErrs, m.mirrorOut, m.replConns, m.replBytes, m.replDrop, m.mirrored)
	return m
}

// ConnDone implements l4.Observer.
func (m *L4) ConnDone(listener string, s l4.ConnStats) {
	m.conns.WithLabelValues(listener, s.Target, s.Result).Inc()
	if s.Target == "" {
		return
	}
	m.bytes.WithLabelValues(listener, s.Target, "up").Add(float64(s.Up))
	m.bytes.WithLabelValues(listener, s.Target, "down").Add(float64(s.Down))
	m.duration.WithLabelValues(listener, s.Target).Observe(s.Duration.Seconds())
}

// ConnectFailed implements l4.Observer.
func (m *L4) ConnectFailed(listener, target string) {
	m.connErrs.WithLabelValues(listener, target).Inc()
}

// MirrorDropped implements l4.Observer.
func (m *L4) MirrorDropped(listener, mirror, reason string) {
	m.mirrorOut.WithLabelValues(listener, mirror, reason).Inc()
}

// ReplicaConn implements l4.ReplicateObserver.
func (m *L4) ReplicaConn(listener, role string) { m.replConns.WithLabelValues(listener, role).Inc() }

// ReplicaBytes implements l4.ReplicateObserver.
func (m *L4) ReplicaBytes(listener string, n int) {
	m.replBytes.WithLabelValues(listener).Add(float64(n))
}

// ReplicaDropped implements l4.ReplicateObserver.
func (m *L4) ReplicaDropped(listener string) { m.replDrop.WithLabelValues(listener).Inc() }

// Mirrored counts one HTTP mirror decision of route (see
// pkg/server/mirror.go for the results).
func (m *L4) Mirrored(route, result string) { m.mirrored.WithLabelValues(route, result).Inc() }
