package main

import (
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// statusNormalisers make `handoff status` output comparable across runs:
// pids, ages and connection counts change, and tabwriter pads columns to
// the width of addresses whose ports change.
var statusNormalisers = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`pid \d+`), "pid PID"},
	{regexp.MustCompile(`\b\d+[smhd](\d+[smh])?\b`), "AGE"},
	{regexp.MustCompile(`\d+ open connections`), "N open connections"},
	{regexp.MustCompile(`handoff \S+, pid`), "handoff VERSION, pid"},
	{regexp.MustCompile(`\S+:\d+ \(this process\)`), "HOST:PID (this process)"},
	{regexp.MustCompile(`127\.0\.0\.1:\d+`), "ADDR"},
	{regexp.MustCompile(`(?m)^(HOST:PID \(this process\)\s+)\S+`), "${1}VERSION"},
	{regexp.MustCompile(` {2,}`), "  "},
	{regexp.MustCompile(` +\n`), "\n"},
}

func normaliseStatus(out string, addrs map[string]string) string {
	for name, a := range addrs {
		out = strings.ReplaceAll(out, a, name)
	}
	for _, n := range statusNormalisers {
		out = n.re.ReplaceAllString(out, n.with)
	}
	return out
}

func TestStatus(t *testing.T) {
	alpha := backend(t, "alpha")
	beta := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	t.Cleanup(beta.Close)
	betaHealth := `{active: {type: http, path: /healthz, interval: 200ms, timeout: 100ms, healthy_threshold: 1, unhealthy_threshold: 1}}`
	tests := []struct {
		name     string
		betaUp   bool
		wantCode int
	}{
		{name: "an upstream without a healthy target", wantCode: 1},
		{name: "all healthy", betaUp: true, wantCode: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			betaTarget, health := hostPort(beta), betaHealth
			if tt.betaUp {
				betaTarget, health = hostPort(alpha), "{}"
			}
			cfg := filepath.Join(dir, "h.yaml")
			writeFile(t, cfg, fmt.Sprintf(`listeners: [{name: http, address: "127.0.0.1:0", protocol: http}]
admin: {listen: "127.0.0.1:0"}
log: {access: false}
cache: {max_memory: 1MiB}
upstreams:
  alpha-pool: {targets: [{address: %q}]}
  beta-pool: {targets: [{address: %q}], health: %s}
routes:
  - {match: {path_prefix: /beta}, upstream: beta-pool}
  - {match: {}, upstream: alpha-pool, cache: {enabled: true, default_ttl: 1m}}
`, hostPort(alpha), betaTarget, health))
			p := startNoWait(t, []string{"-c", cfg})
			var addrs map[string]string
			select {
			case addrs = <-p.ready:
			case err := <-p.exited:
				t.Fatalf("handoff exited: %v\n%s", err, p.output())
			case <-time.After(15 * time.Second):
				t.Fatalf("handoff did not start\n%s", p.output())
			}
			c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			for range 10 {
				if code, _, _ := get(t, c, "http://"+addrs["http"]+"/static"); code != 200 {
					t.Fatalf("GET /static: %d", code)
				}
			}
			var out, stderr string
			var code int
			eventually(t, 10*time.Second, "status settles", func() (bool, string) {
				out, stderr, code = runCLI(t, []string{"status", "--admin", addrs["admin"]})
				settled := strings.Contains(out, "fail") || tt.betaUp
				return code == tt.wantCode && settled, fmt.Sprintf("exit %d\n%s%s", code, out, stderr)
			})
			got := normaliseStatus(out, map[string]string{
				"ALPHA": hostPort(alpha), "BETA": hostPort(beta),
			})
			golden := filepath.Join("testdata", "status-"+strings.ReplaceAll(tt.name, " ", "-")+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("handoff status (normalised) =\n%s\nwant (%s)\n%s", got, golden, want)
			}
		})
	}
}
