package metrics

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/proxy"
	"github.com/handoff-proxy/handoff/pkg/reqinfo"
	"github.com/handoff-proxy/handoff/pkg/upstream"

	"github.com/handoff-proxy/handoff/pkg/handofftest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// stepClock returns a clock that starts at base and advances by step on
// every reading, so each request served between two readings lasts
// exactly step.
func stepClock(base time.Time, step time.Duration) func() time.Time {
	var n atomic.Int64
	return func() time.Time {
		return base.Add(time.Duration(n.Add(1)-1) * step)
	}
}

var base = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// observer is the interface package proxy defines for Metrics; kept here
// so that a change of signature breaks this build.
type observer interface {
	Retry(upstream string)
	UpstreamError(upstream, target, kind string)
}

var _ observer = (*Metrics)(nil)

// newServer starts h on 127.0.0.1:0 and closes it with the test. The
// server's own error log goes to t.Log.
func newServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(handofftest.Writer(t), "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// proxyLike is what the router and proxy do to a request, in small: fill
// the reqinfo.Info, forward with httputil.ReverseProxy, flag a client that
// went away.
func proxyLike(t *testing.T, target, route, upstreamName string) http.Handler {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host
		},
		Transport:     tr,
		FlushInterval: -1,
		ErrorLog:      log.New(handofftest.Writer(t), "", 0),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) {
				reqinfo.From(r.Context()).ClientGone = true
			}
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in := reqinfo.From(r.Context())
		if in == nil {
			t.Error("no reqinfo.Info in the request's context")
			http.Error(w, "no info", http.StatusInternalServerError)
			return
		}
		in.Route, in.Upstream, in.Target = route, upstreamName, u.Host
		rp.ServeHTTP(w, r)
	})
}

// signalDone wraps h so that a value is sent on the returned channel each
// time h (the middleware under test) has returned, that is after it has
// recorded the request.
func signalDone(h http.Handler) (http.Handler, <-chan struct{}) {
	done := make(chan struct{}, 16)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { done <- struct{}{} }()
		h.ServeHTTP(w, r)
	}), done
}

func wait(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for the handler to return")
	}
}

// scrape fetches the metrics over HTTP and parses the text format.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape status %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse scrape: %v", err)
	}
	return fams
}

// find returns the series of family name whose labels are exactly want.
func find(fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	f, ok := fams[name]
	if !ok {
		return nil
	}
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(want) {
			continue
		}
		match := true
		for _, lp := range m.GetLabel() {
			if v, ok := want[lp.GetName()]; !ok || v != lp.GetValue() {
				match = false
				break
			}
		}
		if match {
			return m
		}
	}
	return nil
}

func seriesCount(fams map[string]*dto.MetricFamily, name string) int {
	return len(fams[name].GetMetric())
}

// scrapeAndCompare compares the named families served by m with want,
// given in the text exposition format.
func scrapeAndCompare(t *testing.T, m *Metrics, want string, names ...string) {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	if err := testutil.ScrapeAndCompare(srv.URL, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
}

func TestMiddlewareCountsProxiedRequests(t *testing.T) {
	tests := []struct {
		name     string
		backend  http.HandlerFunc
		wantCode string
		wantSize float64
	}{
		{
			name:     "explicit status",
			backend:  func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusCreated) },
			wantCode: "201",
		},
		{
			name:     "body without WriteHeader",
			backend:  func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") },
			wantCode: "200",
			wantSize: 5,
		},
		{
			name: "interim 103 then 204",
			backend: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Link", "</style.css>; rel=preload")
				w.WriteHeader(http.StatusEarlyHints)
				w.WriteHeader(http.StatusNoContent)
			},
			wantCode: "204",
		},
		{
			name: "backend error status",
			backend: func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "down", http.StatusServiceUnavailable)
			},
			wantCode: "503",
			wantSize: 5,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			backend := newServer(t, tc.backend)
			m := New(Options{Now: stepClock(base, 50*time.Millisecond), Logger: handofftest.Logger(t), ResponseSizes: true})
			h, done := signalDone(m.Middleware(proxyLike(t, backend.URL, "web", "app")))
			front := newServer(t, h)

			resp, err := front.Client().Get(front.URL + "/some/path?q=1")
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			wait(t, done)

			fams := scrape(t, m)
			req := find(fams, "handoff_requests_total", map[string]string{"route": "web", "upstream": "app", "code": tc.wantCode})
			if got := req.GetCounter().GetValue(); got != 1 {
				t.Errorf("handoff_requests_total{code=%q} = %v, want 1; families: %v", tc.wantCode, got, fams["handoff_requests_total"])
			}
			if n := seriesCount(fams, "handoff_requests_total"); n != 1 {
				t.Errorf("handoff_requests_total has %d series, want 1", n)
			}
			hist := find(fams, "handoff_request_duration_seconds", map[string]string{"route": "web", "upstream": "app"}).GetHistogram()
			if hist.GetSampleCount() != 1 || hist.GetSampleSum() != 0.05 {
				t.Errorf("duration histogram count=%d sum=%v, want 1 and 0.05", hist.GetSampleCount(), hist.GetSampleSum())
			}
			for _, b := range hist.GetBucket() {
				want := uint64(0)
				if b.GetUpperBound() >= 0.05 {
					want = 1
				}
				if b.GetCumulativeCount() != want {
					t.Errorf("bucket le=%v = %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
				}
			}
			size := find(fams, "handoff_response_size_bytes", map[string]string{"route": "web", "upstream": "app"}).GetHistogram()
			if size.GetSampleCount() != 1 || size.GetSampleSum() != tc.wantSize {
				t.Errorf("size histogram count=%d sum=%v, want 1 and %v", size.GetSampleCount(), size.GetSampleSum(), tc.wantSize)
			}
			if g := find(fams, "handoff_requests_in_flight", map[string]string{}).GetGauge().GetValue(); g != 0 {
				t.Errorf("in flight after the request = %v, want 0", g)
			}
		})
	}
}

