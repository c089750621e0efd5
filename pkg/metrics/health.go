package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// healthMetrics are the active checks', ejections' and shared state's.
type healthMetrics struct {
	checks    *prometheus.CounterVec
	checkTime *prometheus.HistogramVec
	ejections *prometheus.CounterVec
}

func newHealthMetrics(reg *prometheus.Registry) *healthMetrics {
	h := &healthMetrics{
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "health_checks_total",
			Help:      "Active health checks this process ran, by upstream, target and result (pass or fail).",
		}, []string{"upstream", "target", "result"}),
		checkTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "health_check_duration_seconds",
			Help:      "Time an active health check took, by upstream.",
			Buckets:   []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"upstream"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "upstream_ejections_total",
			Help:      "Targets this process ejected after consecutive failures (passive outlier detection).",
		}, []string{"upstream", "target"}),
	}
	reg.MustRegister(h.checks, h.checkTime, h.ejections)
	return h
}

// Checked counts one active check. It implements health.Observer.
func (m *Metrics) Checked(upstreamName, target string, pass bool, took time.Duration) {
	result := "fail"
	if pass {
		result = "pass"
	}
	m.health.checks.WithLabelValues(label(upstreamName), label(target), result).Inc()
	m.health.checkTime.WithLabelValues(label(upstreamName)).Observe(took.Seconds())
}

// Ejected counts one ejection. It implements health.Observer.
func (m *Metrics) Ejected(upstreamName, target string) {
	m.health.ejections.WithLabelValues(label(upstreamName), label(target)).Inc()
}

// StateBackend exports handoff_state_backend_up from up: 1 while the
// shared state store (Redis) is reachable or in-process, 0 while not.
// Call it once.
func (m *Metrics) StateBackend(up func() bool) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace,
		Name:      "state_backend_up",
		Help:      "1 while the shared state store (Redis, or in-process) is reachable, 0 while it is not: requests then flow on local knowledge.",
	}, func() float64 {
		if up() {
			return 1
		}
		return 0
	}))
}
