// Package metrics owns handoff's Prometheus metrics: the request counters and
// histograms filled by its HTTP middleware, the retry and upstream-error
// counters the proxy reports through its observer methods, the reload
// counters, and the per-upstream target gauges read from the live pools at
// scrape time. Every series carries the handoff_ prefix and lives in a
// registry owned by one Metrics value; nothing is registered globally.
//
// Labels come only from configuration (route and upstream names, target
// addresses) or from small fixed sets (status codes, error kinds), never from
// the request path or host, so cardinality stays bounded.
//
// It does not know how requests are routed or forwarded: route, upstream and
// the client-gone flag come from package reqinfo, pools from package
// upstream through a func the caller injects.
package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/handoff-proxy/handoff/pkg/reqinfo"
	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// namespace prefixes every metric name.
const namespace = "handoff"

// StatusClientGone is the status code reported for a request whose client
// went away before the response was complete: 499, the nginx convention.
// It is not an HTTP status (RFC 9110 §15 defines none for it).
const StatusClientGone = reqinfo.StatusClientGone

// DurationBuckets are the default upper bounds, in seconds, of
// handoff_request_duration_seconds: 1ms to 30s, dense where proxied
// requests usually fall.
func DurationBuckets() []float64 {
	return []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
}

// SizeBuckets are the default upper bounds, in bytes, of
// handoff_response_size_bytes: 100 B to 1 GB in powers of ten.
func SizeBuckets() []float64 {
	return prometheus.ExponentialBuckets(100, 10, 8)
}

// Options configures New.
type Options struct {
	// Pools returns the current upstream pools; it is called on every
	// scrape to report handoff_upstream_targets and
	// handoff_upstream_target_in_flight. Nil means no pool metrics.
	Pools func() []*upstream.Pool
	// Now is the clock for request durations, target availability and the
	// reload timestamp. Nil means time.Now.
	Now func() time.Time
	// Logger receives scrape errors. Nil means they are dropped.
	Logger *slog.Logger
	// Version, Revision label handoff_build_info. Empty means the module
	// version and VCS revision from the binary's build info, or "unknown".
	Version  string
	Revision string
	// ResponseSizes reports whether handoff_response_size_bytes is
	// recorded. Off by default: it doubles the histogram series.
	ResponseSizes bool
	// DurationBuckets overrides DurationBuckets(). Nil means the default.
	DurationBuckets []float64
}

// Metrics holds handoff's registry and its collectors. Create it with New;
// its methods are safe for concurrent use.
type Metrics struct {
	reg    *prometheus.Registry
	now    func() time.Time
	logger *slog.Logger

	requests *prometheus.CounterVec
	// byProto counts requests by HTTP version, indexed by ProtoMajor
	// (http3.go in package server serves major 3).
	byProto      [4]prometheus.Counter
	duration     *prometheus.HistogramVec
	inFlight     prometheus.Gauge
	responseSize *prometheus.HistogramVec // nil unless Options.ResponseSizes

	retries        *prometheus.CounterVec
	upstreamErrors *prometheus.CounterVec

	acceptErrors *prometheus.CounterVec
	bodyTimeouts prometheus.Counter
	health       *healthMetrics
	access       *accessMetrics // access.go

	reloads         *prometheus.CounterVec
	lastReloadOK    prometheus.Gauge
	reloadSucceeded prometheus.Counter
	reloadFailed    prometheus.Counter

	live Live // live.go: the dashboard's last 15 minutes
}

