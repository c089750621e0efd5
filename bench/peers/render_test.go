package peers

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/bench/selfcert"
	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/origin"
)

// TestHandoffConfigRenders renders handoff.yaml.tmpl for every variant the
// suite uses and loads it with handoff's own config loader (unknown keys
// and invalid values are errors there), then checks the cache route, the
// tcp listener and the rate limit.
func TestHandoffConfigRenders(t *testing.T) {
	files, err := selfcert.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		backendTCP string
		rl         *RateLimit
		wantTCP    bool
		wantLimit  bool
		wantRedis  string
	}{
		{name: "plain", backendTCP: "127.0.0.1:9003", wantTCP: true},
		{name: "no byte source", backendTCP: ""},
		{name: "local limit", backendTCP: "127.0.0.1:9003", rl: &RateLimit{}, wantTCP: true, wantLimit: true},
		{name: "redis limit", backendTCP: "127.0.0.1:9003", rl: &RateLimit{Redis: "127.0.0.1:6390"}, wantTCP: true, wantLimit: true, wantRedis: "redis://127.0.0.1:6390/0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			d := templateData{
				Dir: dir, HTTP: "127.0.0.1:18080", HTTPS: "127.0.0.1:18443", TCP: "127.0.0.1:18081", Admin: "127.0.0.1:19901",
				Backend: "127.0.0.1:9001", BackendTCP: tt.backendTCP, TLS: files, Workers: 1, RateLimit: tt.rl,
			}
			path, err := render(dir, "handoff.yaml.tmpl", "handoff.yaml", d)
			if err != nil {
				t.Fatal(err)
			}
			l, err := config.Load(config.LoadOptions{File: path})
			if err != nil {
				b, _ := os.ReadFile(filepath.Clean(path))
				t.Fatalf("load rendered config: %v\n%s", err, b)
			}
			c := l.Config
			i := slices.IndexFunc(c.Routes, func(r config.Route) bool { return r.Match.PathPrefix == "/cache/" })
			if i < 0 || c.Routes[i].Cache == nil || !c.Routes[i].Cache.Enabled || c.Routes[i].RateLimit != nil {
				t.Errorf("no cached, unlimited /cache/ route: %+v", c.Routes)
			}
			j := slices.IndexFunc(c.Routes, func(r config.Route) bool { return r.Name == "all" })
			if j < 0 || c.Routes[j].Cache != nil || (c.Routes[j].RateLimit != nil) != tt.wantLimit {
				t.Errorf("default route: %+v, want rate limit %v and no cache", c.Routes[j], tt.wantLimit)
			}
			if tt.wantLimit && c.Routes[j].RateLimit.Requests < 1e9 {
				t.Errorf("rate limit %+v would deny under load", c.Routes[j].RateLimit)
			}
			gotTCP := slices.ContainsFunc(c.Listeners, func(l config.Listener) bool {
				return l.Protocol == "tcp" && l.Upstream == "bytesource" && l.Address == d.TCP
			})
			if gotTCP != tt.wantTCP {
				t.Errorf("tcp listener to the byte source: %v, want %v", gotTCP, tt.wantTCP)
			}
			gotRedis := ""
			if c.State.Redis != nil {
				gotRedis = c.State.Redis.URL
			}
			if gotRedis != tt.wantRedis {
				t.Errorf("state.redis.url = %q, want %q", gotRedis, tt.wantRedis)
			}
		})
	}
}

// TestHandoffRateLimit starts handoff with the rate-limited route, per
// process and in a real redis-server, and checks that requests pass the
// limiter (RateLimit-Policy on the response) and are never denied.
func TestHandoffRateLimit(t *testing.T) {
	bin := os.Getenv("BENCH_HANDOFF_BIN")
	if bin == "" {
		t.Skip("BENCH_HANDOFF_BIN not set")
	}
	files, err := selfcert.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	be := startBackend(t, files)
	tests := []struct {
		name  string
		redis bool
	}{
		{name: "local"},
		{name: "redis", redis: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rl := &RateLimit{}
			if tt.redis {
				rl.Redis = startRedis(t)
			}
			dir := t.TempDir()
			p, err := Start(t.Context(), Handoff, StartOptions{Dir: dir, Backend: be, TLS: files, HandoffBinary: bin, RateLimit: rl})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = p.Stop() })
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			for range 50 {
				req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+p.Endpoints.HTTP+origin.Path1K, nil)
				resp, err := (&http.Client{Transport: tr}).Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || resp.Header.Get("RateLimit-Policy") == "" {
					t.Fatalf("status %d, RateLimit-Policy %q: want 200 through the limiter", resp.StatusCode, resp.Header.Get("RateLimit-Policy"))
				}
			}
		})
	}
}

// startRedis runs a throw-away redis-server on a free port.
func startRedis(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	ports, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ports[0])
	cmd := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", ports[0])
		if err == nil {
			c.Close()
			return ports[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server not listening: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling a child process, no clock to inject
	}
}
