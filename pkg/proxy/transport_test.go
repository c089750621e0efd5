package proxy

import (
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/handofftest"
	"github.com/handoff-proxy/handoff/pkg/upstream"
)

func TestTransportsUpdate(t *testing.T) {
	ca := newTestCA(t)
	_, certA, keyA := ca.issue(t, "a")
	_, certB, keyB := ca.issue(t, "b")
	caCopy := filepath.Join(t.TempDir(), "ca.pem")
	copyFile(t, ca.pemPath, caCopy)

	base := config.Upstream{TLS: config.UpstreamTLS{CA: caCopy, Cert: certA, Key: keyA}}
	withTimeout := base
	withTimeout.Timeouts.ResponseHeader = time.Second
	// Strategy, targets and retries are not transport settings.
	otherTargets := base
	otherTargets.Strategy = config.StrategyLeastConn
	otherTargets.Targets = []config.Target{{Address: "127.0.0.1:1"}}

	tests := []struct {
		name    string
		change  func(t *testing.T) map[string]config.Upstream
		rebuilt bool
	}{
		{name: "same settings kept", change: func(*testing.T) map[string]config.Upstream { return map[string]config.Upstream{"api": base} }},
		{name: "non-transport settings kept", change: func(*testing.T) map[string]config.Upstream { return map[string]config.Upstream{"api": otherTargets} }},
		{name: "timeout change rebuilt", change: func(*testing.T) map[string]config.Upstream { return map[string]config.Upstream{"api": withTimeout} }, rebuilt: true},
		{
			name: "client cert rotated in place rebuilt",
			change: func(t *testing.T) map[string]config.Upstream {
				copyFile(t, certB, certA)
				copyFile(t, keyB, keyA)
				return map[string]config.Upstream{"api": base}
			},
			rebuilt: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			trs := NewTransports(handofftest.Logger(t))
			t.Cleanup(trs.Close)
			if err := trs.Update(map[string]config.Upstream{"api": base, "gone": {}}); err != nil {
				t.Fatal(err)
			}
			before := trs.m["api"]
			if err := trs.Update(tt.change(t)); err != nil {
				t.Fatal(err)
			}
			after := trs.m["api"]
			if (before != after) != tt.rebuilt {
				t.Errorf("rebuilt = %v, want %v", before != after, tt.rebuilt)
			}
			if _, ok := trs.m["gone"]; ok {
				t.Errorf("removed upstream still cached")
			}
			got, err := trs.get("api", tt.change(t)["api"])
			if err != nil || got != after {
				t.Errorf("get after update = %p, %v; want the cached %p", got, err, after)
			}
		})
	}
}

func TestTransportsErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(notPEM, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name     string
		tls      config.UpstreamTLS
		notExist bool
	}{
		{name: "missing ca", tls: config.UpstreamTLS{CA: missing}, notExist: true},
		{name: "ca without certificates", tls: config.UpstreamTLS{CA: notPEM}},
		{name: "cert without key", tls: config.UpstreamTLS{Cert: notPEM}},
		{name: "missing key", tls: config.UpstreamTLS{Cert: notPEM, Key: missing}, notExist: true},
		{name: "bad key pair", tls: config.UpstreamTLS{Cert: notPEM, Key: notPEM}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			trs := NewTransports(handofftest.Logger(t))
			t.Cleanup(trs.Close)
			good := config.Upstream{}
			err := trs.Update(map[string]config.Upstream{"good": good, "bad-one": {TLS: tt.tls}})
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), `upstream "bad-one"`) {
				t.Errorf("error %q does not name the upstream", err)
			}
			if tt.notExist && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("error %v is not fs.ErrNotExist", err)
			}
			if _, ok := trs.m["good"]; !ok {
				t.Errorf("the good upstream was not built")
			}
			pool, perr := upstream.NewRegistry().NewPool("bad-one", upstream.PoolSpec{Targets: []upstream.TargetSpec{{Address: "127.0.0.1:1"}}})
			if perr != nil {
				t.Fatal(perr)
			}
			up := config.Upstream{TLS: tt.tls, Targets: []config.Target{{Address: "127.0.0.1:1"}}}
			if _, err := New(Options{Pool: pool, Upstream: up, Selector: firstSelector{pool.Targets()}, Transports: trs}); err == nil {
				t.Errorf("New accepted an upstream with broken TLS files")
			}
		})
	}
}

// TestIdleConnectionsSurviveReload: a reload that keeps an upstream's
// settings keeps its keep-alive connections, even through a new Handler.
func TestIdleConnectionsSurviveReload(t *testing.T) {
	var conns atomic.Int64
	s := httptest.NewUnstartedServer(http.HandlerFunc(echoHandler))
	s.Config.ErrorLog = testStdLogger(t)
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	cfg := config.Upstream{Targets: []config.Target{{Address: s.Listener.Addr().String()}}}
	trs := NewTransports(handofftest.Logger(t))
	t.Cleanup(trs.Close)
	reg := upstream.NewRegistry()

	serve := func(cfg config.Upstream) {
		t.Helper()
		if err := trs.Update(map[string]config.Upstream{"api": cfg}); err != nil {
			t.Fatal(err)
		}
		pool, err := reg.NewPool("api", PoolSpec(cfg))
		if err != nil {
			t.Fatal(err)
		}
		h, err := New(Options{Pool: pool, Upstream: cfg, Selector: firstSelector{pool.Targets()}, Transports: trs, Logger: handofftest.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("status %d", rec.Code)
		}
		io.Copy(io.Discard, rec.Body)
	}
	serve(cfg)
	serve(cfg) // "reload" with the same settings
	if n := conns.Load(); n != 1 {
		t.Errorf("backend saw %d connections across a no-op reload, want 1", n)
	}
	changed := cfg
	changed.Timeouts.IdleConn = time.Minute
	serve(changed)
	if n := conns.Load(); n != 2 {
		t.Errorf("backend saw %d connections after a settings change, want 2", n)
	}
}

func TestNewValidation(t *testing.T) {
	pool, err := upstream.NewRegistry().NewPool("api", upstream.PoolSpec{Targets: []upstream.TargetSpec{{Address: "127.0.0.1:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	trs := NewTransports(nil)
	t.Cleanup(trs.Close)
	sel := firstSelector{pool.Targets()}
	tests := []struct {
		name string
		o    Options
		ok   bool
	}{
		{name: "complete", o: Options{Pool: pool, Selector: sel, Transports: trs}, ok: true},
		{name: "custom via", o: Options{Pool: pool, Selector: sel, Transports: trs, Via: "edge-1"}, ok: true},
		{name: "no pool", o: Options{Selector: sel, Transports: trs}},
		{name: "no selector", o: Options{Pool: pool, Transports: trs}},
		{name: "no transports", o: Options{Pool: pool, Selector: sel}},
		{name: "via not a token", o: Options{Pool: pool, Selector: sel, Transports: trs, Via: "bad via"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.o)
			if (err == nil) != tt.ok {
				t.Fatalf("New error = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