// New builds a Metrics with its own registry holding the Go runtime and
// process collectors and every handoff_ metric.
func New(opts Options) *Metrics {
	m := &Metrics{
		reg:    prometheus.NewRegistry(),
		now:    opts.Now,
		logger: opts.Logger,
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.logger == nil {
		m.logger = slog.New(slog.DiscardHandler)
	}
	buckets := opts.DurationBuckets
	if buckets == nil {
		buckets = DurationBuckets()
	}

	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "requests_total",
		Help:      "HTTP requests served, by route, upstream and status code (499: client went away).",
	}, []string{"route", "upstream", "code"})
	protocols := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "requests_by_protocol_total",
		Help:      "HTTP requests served, by protocol: http/1.1 (and 1.0), h2 or h3.",
	}, []string{"protocol"})
	for major, p := range []string{"http/1.1", "http/1.1", "h2", "h3"} {
		m.byProto[major] = protocols.WithLabelValues(p)
	}
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace,
		Name:      "request_duration_seconds",
		Help:      "Time from receiving a request to the end of its response, by route and upstream.",
		Buckets:   buckets,
	}, []string{"route", "upstream"})
	m.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace,
		Name:      "requests_in_flight",
		Help:      "HTTP requests being served.",
	})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "upstream_retries_total",
		Help:      "Requests sent again to another target of the upstream.",
	}, []string{"upstream"})
	m.upstreamErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "upstream_errors_total",
		Help:      "Failures talking to a target, by kind.",
	}, []string{"upstream", "target", "kind"})
	m.acceptErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "accept_errors_total",
		Help:      "Failed accept(2) calls on a traffic listener (for example EMFILE: too many open files), by listener.",
	}, []string{"listener"})
	m.bodyTimeouts = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "request_body_timeouts_total",
		Help:      "Requests whose client paused sending the body longer than timeouts.body_read (answered 408).",
	})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "config_reloads_total",
		Help:      "Configuration reloads, by result.",
	}, []string{"result"})
	m.reloadSucceeded = m.reloads.WithLabelValues("success")
	m.reloadFailed = m.reloads.WithLabelValues("failure")
	m.lastReloadOK = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace,
		Name:      "config_last_reload_success_timestamp_seconds",
		Help:      "Unix time of the last successful configuration load or reload.",
	})

	version, revision := buildVersion(opts.Version, opts.Revision)
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace,
		Name:      "build_info",
		Help:      "Always 1; labels describe the running binary.",
	}, []string{"version", "goversion", "revision"})
	buildInfo.WithLabelValues(label(version), runtime.Version(), label(revision)).Set(1)

	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, protocols, m.duration, m.inFlight,
		m.retries, m.upstreamErrors, m.acceptErrors, m.bodyTimeouts,
		m.reloads, m.lastReloadOK, buildInfo,
		newPoolCollector(opts.Pools, m.now),
	)
	m.health = newHealthMetrics(m.reg)
	m.access = newAccessMetrics(m.reg) // access.go
	if opts.ResponseSizes {
		m.responseSize = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "response_size_bytes",
			Help:      "Response body bytes written to the client, by route and upstream.",
			Buckets:   SizeBuckets(),
		}, []string{"route", "upstream"})
		m.reg.MustRegister(m.responseSize)
	}
	return m
}

// buildVersion fills empty version and revision from the binary's build
// info (debug.ReadBuildInfo), else "unknown".
func buildVersion(version, revision string) (string, string) {
	if version != "" && revision != "" {
		return version, revision
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if version == "" && bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && revision == "" {
				revision = s.Value
			}
		}
	}
	if version == "" {
		version = "unknown"
	}
	if revision == "" {
		revision = "unknown"
	}
	return version, revision
}

// label makes s a valid label value: the client library panics on
// invalid UTF-8, and config strings are not guaranteed to be valid.
func label(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// Registry returns the registry, for callers that add their own
// collectors or gather in tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition formats.
// A collector that fails does not fail the scrape: the rest is served and
// the error logged.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      promLogger{m.logger},
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      m.reg, // counts promhttp_metric_handler_errors_total
	})
}

// promLogger adapts slog to promhttp.Logger.
type promLogger struct{ l *slog.Logger }

func (p promLogger) Println(v ...any) {
	p.l.Warn("metrics scrape", "error", fmt.Sprint(v...))
}

// LiveSeries returns the per-second request, error and latency series of
// the last n seconds (zero or less: all LiveSeconds) for the dashboard.
func (m *Metrics) LiveSeries(n int) LiveSeries { return m.live.Series(m.now(), n) }

// Reload records the result of a configuration load or reload; a success
// also sets handoff_config_last_reload_success_timestamp_seconds to now.
func (m *Metrics) Reload(ok bool) {
	if !ok {
		m.reloadFailed.Inc()
		return
	}
	m.reloadSucceeded.Inc()
	m.lastReloadOK.Set(float64(m.now().UnixNano()) / 1e9)
}

