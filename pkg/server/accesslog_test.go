package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/accesslog"
	"github.com/handoff-proxy/handoff/pkg/config"
)

// TestAccessFileReopenedOnReload is logrotate without copytruncate: the
// file is renamed, the reload (postrotate) reopens the path, and the
// next line lands in the new file.
func TestAccessFileReopenedOnReload(t *testing.T) {
	b := echoBackend(t, "b")
	path := filepath.Join(t.TempDir(), "access.log")
	f, err := accesslog.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, hostOf(b))
	on := true
	cfg.Log.Access = &on
	r := serve(t, cfg, func() (*config.Config, error) { return cfg, nil }, func(o *Options) {
		o.AccessLogger = slog.New(accesslog.NewHandler(f, accesslog.FormatCombined))
		o.ReopenLogs = f.Reopen
	})
	t.Cleanup(func() { f.Close() }) // after the server stopped (cleanups run last first)
	get := func(p string) {
		t.Helper()
		resp, err := http.Get("http://" + r.addrs["http"] + p)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// The fast path writes its record after the response has left.
	waitFile := func(p, sub string) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), sub) {
				return
			}
		}
	}
	get("/before")
	waitFile(path, "/before")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if res, err := r.srv.Reload(context.Background()); err != nil || res.Error != "" {
		t.Fatalf("reload: %v %s", err, res.Error)
	}
	get("/after")
	waitFile(path, "/after")
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if !strings.Contains(string(old), `"GET /before HTTP/1.1" 200 1`) || strings.Contains(string(old), "/after") {
		t.Errorf("rotated file = %q, want only /before", old)
	}
	if !strings.Contains(string(cur), `"GET /after HTTP/1.1" 200 1`) || strings.Contains(string(cur), "/before") {
		t.Errorf("new file = %q, want only /after", cur)
	}
}

func TestAccessLogConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		log  func(*config.Log)
		key  string
	}{
		{name: "format", log: func(l *config.Log) { l.AccessFormat = "apache" }, key: "log.access_format"},
		{name: "sample above 1", log: func(l *config.Log) { l.AccessSample = 1.5 }, key: "log.access_sample"},
		{name: "negative sample", log: func(l *config.Log) { l.AccessSample = -0.1 }, key: "log.access_sample"},
		{name: "relative file", log: func(l *config.Log) { l.AccessFile = "access.log" }, key: "log.access_file"},
		{name: "missing directory", log: func(l *config.Log) { l.AccessFile = "/nonexistent/dir/access.log" }, key: "log.access_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, "127.0.0.1:1")
			tt.log(&cfg.Log)
			err := cfg.Validate([]string{"http"})
			if err == nil || !strings.Contains(err.Error(), tt.key+":") {
				t.Fatalf("err = %v, want one naming %s", err, tt.key)
			}
		})
	}
}
