package server

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/config"
)

// recordingBackend answers 200 and sends each request's body to seen.
func recordingBackend(t *testing.T, block <-chan struct{}) (*httptest.Server, chan string) {
	t.Helper()
	seen := make(chan string, 1000)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen <- r.Method + " " + r.URL.Path + " " + string(b)
		if block != nil {
			select {
			case <-block:
			case <-r.Context().Done():
			}
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(s.Close)
	return s, seen
}

func mirrorConfig(primary, shadow *httptest.Server, m config.RouteMirror) *config.Config {
	cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, hostOf(primary))
	cfg.Upstreams["shadow"] = config.Upstream{Targets: []config.Target{{Address: hostOf(shadow), Weight: 1}}}
	cfg.Routes[0].Mirror = &m
	return cfg
}

func post(t *testing.T, url, body string, chunked bool) {
	t.Helper()
	var rd io.Reader = strings.NewReader(body)
	if chunked {
		rd = io.MultiReader(rd) // unknown length: sent chunked
	}
	res, err := http.Post(url, "text/plain", rd)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if b, _ := io.ReadAll(res.Body); res.StatusCode != 200 || string(b) != "ok" {
		t.Fatalf("POST %s: %d %q", url, res.StatusCode, b)
	}
}

// drain collects want strings from seen, failing after 10s.
func drain(t *testing.T, seen chan string, want int) []string {
	t.Helper()
	var got []string
	for len(got) < want {
		select {
		case s := <-seen:
			got = append(got, s)
		case <-time.After(10 * time.Second):
			t.Fatalf("got %d of %d requests: %q", len(got), want, got)
		}
	}
	return got
}

func TestMirrorShare(t *testing.T) {
	tests := []struct {
		name     string
		mirror   config.RouteMirror
		body     string
		chunked  bool
		requests int
		want     int // copies the shadow gets
		tooLarge int
	}{
		{name: "10 percent", mirror: config.RouteMirror{Percent: 10}, body: "hello", requests: 40, want: 4},
		{name: "default is every request", mirror: config.RouteMirror{}, body: "x", requests: 5, want: 5},
		{name: "chunked body within max_body", mirror: config.RouteMirror{Percent: 50, MaxBody: "16"}, body: "0123456789", chunked: true, requests: 6, want: 3},
		{name: "body over max_body not mirrored", mirror: config.RouteMirror{MaxBody: "4"}, body: "0123456789", requests: 3, tooLarge: 3},
		{name: "chunked body over max_body not mirrored", mirror: config.RouteMirror{MaxBody: "4"}, body: "0123456789", chunked: true, requests: 3, tooLarge: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			primary, pseen := recordingBackend(t, nil)
			shadow, sseen := recordingBackend(t, nil)
			tt.mirror.Upstream = "shadow"
			r := serve(t, mirrorConfig(primary, shadow, tt.mirror), nil)
			for i := range tt.requests {
				post(t, fmt.Sprintf("http://%s/p%d", r.addrs["http"], i), tt.body, tt.chunked)
			}
			for _, s := range drain(t, pseen, tt.requests) {
				if !strings.HasSuffix(s, " "+tt.body) {
					t.Errorf("primary got %q, want body %q", s, tt.body)
				}
			}
			got := drain(t, sseen, tt.want)
			for _, s := range got {
				if !strings.HasPrefix(s, "POST /p") || !strings.HasSuffix(s, " "+tt.body) {
					t.Errorf("shadow got %q, want POST with body %q", s, tt.body)
				}
			}
			m := metricsOf(r)
			for result, n := range map[string]int{"mirrored": tt.want, "too_large": tt.tooLarge} {
				line := fmt.Sprintf(`handoff_mirror_requests_total{result=%q,route="default"} %d`, result, n)
				if n > 0 && !strings.Contains(m, line) {
					t.Errorf("metrics lack %s:\n%s", line, grepLines(m, "mirror_requests"))
				}
			}
			select {
			case s := <-sseen:
				t.Errorf("shadow got an extra request %q", s)
			default:
			}
		})
	}
}

// TestMirrorSlowShadowDoesNotSlowClient: with the shadow stuck, every
// client request is still answered; max_in_flight copies wait at the
// shadow and the rest are dropped and counted.
func TestMirrorSlowShadowDoesNotSlowClient(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	primary, pseen := recordingBackend(t, nil)
	shadow, sseen := recordingBackend(t, block)
	r := serve(t, mirrorConfig(primary, shadow, config.RouteMirror{Upstream: "shadow", MaxInFlight: 2}), nil)

	client := &http.Client{Timeout: 5 * time.Second} // a client waiting on the shadow would hang here
	var done atomic.Int64
	for i := range 20 {
		res, err := client.Post(fmt.Sprintf("http://%s/p%d", r.addrs["http"], i), "text/plain", bytes.NewReader([]byte("b")))
		if err != nil {
			t.Fatalf("request %d with the shadow stuck: %v", i, err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		done.Add(1)
	}
	drain(t, pseen, 20)
	drain(t, sseen, 2)
	m := metricsOf(r)
	for _, line := range []string{
		`handoff_mirror_requests_total{result="mirrored",route="default"} 2`,
		`handoff_mirror_requests_total{result="dropped",route="default"} 18`,
	} {
		if !strings.Contains(m, line) {
			t.Errorf("metrics lack %s:\n%s", line, grepLines(m, "mirror_requests"))
		}
	}
}

func metricsOf(r *running) string {
	var mb bytes.Buffer
	r.srv.metrics.Handler().ServeHTTP(&bufResponse{h: http.Header{}, b: &mb}, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	return mb.String()
}
