package admin

import (
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/metrics"
	"github.com/handoff-proxy/handoff/pkg/proxy"
	"github.com/handoff-proxy/handoff/pkg/upstream"

	"github.com/handoff-proxy/handoff/pkg/handofftest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var base = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func serve(t *testing.T, o Options) *httptest.Server {
	t.Helper()
	if o.Logger == nil {
		o.Logger = handofftest.Logger(t)
	}
	srv := httptest.NewUnstartedServer(New(o))
	srv.Config.ErrorLog = log.New(handofftest.Writer(t), "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

type response struct {
	code   int
	header http.Header
	body   string
}

func do(t *testing.T, srv *httptest.Server, method, path string) response {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{code: resp.StatusCode, header: resp.Header, body: string(b)}
}

func TestEndpoints(t *testing.T) {
	m := metrics.New(metrics.Options{Version: "9.9.9", Logger: handofftest.Logger(t)})
	var ready atomic.Bool
	ready.Store(true)
	full := Options{
		Metrics:   m.Handler(),
		Ready:     ready.Load,
		Upstreams: func() []*upstream.Pool { return nil },
		Config:    func() *config.Config { return nil },
	}
	tests := []struct {
		name      string
		opts      Options
		notReady  bool
		method    string
		path      string
		wantCode  int
		wantType  string // Content-Type prefix
		wantBody  string // exact, unless empty
		wantPart  string // contained, unless empty
		wantAllow string
	}{
		{name: "healthz", opts: full, method: "GET", path: "/healthz", wantCode: 200, wantType: "text/plain", wantBody: "ok\n"},
		{name: "healthz HEAD has no body", opts: full, method: "HEAD", path: "/healthz", wantCode: 200, wantType: "text/plain", wantBody: ""},
		{name: "healthz POST", opts: full, method: "POST", path: "/healthz", wantCode: 405, wantType: "application/json", wantBody: "{\n  \"error\": \"method not allowed\"\n}\n", wantAllow: "GET, HEAD"},
		{name: "readyz ready", opts: full, method: "GET", path: "/readyz", wantCode: 200, wantType: "text/plain", wantBody: "ready\n"},
		{name: "readyz draining", opts: full, notReady: true, method: "GET", path: "/readyz", wantCode: 503, wantType: "text/plain", wantBody: "not ready\n"},
		{name: "readyz without a func", opts: Options{}, method: "GET", path: "/readyz", wantCode: 200, wantBody: "ready\n"},
		{name: "metrics", opts: full, method: "GET", path: "/metrics", wantCode: 200, wantType: "text/plain", wantPart: `handoff_build_info{goversion=`},
		{name: "metrics DELETE", opts: full, method: "DELETE", path: "/metrics", wantCode: 405, wantAllow: "GET, HEAD"},
		{name: "metrics not configured", opts: Options{}, method: "GET", path: "/metrics", wantCode: 404, wantType: "application/json"},
		{name: "unknown path", opts: full, method: "GET", path: "/nope", wantCode: 404, wantType: "application/json", wantBody: "{\n  \"error\": \"not found\"\n}\n"},
		{name: "unknown path with POST is 404", opts: full, method: "POST", path: "/api/v1/nope", wantCode: 404},
		{name: "trailing slash is another path", opts: full, method: "GET", path: "/healthz/", wantCode: 404},
		{name: "upstreams without pools", opts: Options{}, method: "GET", path: "/api/v1/upstreams", wantCode: 200, wantType: "application/json", wantBody: "{\n  \"upstreams\": []\n}\n"},
		{name: "config not loaded yet", opts: full, method: "GET", path: "/api/v1/config", wantCode: 503, wantType: "application/json", wantBody: "{\n  \"error\": \"no config loaded\"\n}\n"},
		{name: "config not configured", opts: Options{}, method: "GET", path: "/api/v1/config", wantCode: 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ready.Store(!tc.notReady)
			srv := serve(t, tc.opts)
			got := do(t, srv, tc.method, tc.path)
			if got.code != tc.wantCode {
				t.Errorf("status = %d, want %d", got.code, tc.wantCode)
			}
			if ct := got.header.Get("Content-Type"); !strings.HasPrefix(ct, tc.wantType) {
				t.Errorf("Content-Type = %q, want %q…", ct, tc.wantType)
			}
			if tc.wantBody != "" || tc.method == http.MethodHead {
				if got.body != tc.wantBody {
					t.Errorf("body = %q, want %q", got.body, tc.wantBody)
				}
			}
			if !strings.Contains(got.body, tc.wantPart) {
				t.Errorf("body lacks %q:\n%s", tc.wantPart, got.body)
			}
			if a := got.header.Get("Allow"); a != tc.wantAllow {
				t.Errorf("Allow = %q, want %q", a, tc.wantAllow)
			}
			if tc.method == http.MethodHead && got.header.Get("Content-Length") != "3" {
				t.Errorf("HEAD Content-Length = %q, want 3", got.header.Get("Content-Length"))
			}
		})
	}
}

func TestUpstreams(t *testing.T) {
	reg := upstream.NewRegistry()
	newPool := func(name, strategy string, addrs ...string) *upstream.Pool {
		cfg := config.Upstream{Strategy: strategy}
		for i, a := range addrs {
			cfg.Targets = append(cfg.Targets, config.Target{Address: a, Weight: i})
		}
		p, err := reg.NewPool(name, proxy.PoolSpec(cfg))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	web := newPool("web", "", "10.0.1.1:8080")
	api := newPool("api", config.StrategyLeastConn, "10.0.0.1:80", "https://api.internal", "10.0.0.3:80")
	api.Targets()[1].MarkFailed(base, 30*time.Second)
	release := api.Targets()[0].Acquire()
	defer release()

	srv := serve(t, Options{
		Now:       func() time.Time { return base.Add(10 * time.Second) },
		Upstreams: func() []*upstream.Pool { return []*upstream.Pool{web, nil, api} },
	})
	got := do(t, srv, http.MethodGet, PathUpstreams)
	if got.code != 200 {
		t.Fatalf("status %d: %s", got.code, got.body)
	}

	var resp UpstreamsResponse
	if err := json.Unmarshal([]byte(got.body), &resp); err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, u := range resp.Upstreams {
		names = append(names, u.Name)
	}
	if !slices.Equal(names, []string{"api", "web"}) {
		t.Fatalf("upstreams %v, want [api web]", names)
	}
	a, w := resp.Upstreams[0], resp.Upstreams[1]
	if a.Strategy != "least_conn" || a.Healthy != 2 || a.Total != 3 || len(a.Targets) != 3 {
		t.Errorf("api = %+v", a)
	}
	if w.Strategy != "round_robin" || w.Healthy != 1 || w.Total != 1 {
		t.Errorf("web = %+v (an unset strategy shows as round_robin)", w)
	}
	wantTargets := []upstream.Snapshot{
		{Address: "10.0.0.1:80", Weight: 1, Healthy: true, InFlight: 1, Requests: 1},
		{Address: "https://api.internal", Weight: 1, Healthy: false, DownUntil: base.Add(30 * time.Second), Failures: 1},
		{Address: "10.0.0.3:80", Weight: 2, Healthy: true},
	}
	for i, want := range wantTargets {
		g := a.Targets[i]
		if g.Address != want.Address || g.Weight != want.Weight || g.Healthy != want.Healthy || !g.DownUntil.Equal(want.DownUntil) ||
			g.InFlight != want.InFlight || g.Requests != want.Requests || g.Failures != want.Failures {
			t.Errorf("target %d = %+v, want %+v", i, g, want)
		}
	}

	// The shape, key by key, as a client without our types sees it.
	var raw map[string][]map[string]any
	if err := json.Unmarshal([]byte(got.body), &raw); err != nil {
		t.Fatal(err)
	}
	keys := func(m map[string]any) []string {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}
	if k := keys(raw["upstreams"][0]); !slices.Equal(k, []string{"healthy", "name", "strategy", "targets", "total"}) {
		t.Errorf("upstream keys = %v", k)
	}
	targets := raw["upstreams"][0]["targets"].([]any)
	if k := keys(targets[0].(map[string]any)); !slices.Equal(k, []string{"address", "failures", "health", "healthy", "in_flight", "requests", "weight"}) {
		t.Errorf("healthy target keys = %v (down_until must be omitted)", k)
	}
	if k := keys(targets[1].(map[string]any)); !slices.Contains(k, "down_until") {
		t.Errorf("ejected target keys = %v, want down_until", k)
	}
}