func TestMiddlewareNoRouteAndPanic(t *testing.T) {
	tests := []struct {
		name     string
		handler  http.HandlerFunc
		wantCode string
	}{
		{
			name:     "router found nothing",
			handler:  http.NotFound,
			wantCode: "404",
		},
		{
			name:     "handler wrote nothing",
			handler:  func(w http.ResponseWriter, r *http.Request) {},
			wantCode: "200",
		},
		{
			name:     "handler panicked before writing",
			handler:  func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) },
			wantCode: "500",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := New(Options{Logger: handofftest.Logger(t)})
			h, done := signalDone(m.Middleware(tc.handler))
			front := newServer(t, h)
			resp, err := front.Client().Get(front.URL)
			if err == nil {
				resp.Body.Close()
			}
			wait(t, done)
			scrapeAndCompare(t, m, `
# HELP handoff_requests_total HTTP requests served, by route, upstream and status code (499: client went away).
# TYPE handoff_requests_total counter
handoff_requests_total{code="`+tc.wantCode+`",route="",upstream=""} 1
`, "handoff_requests_total")
		})
	}
}

func TestMiddlewareClientGoneIs499(t *testing.T) {
	tests := []struct {
		name string
		// handler blocks until the client goes away, after telling
		// started.
		handler func(t *testing.T, started chan<- struct{}) http.Handler
	}{
		{
			name: "handler sets ClientGone after writing 502",
			handler: func(t *testing.T, started chan<- struct{}) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					in := reqinfo.From(r.Context())
					in.Route, in.Upstream = "web", "app"
					started <- struct{}{}
					<-r.Context().Done()
					in.ClientGone = true
					w.WriteHeader(http.StatusBadGateway)
				})
			},
		},
		{
			name: "handler writes nothing and the context is canceled",
			handler: func(t *testing.T, started chan<- struct{}) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					in := reqinfo.From(r.Context())
					in.Route, in.Upstream = "web", "app"
					started <- struct{}{}
					<-r.Context().Done()
				})
			},
		},
		{
			name: "real reverse proxy to a slow backend",
			handler: func(t *testing.T, started chan<- struct{}) http.Handler {
				backend := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					started <- struct{}{}
					<-r.Context().Done()
				}))
				return proxyLike(t, backend.URL, "web", "app")
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := New(Options{Logger: handofftest.Logger(t)})
			started := make(chan struct{}, 1)
			h, done := signalDone(m.Middleware(tc.handler(t, started)))
			front := newServer(t, h)

			ctx, cancel := context.WithCancel(t.Context())
			errc := make(chan error, 1)
			go func() {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, front.URL, nil)
				resp, err := front.Client().Do(req)
				if err == nil {
					resp.Body.Close()
				}
				errc <- err
			}()
			wait(t, started)
			cancel()
			if err := <-errc; !errors.Is(err, context.Canceled) {
				t.Fatalf("client error = %v, want context.Canceled", err)
			}
			wait(t, done)

			scrapeAndCompare(t, m, `
# HELP handoff_requests_total HTTP requests served, by route, upstream and status code (499: client went away).
# TYPE handoff_requests_total counter
handoff_requests_total{code="499",route="web",upstream="app"} 1
`, "handoff_requests_total")
		})
	}
}

