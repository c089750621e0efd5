package proxy

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/reqinfo"
	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// TestTLSVerifyFailureLogsNoRetry pins the bug where a TLS verification
// failure towards the only target was logged retry:true while the access
// log said retries=0: the log must say retry:true only when another
// target is really tried.
func TestTLSVerifyFailureLogsNoRetry(t *testing.T) {
	tests := []struct {
		name        string
		targets     int
		wantRetry   bool
		wantRetries int
	}{
		{name: "single target", targets: 1, wantRetry: false, wantRetries: 0},
		{name: "two targets", targets: 2, wantRetry: true, wantRetries: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cfg config.Upstream
			for range tt.targets {
				// Self-signed, not in the system roots: the handshake
				// fails verification.
				s := httptest.NewUnstartedServer(http.HandlerFunc(echoHandler))
				s.Config.ErrorLog = testStdLogger(t)
				s.StartTLS()
				t.Cleanup(s.Close)
				cfg.Targets = append(cfg.Targets, config.Target{Address: "https://" + s.Listener.Addr().String()})
			}
			pool, err := upstream.NewRegistry().NewPool("api", PoolSpec(cfg))
			if err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			trs := NewTransports(nil)
			t.Cleanup(trs.Close)
			h, err := New(Options{
				Pool: pool, Upstream: cfg, Selector: firstSelector{pool.Targets()}, Transports: trs,
				Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, info := reqinfo.With(t.Context())
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx))
			if rec.Code != http.StatusBadGateway {
				t.Fatalf("status %d, want 502", rec.Code)
			}
			if info.Retries != tt.wantRetries {
				t.Errorf("reqinfo retries = %d, want %d", info.Retries, tt.wantRetries)
			}
			var first map[string]any
			for line := range strings.SplitSeq(strings.TrimSpace(logs.String()), "\n") {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("log line %q: %v", line, err)
				}
				if m["msg"] == "upstream request failed" {
					first = m
					break
				}
			}
			if first == nil {
				t.Fatalf("no failure logged:\n%s", logs.String())
			}
			if got := first["retry"]; got != tt.wantRetry {
				t.Errorf("first failure logged retry=%v, want %v\n%s", got, tt.wantRetry, logs.String())
			}
		})
	}
}
