package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/handoff-proxy/handoff/integration/loadgen"
	"github.com/handoff-proxy/handoff/pkg/origin"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestRunUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{name: "no command", args: nil},
		{name: "unknown command", args: []string{"fly"}},
		{name: "unknown flag", args: []string{"run", "-nope"}},
		{name: "extra argument", args: []string{"probe", "-url", "http://x/", "extra"}},
		{name: "run without url", args: []string{"run", "-duration", "10ms"}},
		{name: "probe without url", args: []string{"probe"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), tt.args, io.Discard, io.Discard)
			var ue usageError
			if !errors.As(err, &ue) {
				t.Errorf("run(%q) = %v, want a usage error", tt.args, err)
			}
		})
	}
}

func TestRunCommands(t *testing.T) {
	srv := httptest.NewServer(origin.Handler(origin.Options{Name: "x"}))
	t.Cleanup(srv.Close)
	ws := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, out []byte)
	}{
		{name: "probe", args: []string{"probe", "-url", srv.URL + "/"}, check: func(t *testing.T, out []byte) {
			var r loadgen.ProbeResult
			if err := json.Unmarshal(out, &r); err != nil || !r.OK || r.Backend != "x" {
				t.Errorf("%s: %+v %v", out, r, err)
			}
		}},
		{name: "probe post", args: []string{"probe", "-method", "POST", "-url", srv.URL + origin.PathEcho}, check: func(t *testing.T, out []byte) {
			var r loadgen.ProbeResult
			if err := json.Unmarshal(out, &r); err != nil || !r.OK {
				t.Errorf("%s: %+v %v", out, r, err)
			}
		}},
		{name: "run", args: []string{"run", "-url", srv.URL + "/", "-rate", "100", "-duration", "200ms"}, check: func(t *testing.T, out []byte) {
			var r loadgen.Result
			if err := json.Unmarshal(out, &r); err != nil || r.Sent < 10 || r.OK != r.Sent {
				t.Errorf("%s: %+v %v", out, r, err)
			}
		}},
		{name: "ws", args: []string{"ws", "-url", ws, "-hold", "100ms", "-interval", "20ms"}, check: func(t *testing.T, out []byte) {
			var r loadgen.WSResult
			if err := json.Unmarshal(out, &r); err != nil || !r.OK || r.Echoes < 2 {
				t.Errorf("%s: %+v %v", out, r, err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := run(context.Background(), tt.args, &out, io.Discard); err != nil {
				t.Fatal(err)
			}
			tt.check(t, out.Bytes())
		})
	}
}

func TestServeStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"serve", "-listen", "127.0.0.1:0", "-name", "y"}, io.Discard, io.Discard)
	}()
	time.Sleep(50 * time.Millisecond) // let it listen; the result does not depend on it
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("serve after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop after cancel")
	}
}

func TestServeReportsListenError(t *testing.T) {
	err := run(context.Background(), []string{"serve", "-listen", "256.0.0.1:1"}, io.Discard, io.Discard)
	if err == nil {
		t.Error("want an error for an impossible address")
	}
}

func TestServeHealthFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "down")
	srv := httptest.NewServer(withHealth(origin.Handler(origin.Options{Name: "h"}), file))
	t.Cleanup(srv.Close)
	status := func(path string) int {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	tests := []struct {
		name       string
		down       bool
		path       string
		wantStatus int
	}{
		{name: "healthy", path: "/healthz", wantStatus: http.StatusOK},
		{name: "down", down: true, path: "/healthz", wantStatus: http.StatusServiceUnavailable},
		{name: "down still serves", down: true, path: "/", wantStatus: http.StatusOK},
		{name: "up again", path: "/healthz", wantStatus: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.down {
				if err := os.WriteFile(file, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			} else {
				os.Remove(file)
			}
			if got := status(tt.path); got != tt.wantStatus {
				t.Errorf("GET %s = %d, want %d", tt.path, got, tt.wantStatus)
			}
		})
	}
}