func TestMiddlewareReqinfoEitherOrder(t *testing.T) {
	tests := []struct {
		name string
		// outerCreates reports whether a layer outside the middleware
		// creates the Info.
		outerCreates bool
	}{
		{name: "middleware creates the Info", outerCreates: false},
		{name: "outer layer created the Info", outerCreates: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := New(Options{Logger: handofftest.Logger(t)})
			var outerInfo, innerInfo *reqinfo.Info
			inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				innerInfo = reqinfo.From(r.Context())
				if innerInfo == nil {
					t.Error("inner handler got no Info")
					return
				}
				innerInfo.Route, innerInfo.Upstream = "r1", "u1"
				w.WriteHeader(http.StatusAccepted)
			})
			mw := m.Middleware(inner)
			outer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.outerCreates {
					var ctx context.Context
					ctx, outerInfo = reqinfo.With(r.Context())
					r = r.WithContext(ctx)
				}
				mw.ServeHTTP(w, r)
			})
			h, done := signalDone(outer)
			front := newServer(t, h)
			resp, err := front.Client().Get(front.URL)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			wait(t, done)
			if tc.outerCreates && outerInfo != innerInfo {
				t.Error("middleware replaced the Info an outer layer created")
			}
			scrapeAndCompare(t, m, `
# HELP handoff_requests_total HTTP requests served, by route, upstream and status code (499: client went away).
# TYPE handoff_requests_total counter
handoff_requests_total{code="202",route="r1",upstream="u1"} 1
`, "handoff_requests_total")
		})
	}
}

func TestMiddlewareInFlight(t *testing.T) {
	m := New(Options{Logger: handofftest.Logger(t)})
	entered := make(chan struct{})
	release := make(chan struct{})
	h, done := signalDone(m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	})))
	front := newServer(t, h)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			resp, err := front.Client().Get(front.URL)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		})
	}
	wait(t, entered)
	wait(t, entered)
	inFlight := func() float64 {
		return find(scrape(t, m), "handoff_requests_in_flight", map[string]string{}).GetGauge().GetValue()
	}
	if got := inFlight(); got != 2 {
		t.Errorf("in flight with two blocked requests = %v, want 2", got)
	}
	close(release)
	wg.Wait()
	wait(t, done)
	wait(t, done)
	if got := inFlight(); got != 0 {
		t.Errorf("in flight after both returned = %v, want 0", got)
	}
}