// Loaded records the initial configuration load: it sets
// handoff_config_last_reload_success_timestamp_seconds to now without
// counting a reload.
func (m *Metrics) Loaded() {
	m.lastReloadOK.Set(float64(m.now().UnixNano()) / 1e9)
}

// ServerAnswer counts a response the HTTP server wrote without a handler
// (400 for a malformed request, 431 for oversized headers) in
// handoff_requests_total, with empty route and upstream.
func (m *Metrics) ServerAnswer(code int) {
	m.requests.WithLabelValues("", "", strconv.Itoa(code)).Inc()
}

// BodyTimeout counts a request body that stopped arriving.
func (m *Metrics) BodyTimeout() { m.bodyTimeouts.Inc() }

// AcceptError counts a failed accept on listener.
func (m *Metrics) AcceptError(listener string) {
	m.acceptErrors.WithLabelValues(label(listener)).Inc()
}

// Retry counts one more attempt of a request on another target of
// upstreamName. It implements the proxy's observer.
func (m *Metrics) Retry(upstreamName string) {
	m.retries.WithLabelValues(label(upstreamName)).Inc()
}

// UpstreamError counts one failure of kind (a short fixed word chosen by
// the proxy, such as "dial" or "timeout") talking to target of
// upstreamName. It implements the proxy's observer.
func (m *Metrics) UpstreamError(upstreamName, target, kind string) {
	m.upstreamErrors.WithLabelValues(label(upstreamName), label(target), label(kind)).Inc()
}

// Middleware counts each request served by next: in flight while it runs,
// then handoff_requests_total and handoff_request_duration_seconds (and
// handoff_response_size_bytes when enabled) labelled with the route and
// upstream that next recorded in the request's reqinfo.Info.
//
// When the request carries no Info yet, Middleware creates one with
// reqinfo.With, so it may sit inside or outside the access log; inner
// layers must fill the Info they find rather than create another.
// Request counts one request served without the Middleware (the HTTP/1.1
// fast path): the same series, by route, upstream and final status.
// Callers bracket it with RequestStarted and RequestDone.
func (m *Metrics) Request(route, upstream string, code int, start time.Time, bytes int64) {
	m.byProto[1].Inc()
	m.observe(route, upstream, code, start, m.now(), bytes)
}

// RequestStarted and RequestDone count a request in flight.
func (m *Metrics) RequestStarted() { m.inFlight.Inc() }

// RequestDone ends a request counted by RequestStarted.
func (m *Metrics) RequestDone() { m.inFlight.Dec() }

func (m *Metrics) observe(route, upstream string, code int, start, end time.Time, bytes int64) {
	route, up := label(route), label(upstream)
	m.requests.WithLabelValues(route, up, statusLabel(code)).Inc()
	m.duration.WithLabelValues(route, up).Observe(end.Sub(start).Seconds())
	m.live.Observe(end, end.Sub(start), code >= 500)
	if m.responseSize != nil {
		m.responseSize.WithLabelValues(route, up).Observe(float64(bytes))
	}
}

// statusLabels holds the label of each status code, so that counting a
// request does not format one.
var statusLabels = func() (t [600]string) {
	for i := range t {
		t[i] = strconv.Itoa(i)
	}
	return t
}()

func statusLabel(code int) string {
	if code >= 0 && code < len(statusLabels) {
		return statusLabels[code]
	}
	return strconv.Itoa(code)
}

func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := m.now()
		m.inFlight.Inc()
		defer m.inFlight.Dec()

		in := reqinfo.From(r.Context())
		if in == nil {
			var ctx context.Context
			ctx, in = reqinfo.With(r.Context())
			r = r.WithContext(ctx)
		}
		rec := reqinfo.NewRecorder(w)
		returned := false
		defer func() {
			// Count panicking requests too: net/http recovers the panic
			// (http.ErrAbortHandler included) and drops the connection.
			code := rec.FinalStatus(r, in, !returned)
			if p := r.ProtoMajor; p >= 0 && p < len(m.byProto) {
				m.byProto[p].Inc()
			}
			m.observe(in.Route, in.Upstream, code, start, m.now(), rec.Bytes())
		}()
		next.ServeHTTP(rec, r)
		returned = true
	})
}
