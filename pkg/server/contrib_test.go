package server

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/handoff-proxy/handoff/pkg/admin"
	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/handofftest"
	"github.com/handoff-proxy/handoff/pkg/metrics"
)

// exportedNames lists every metric name a Server's registry describes,
// histograms and summaries with their _bucket, _sum and _count series.
// Describe, unlike a scrape, lists vectors that have no series yet.
func exportedNames(t *testing.T, reg *prometheus.Registry) map[string]bool {
	t.Helper()
	ch := make(chan *prometheus.Desc)
	go func() { reg.Describe(ch); close(ch) }()
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	names := map[string]bool{}
	for d := range ch {
		if m := fq.FindStringSubmatch(d.String()); m != nil {
			for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
				names[m[1]+suffix] = true
			}
		}
	}
	return names
}

// TestContribMetricsExported pins contrib/grafana and contrib/prometheus to
// the metrics handoff exports: a renamed metric must not leave a
// dashboard panel empty or an alert silent.
func TestContribMetricsExported(t *testing.T) {
	cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, "127.0.0.1:1")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv, err := New(Options{Config: cfg, Listeners: map[string]net.Listener{"http": ln}, Logger: handofftest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	names := exportedNames(t, srv.metrics.Registry())
	metric := regexp.MustCompile(`\bhandoff_[a-z0-9_]+`)
	tests := []struct {
		name  string
		path  string
		parse func([]byte) error
	}{
		{name: "grafana dashboard", path: "../../contrib/grafana/handoff.json", parse: func(b []byte) error {
			var v map[string]any
			return json.Unmarshal(b, &v)
		}},
		{name: "prometheus alerts", path: "../../contrib/prometheus/alerts.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := os.ReadFile(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if tt.parse != nil {
				if err := tt.parse(b); err != nil {
					t.Fatalf("parse %s: %v", tt.path, err)
				}
			}
			used := metric.FindAllString(string(b), -1)
			slices.Sort(used)
			used = slices.Compact(used)
			if len(used) < 5 {
				t.Fatalf("%s references only %v", tt.path, used)
			}
			for _, m := range used {
				if !names[m] {
					t.Errorf("%s references %s, which handoff does not export", tt.path, m)
				}
			}
		})
	}
}

// TestDashboardOnRealServer serves the dashboard from a running Server:
// the page, its CSP, the overview and the live series after traffic.
func TestDashboardOnRealServer(t *testing.T) {
	b := echoBackend(t, "b")
	cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, hostOf(b))
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{Config: cfg, Admin: adminLn, Listeners: map[string]net.Listener{"http": ln},
		Logger: handofftest.Logger(t), Version: "v9.9.9"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()
	base := "http://" + adminLn.Addr().String()
	for range 5 {
		resp, err := http.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP = %q", csp)
	}
	for _, want := range []string{"v9.9.9", hostOf(b), "healthy", `src="/ui/dashboard.js"`, `<dd id="total-requests">5</dd>`, ln.Addr().String()} {
		if !strings.Contains(string(page), want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	if strings.Contains(string(page), "<script>") || strings.Contains(string(page), "style=") {
		t.Error("dashboard has inline script or style, which its CSP refuses")
	}

	var ov admin.Overview
	getJSON(t, base+admin.PathOverview, &ov)
	if ov.Process.PID != os.Getpid() || ov.Traffic.Requests != 5 || len(ov.Upstreams) != 1 || ov.Upstreams[0].Targets[0].Requests != 5 {
		t.Errorf("overview = %+v", ov)
	}
	var s metrics.LiveSeries
	getJSON(t, base+admin.PathStats+"?seconds=60", &s)
	if len(s.Requests) != 60 {
		t.Fatalf("stats has %d seconds, want 60", len(s.Requests))
	}
	if n, _ := s.Totals(); n != 5 {
		t.Errorf("stats count %d requests, want 5", n)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
