// Package admin owns the admin API: liveness and readiness probes, the
// metrics endpoint, read-only JSON views of the upstream pools, the
// effective configuration and the live traffic series, and the web
// dashboard at "/" that shows them (dashboard.go). It is one http.Handler;
// the caller serves it on the admin listener.
//
// It does not know where its data comes from: metrics, readiness, pools,
// config, process, cache and state facts are injected as a handler and
// funcs. In particular it does not
// redact the config; the caller passes one that is safe to show.
package admin

import (
	"bytes"
	"encoding/json"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/metrics"
	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// Paths served by New.
const (
	PathHealthz   = "/healthz"
	PathReadyz    = "/readyz"
	PathMetrics   = "/metrics"
	PathUpstreams = "/api/v1/upstreams"
	PathConfig    = "/api/v1/config"
)

// Options configures New. Every field may be nil.
type Options struct {
	// Metrics serves PathMetrics. Nil means PathMetrics is not found.
	Metrics http.Handler
	// Ready reports whether the process takes traffic; PathReadyz answers
	// 200 "ready" when it does and 503 "not ready" when not (starting,
	// draining on shutdown). Nil means always ready.
	Ready func() bool
	// Upstreams returns the current pools for PathUpstreams. Nil means
	// none.
	Upstreams func() []*upstream.Pool
	// Config returns the effective configuration for PathConfig, already
	// redacted by the caller. Nil means PathConfig is not found; a func
	// that returns nil makes it answer 503.
	Config func() *config.Config
	// Process describes this process for the dashboard and PathOverview.
	// Nil means an empty description.
	Process func() ProcessInfo
	// Listeners lists the traffic listeners. Nil means none.
	Listeners func() []ListenerInfo
	// Cache returns the cache counters and whether any route caches. Nil
	// means no cache.
	Cache func() (CacheInfo, bool)
	// State describes the shared state backend. Nil means "memory", up.
	State func() StateInfo
	// Stats returns the live series of the last n seconds (zero: all)
	// for PathStats and the dashboard's sparklines. Nil means empty.
	Stats func(n int) metrics.LiveSeries
	// Fleet lists the processes seen through the shared state store. Nil
	// means none.
	Fleet func() []MemberInfo
	// RateLimits lists the keys most denied recently. Nil means none.
	RateLimits func() []RateLimitInfo
	// Now is the clock for target availability. Nil means time.Now.
	Now func() time.Time
	// Logger receives errors while answering. Nil means they are dropped.
	Logger *slog.Logger
}

// UpstreamsResponse is the body of PathUpstreams.
type UpstreamsResponse struct {
	// Upstreams sorted by name; never null.
	Upstreams []UpstreamStatus `json:"upstreams"`
}

// UpstreamStatus describes one pool at the time of the request.
type UpstreamStatus struct {
	Name string `json:"name"`
	// Strategy in effect; an unset strategy shows as its default,
	// round_robin.
	Strategy string `json:"strategy"`
	// Healthy counts the targets that may be picked now.
	Healthy int `json:"healthy"`
	// Total counts all targets.
	Total int `json:"total"`
	// Targets in config order; never null.
	Targets []upstream.Snapshot `json:"targets"`
}

// ErrorResponse is the body of every JSON error.
type ErrorResponse struct {
	Error string `json:"error"`
}

type handler struct {
	o      Options
	routes map[string]http.Handler
	page   *template.Template // ui/index.html
}

// New returns the admin API handler. Only GET and HEAD are allowed (405
// with an Allow header otherwise, RFC 9110 §15.5.6); an unknown path is a
// JSON 404.
func New(o Options) http.Handler {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{o: o, routes: make(map[string]http.Handler), page: newDashboardTemplate()}
	h.routes[PathDashboard] = http.HandlerFunc(h.dashboard)
	h.routes[PathUIScript] = uiFile("ui/dashboard.js", "text/javascript; charset=utf-8")
	h.routes[PathUIStyle] = uiFile("ui/dashboard.css", "text/css; charset=utf-8")
	h.routes[PathOverview] = http.HandlerFunc(h.serveOverview)
	h.routes[PathStats] = http.HandlerFunc(h.serveStats)
	h.routes[PathHealthz] = http.HandlerFunc(h.healthz)
	h.routes[PathReadyz] = http.HandlerFunc(h.readyz)
	h.routes[PathUpstreams] = http.HandlerFunc(h.upstreams)
	if o.Metrics != nil {
		h.routes[PathMetrics] = o.Metrics
	}
	if o.Config != nil {
		h.routes[PathConfig] = http.HandlerFunc(h.config)
	}
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	route, ok := h.routes[r.URL.Path]
	if !ok {
		h.writeJSON(w, r, http.StatusNotFound, ErrorResponse{Error: "not found"})
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		h.writeJSON(w, r, http.StatusMethodNotAllowed, ErrorResponse{Error: "method not allowed"})
		return
	}
	route.ServeHTTP(w, r)
}

func (h *handler) healthz(w http.ResponseWriter, r *http.Request) {
	writeText(w, http.StatusOK, "ok\n")
}

func (h *handler) readyz(w http.ResponseWriter, r *http.Request) {
	if h.o.Ready != nil && !h.o.Ready() {
		writeText(w, http.StatusServiceUnavailable, "not ready\n")
		return
	}
	writeText(w, http.StatusOK, "ready\n")
}

func (h *handler) upstreams(w http.ResponseWriter, r *http.Request) {
	resp := UpstreamsResponse{Upstreams: h.upstreamList(h.o.Now())}
	h.writeJSON(w, r, http.StatusOK, resp)
}

// status reads one pool; Healthy is counted from the same snapshots that
// are returned, so the numbers agree with the list.
func status(p *upstream.Pool, now time.Time) UpstreamStatus {
	s := UpstreamStatus{
		Name:     p.Name,
		Strategy: p.Strategy,
		Total:    len(p.Targets()),
		Targets:  make([]upstream.Snapshot, 0, len(p.Targets())),
	}
	if s.Strategy == "" {
		s.Strategy = config.StrategyRoundRobin
	}
	for _, t := range p.Targets() {
		snap := t.Snapshot(now)
		if snap.Healthy {
			s.Healthy++
		}
		s.Targets = append(s.Targets, snap)
	}
	return s
}

func (h *handler) config(w http.ResponseWriter, r *http.Request) {
	c := h.o.Config()
	if c == nil {
		h.writeJSON(w, r, http.StatusServiceUnavailable, ErrorResponse{Error: "no config loaded"})
		return
	}
	b, err := marshalView(c)
	if err != nil {
		h.o.Logger.Error("admin: encode config", "error", err)
		h.writeJSON(w, r, http.StatusInternalServerError, ErrorResponse{Error: "cannot encode config"})
		return
	}
	h.writeBody(w, http.StatusOK, b)
}

// writeJSON encodes v and writes it with code.
func (h *handler) writeJSON(w http.ResponseWriter, r *http.Request, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		h.o.Logger.Error("admin: encode response", "path", r.URL.Path, "error", err)
		code = http.StatusInternalServerError
		b = []byte(`{"error":"cannot encode response"}`)
	}
	h.writeBody(w, code, b)
}

// writeBody writes compact JSON b indented for people using curl.
func (h *handler) writeBody(w http.ResponseWriter, code int, b []byte) {
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		h.o.Logger.Error("admin: indent response", "error", err)
		out.Reset()
		out.Write(b)
	}
	out.WriteByte('\n')
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Content-Length", strconv.Itoa(out.Len()))
	// Live state: never serve it from a cache (RFC 9111 §5.2.2.5).
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(out.Bytes())
}

func writeText(w http.ResponseWriter, code int, body string) {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	io.WriteString(w, body)
}