func newPool(t *testing.T, reg *upstream.Registry, name string, addrs ...string) *upstream.Pool {
	t.Helper()
	cfg := config.Upstream{Strategy: config.StrategyRoundRobin}
	for _, a := range addrs {
		cfg.Targets = append(cfg.Targets, config.Target{Address: a})
	}
	p, err := reg.NewPool(name, proxy.PoolSpec(cfg))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPoolCollector(t *testing.T) {
	now := base
	reg := upstream.NewRegistry()
	api := newPool(t, reg, "api", "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80")
	web := newPool(t, reg, "web", "10.0.1.1:8080")
	api.Targets()[1].MarkFailed(now, time.Minute)
	release1 := api.Targets()[0].Acquire()
	release2 := api.Targets()[0].Acquire()
	web.Targets()[0].Acquire()() // acquired and released
	defer release1()

	var pools atomic.Pointer[[]*upstream.Pool]
	pools.Store(&[]*upstream.Pool{web, api})
	m := New(Options{
		Now:    func() time.Time { return now },
		Pools:  func() []*upstream.Pool { return *pools.Load() },
		Logger: handofftest.Logger(t),
	})

	scrapeAndCompare(t, m, `
# HELP handoff_upstream_targets Targets of the upstream by state: healthy (may be picked) or unhealthy (ejected).
# TYPE handoff_upstream_targets gauge
handoff_upstream_targets{state="healthy",upstream="api"} 2
handoff_upstream_targets{state="unhealthy",upstream="api"} 1
handoff_upstream_targets{state="healthy",upstream="web"} 1
handoff_upstream_targets{state="unhealthy",upstream="web"} 0
# HELP handoff_upstream_target_in_flight Requests currently sent to the target.
# TYPE handoff_upstream_target_in_flight gauge
handoff_upstream_target_in_flight{target="10.0.0.1:80",upstream="api"} 2
handoff_upstream_target_in_flight{target="10.0.0.2:80",upstream="api"} 0
handoff_upstream_target_in_flight{target="10.0.0.3:80",upstream="api"} 0
handoff_upstream_target_in_flight{target="10.0.1.1:8080",upstream="web"} 0
`, "handoff_upstream_targets", "handoff_upstream_target_in_flight")

	// A reload drops web and keeps api's state; the ejection has expired.
	release2()
	now = base.Add(2 * time.Minute)
	pools.Store(&[]*upstream.Pool{newPool(t, reg, "api", "10.0.0.1:80", "10.0.0.2:80")})
	scrapeAndCompare(t, m, `
# HELP handoff_upstream_targets Targets of the upstream by state: healthy (may be picked) or unhealthy (ejected).
# TYPE handoff_upstream_targets gauge
handoff_upstream_targets{state="healthy",upstream="api"} 2
handoff_upstream_targets{state="unhealthy",upstream="api"} 0
# HELP handoff_upstream_target_in_flight Requests currently sent to the target.
# TYPE handoff_upstream_target_in_flight gauge
handoff_upstream_target_in_flight{target="10.0.0.1:80",upstream="api"} 1
handoff_upstream_target_in_flight{target="10.0.0.2:80",upstream="api"} 0
`, "handoff_upstream_targets", "handoff_upstream_target_in_flight")
}

func TestPoolCollectorDuplicatesDoNotBreakScrape(t *testing.T) {
	reg := upstream.NewRegistry()
	a1 := newPool(t, reg, "api", "10.0.0.1:80", "10.0.0.1:80")
	a2 := newPool(t, reg, "api", "10.0.0.9:80")
	m := New(Options{
		Pools:  func() []*upstream.Pool { return []*upstream.Pool{a1, nil, a2} },
		Logger: handofftest.Logger(t),
	})
	fams := scrape(t, m)
	if n := seriesCount(fams, "handoff_upstream_target_in_flight"); n != 1 {
		t.Errorf("in-flight series = %d, want 1 (duplicates dropped)", n)
	}
	if got := find(fams, "handoff_upstream_targets", map[string]string{"upstream": "api", "state": "healthy"}).GetGauge().GetValue(); got != 2 {
		t.Errorf("healthy targets of the first api pool = %v, want 2", got)
	}
}

func TestObserverAndReload(t *testing.T) {
	m := New(Options{Now: func() time.Time { return base.Add(500 * time.Millisecond) }, Logger: handofftest.Logger(t)})
	m.Retry("api")
	m.Retry("api")
	m.Retry("web")
	m.UpstreamError("api", "10.0.0.1:80", "dial")
	m.UpstreamError("api", "10.0.0.1:80", "dial")
	m.UpstreamError("api", "10.0.0.2:80", "timeout")
	m.Reload(false)
	m.Reload(true)
	m.Reload(true)
	m.Retry("bad\xffname") // must not panic the client library

	ts := float64(base.Add(500*time.Millisecond).UnixNano()) / 1e9
	scrapeAndCompare(t, m, `
# HELP handoff_upstream_retries_total Requests sent again to another target of the upstream.
# TYPE handoff_upstream_retries_total counter
handoff_upstream_retries_total{upstream="api"} 2
handoff_upstream_retries_total{upstream="web"} 1
handoff_upstream_retries_total{upstream="bad`+"\ufffd"+`name"} 1
# HELP handoff_upstream_errors_total Failures talking to a target, by kind.
# TYPE handoff_upstream_errors_total counter
handoff_upstream_errors_total{kind="dial",target="10.0.0.1:80",upstream="api"} 2
handoff_upstream_errors_total{kind="timeout",target="10.0.0.2:80",upstream="api"} 1
# HELP handoff_config_reloads_total Configuration reloads, by result.
# TYPE handoff_config_reloads_total counter
handoff_config_reloads_total{result="failure"} 1
handoff_config_reloads_total{result="success"} 2
`, "handoff_upstream_retries_total", "handoff_upstream_errors_total", "handoff_config_reloads_total")

	got := find(scrape(t, m), "handoff_config_last_reload_success_timestamp_seconds", map[string]string{}).GetGauge().GetValue()
	if got != ts {
		t.Errorf("last reload timestamp = %v, want %v", got, ts)
	}
}

func TestBuildInfoAndRuntimeCollectors(t *testing.T) {
	m := New(Options{Version: "1.2.3", Revision: "abc123", Logger: handofftest.Logger(t)})
	fams := scrape(t, m)
	bi := find(fams, "handoff_build_info", map[string]string{"version": "1.2.3", "goversion": runtime.Version(), "revision": "abc123"})
	if bi.GetGauge().GetValue() != 1 {
		t.Errorf("handoff_build_info = %v, want a series with value 1", fams["handoff_build_info"])
	}
	for _, name := range []string{"go_goroutines", "process_start_time_seconds", "handoff_requests_in_flight"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("scrape has no %s", name)
		}
	}
	// A reload that never happened is reported as 0, not absent.
	if g := find(fams, "handoff_config_last_reload_success_timestamp_seconds", map[string]string{}); g == nil {
		t.Error("no handoff_config_last_reload_success_timestamp_seconds")
	}
}

func TestEachMetricsHasItsOwnRegistry(t *testing.T) {
	a := New(Options{Logger: handofftest.Logger(t)})
	b := New(Options{Logger: handofftest.Logger(t)})
	a.Retry("x")
	if got := find(scrape(t, b), "handoff_upstream_retries_total", map[string]string{"upstream": "x"}); got != nil {
		t.Errorf("a's retry shows in b: %v", got)
	}
}
