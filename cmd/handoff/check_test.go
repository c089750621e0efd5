package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/config"
)

// Regression: `handoff check` said "config OK (no file): 1 listener" and
// exited 0 while `handoff --admin off` exited 1 with "no listeners". check
// must load exactly as serve does: run both on the same inputs and
// compare the verdict and the problems printed.
func TestCheckAgreesWithServe(t *testing.T) {
	dir := t.TempDir()
	be := backend(t, "one")
	good := filepath.Join(dir, "good.yaml")
	writeFile(t, good, fmt.Sprintf(`
listeners: [{name: http, address: "127.0.0.1:0"}]
upstreams: {web: {targets: [{address: %q}]}}
routes: [{match: {}, upstream: web}]
`, hostPort(be)))
	cut := filepath.Join(dir, "cut.yaml")
	writeFile(t, cut, "listeners: [{name: http, address: \"127.0.0.1:0\"}]\nadmin: {listen: \"off\"}\n")
	empty := filepath.Join(dir, "empty.yaml")
	writeFile(t, empty, "listeners: [{name: http, address: \"127.0.0.1:0\"}]\nroutes: []\n")
	// An empty file stands for "no file": /etc/handoff/handoff.yaml, the
	// default, may exist on the machine that runs the tests.
	none := filepath.Join(dir, "none.yaml")
	writeFile(t, none, "")
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "upstreams:\n  web:\n    strategy: no_such_strategy\n    targets: [{address: \"127.0.0.1:1\"}]\nbogus_key: 1\n")
	tests := []struct {
		name   string
		args   []string
		env    []string
		wantOK bool
	}{
		{name: "nothing", args: []string{"--admin", "off", "-c", none}},
		{name: "backend without listen", args: []string{"--admin", "off", "-c", none, "-b", hostPort(be)}},
		{name: "listen without backend", args: []string{"--admin", "off", "-c", none, "-l", "127.0.0.1:0"}},
		{name: "quick mode", args: []string{"--admin", "off", "-c", none, "-l", "127.0.0.1:0", "-b", hostPort(be)}, wantOK: true},
		{name: "file", args: []string{"--admin", "off", "-c", good}, wantOK: true},
		{name: "file from env", args: []string{"--admin", "off"}, env: []string{"HANDOFF_CONFIG=" + good}, wantOK: true},
		{name: "bad env value", args: []string{"--admin", "off", "-c", good}, env: []string{"HANDOFF_SHUTDOWN_TIMEOUT=soon"}},
		{name: "file cut off", args: []string{"-c", cut}},
		{name: "explicit no routes", args: []string{"--admin", "off", "-c", empty}, wantOK: true},
		{name: "unknown key and bad value", args: []string{"--admin", "off", "-c", bad}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, checkErr, code := runCLI(t, append([]string{"check"}, tt.args...), tt.env...)
			if (code == 0) != tt.wantOK {
				t.Errorf("check: exit %d, want ok=%v\n%s%s", code, tt.wantOK, out, checkErr)
			}
			p := startNoWait(t, tt.args, tt.env...)
			select {
			case <-p.ready:
				p.signal(syscall.SIGTERM)
				if c := p.wait(15 * time.Second); c != 0 {
					t.Errorf("serve exited %d after SIGTERM", c)
				}
				if code != 0 {
					t.Errorf("serve started, check exited %d:\n%s", code, checkErr)
				}
			case <-p.exited:
				p.exited <- nil
				serveCode := p.wait(time.Second)
				if code == 0 || serveCode != 1 {
					t.Errorf("serve exited %d, check %d", serveCode, code)
				}
				// The same problems, in the same order.
				if got, want := problems(p.outputAfterExit(5*time.Second)), problems(checkErr); got != want || want == "" {
					t.Errorf("problems differ:\nserve:\n%s\ncheck:\n%s", got, want)
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("serve neither served nor exited\n%s", p.output())
			}
		})
	}
}

// problems returns the lines of a config error report.
func problems(out string) string {
	var lines []string
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, "  ") || strings.Contains(line, "problem(s)") {
			lines = append(lines, strings.TrimRight(line, "\n"))
		}
	}
	return strings.Join(lines, "\n")
}

// The acceptance file: an unknown key must not hide the bad strategy.
func TestCheckReportsEveryProblem(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	writeFile(t, bad, "upstreams:\n  web:\n    strategy: no_such_strategy\n    targets: [{address: \"127.0.0.1:1\"}]\nbogus_key: 1\n")
	_, stderr, code := runCLI(t, []string{"check", "-c", bad})
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{bad + ":3: upstreams.web.strategy:", bad + ":5: bogus_key: unknown key"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if i, j := strings.Index(stderr, ":3: "), strings.Index(stderr, ":5: "); i > j {
		t.Errorf("not sorted by line:\n%s", stderr)
	}
}

func TestSubcommandHelp(t *testing.T) {
	quick := []string{"--listen", "--backend", "--strategy", "--log-level"}
	tests := []struct {
		name           string
		args           []string
		want, dontWant []string
	}{
		{name: "general", args: []string{"--help"}, want: append([]string{"handoff upgrade", "reload [--admin ADDR] [-c PATH] [--timeout D]"}, quick...)},
		{name: "check", args: []string{"check", "--help"}, want: append([]string{"Usage: handoff check", "exactly as"}, quick...), dontWant: []string{"handoff upgrade"}},
		{name: "config", args: []string{"config", "--help"}, want: []string{"Usage: handoff config", "--sources"}, dontWant: []string{"handoff upgrade"}},
		{name: "reload", args: []string{"reload", "--help"}, want: []string{"Usage: handoff reload", "--admin", "--config", "--timeout"}, dontWant: quick},
		{name: "upgrade", args: []string{"upgrade", "--help"}, want: []string{"Usage: handoff upgrade", "--admin", "--config", "--timeout"}, dontWant: quick},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, stderr, code := runCLI(t, tt.args)
			if code != 0 || stderr != "" {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("help lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tt.dontWant {
				if strings.Contains(out, w) {
					t.Errorf("help has %q:\n%s", w, out)
				}
			}
		})
	}
	if _, stderr, code := runCLI(t, []string{"reload", "-b", "127.0.0.1:1"}); code != 2 || !strings.Contains(stderr, "unknown shorthand flag: 'b'") {
		t.Errorf("reload -b: exit %d, %q", code, stderr)
	}
}

// Regression: JSON logs printed durations in nanoseconds
// ("timeout":30000000000) where text logs said 30s.
func TestJSONLogDurations(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		var buf bytes.Buffer
		log := newLogger(&buf, config.Log{Level: "info", Format: format})
		log.Info("x", "timeout", 30*time.Second, slog.Group("g", "d", 1500*time.Millisecond))
		if format == "text" {
			if !strings.Contains(buf.String(), "timeout=30s") || !strings.Contains(buf.String(), "g.d=1.5s") {
				t.Errorf("text: %s", buf.String())
			}
			continue
		}
		var line struct {
			Timeout string
			G       struct{ D string }
		}
		if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
			t.Fatalf("%v: %s", err, buf.String())
		}
		if line.Timeout != "30s" || line.G.D != "1.5s" {
			t.Errorf("json: %s", buf.String())
		}
	}
}
