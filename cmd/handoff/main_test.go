package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--no-such-flag"}, "unknown flag: --no-such-flag"},
		{"unknown shorthand", []string{"-z"}, "unknown shorthand flag: 'z'"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"bad strategy", []string{"-b", "127.0.0.1:1", "-s", "fastest"}, `invalid value "fastest" for --strategy`},
		{"bad log level", []string{"--log-level", "loud"}, `invalid value "loud" for --log-level`},
		{"bad log format", []string{"--log-format", "xml"}, `invalid value "xml" for --log-format`},
		{"missing flag value", []string{"-l"}, "flag needs an argument"},
		{"stray argument", []string{"serve", "extra"}, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := runCLI(t, tt.args)
			if code != 2 {
				t.Errorf("exit code = %d, want 2; stderr: %s", code, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tt.want)
			}
			if n := strings.Count(strings.TrimSpace(stderr), "\n"); n != 0 {
				t.Errorf("stderr has %d lines, want one: %q", n+1, stderr)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	out, _, code := runCLI(t, []string{"version"})
	if code != 0 || !strings.HasPrefix(out, "handoff ") {
		t.Fatalf("version: code %d, out %q", code, out)
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	writeFile(t, good, `
listeners: [{name: http, address: "127.0.0.1:8080"}]
upstreams:
  web: {targets: [{address: "127.0.0.1:9001"}]}
routes: [{match: {}, upstream: web}]
`)
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, `
listeners: [{name: http, address: "127.0.0.1:8080", protocol: gopher}]
upstreams:
  web: {strategy: fastest, targets: [{address: "127.0.0.1:9001", wieght: 2}]}
routes: [{match: {}, upstream: nope}]
shutdown_timeout: "5 parsecs"
`)
	t.Run("valid", func(t *testing.T) {
		out, stderr, code := runCLI(t, []string{"check", "-c", good})
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, "config OK") {
			t.Errorf("want a one-line summary, got %q", out)
		}
	})
	t.Run("invalid names file and keys", func(t *testing.T) {
		_, stderr, code := runCLI(t, []string{"check", "-c", bad})
		if code != 1 {
			t.Fatalf("exit %d, want 1: %s", code, stderr)
		}
		for _, want := range []string{"bad.yaml", "wieght", "shutdown_timeout"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr does not mention %q:\n%s", want, stderr)
			}
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, stderr, code := runCLI(t, []string{"check", "-c", filepath.Join(dir, "absent.yaml")})
		if code != 1 || !strings.Contains(stderr, "absent.yaml") {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
	})
}

// TestConfigLayers checks the documented order end to end through the
// binary: file < conf.d < env < flags.
func TestConfigLayers(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "handoff.yaml")
	writeFile(t, file, `
admin: {listen: "127.0.0.1:1001"}
log: {level: debug, format: text}
shutdown_timeout: 11s
listeners: [{name: http, address: "127.0.0.1:8080"}]
upstreams: {web: {targets: [{address: "127.0.0.1:9001"}]}}
routes: [{match: {}, upstream: web}]
`)
	writeFile(t, filepath.Join(dir, "conf.d", "10-a.yaml"), "admin: {listen: \"127.0.0.1:1002\"}\nshutdown_timeout: 12s\n")
	writeFile(t, filepath.Join(dir, "conf.d", "20-b.yaml"), "shutdown_timeout: 13s\n")
	out, stderr, code := runCLI(t, []string{"config", "-c", file, "--log-level", "warn"}, "HANDOFF_ADMIN__LISTEN=127.0.0.1:1003")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"listen: 127.0.0.1:1003", "level: warn", "format: text", "shutdown_timeout: 13s"} {
		if !strings.Contains(out, want) {
			t.Errorf("effective config lacks %q:\n%s", want, out)
		}
	}
	out, stderr, code = runCLI(t, []string{"config", "--sources", "-c", file, "--log-level", "warn"}, "HANDOFF_ADMIN__LISTEN=127.0.0.1:1003")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"HANDOFF_ADMIN__LISTEN", "--log-level", "20-b.yaml", "handoff.yaml"} {
		if !strings.Contains(out, want) {
			t.Errorf("--sources output lacks %q:\n%s", want, out)
		}
	}
}

func TestQuickModeRoundRobin(t *testing.T) {
	b1, b2 := backend(t, "one"), backend(t, "two")
	p := start(t, []string{"-l", "127.0.0.1:0", "-b", hostPort(b1), "-b", hostPort(b2), "-s", "round_robin", "--admin", "127.0.0.1:0"})
	addr := (<-readyAgain(p))["http"]
	counts := map[string]int{}
	c := &http.Client{}
	for range 10 {
		code, body, _ := get(t, c, "http://"+addr+"/")
		if code != 200 {
			t.Fatalf("status %d", code)
		}
		counts[body]++
	}
	if counts["one"] != 5 || counts["two"] != 5 {
		t.Errorf("round robin over 10 requests = %v, want 5/5", counts)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(10 * time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
}

// readyAgain re-delivers the serving addresses start consumed.
func readyAgain(p *proc) <-chan map[string]string {
	ch := make(chan map[string]string, 1)
	for _, line := range strings.Split(p.output(), "\n") {
		if strings.Contains(line, `"msg":"serving"`) {
			ch <- parseServing(line)
			return ch
		}
	}
	p.t.Fatal("no serving line")
	return ch
}

func TestNoRouteIs404AndDeadBackendIs502(t *testing.T) {
	dead := freeAddr(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "h.yaml")
	writeFile(t, file, fmt.Sprintf(`
listeners: [{name: http, address: "127.0.0.1:0"}]
admin: {listen: "off"}
upstreams: {dead: {targets: [{address: %q}]}}
routes: [{match: {path_prefix: /dead}, upstream: dead}]
`, dead))
	p := start(t, []string{"-c", file})
	addr := (<-readyAgain(p))["http"]
	c := &http.Client{}
	if code, body, _ := get(t, c, "http://"+addr+"/elsewhere"); code != 404 || !strings.Contains(body, "no route") {
		t.Errorf("unrouted: %d %q", code, body)
	}
	if code, _, _ := get(t, c, "http://"+addr+"/dead"); code != 502 && code != 503 {
		t.Errorf("dead backend: status %d, want 502 or 503", code)
	}
}

func TestSdNotifyLifecycle(t *testing.T) {
	b := backend(t, "one")
	sock, msgs := notifySocket(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "h.yaml")
	cfg := fmt.Sprintf(`
listeners: [{name: http, address: "127.0.0.1:0"}]
admin: {listen: "127.0.0.1:0"}
upstreams: {web: {targets: [{address: %q}]}}
routes: [{match: {}, upstream: web}]
`, hostPort(b))
	writeFile(t, file, cfg)
	p := start(t, []string{"-c", file}, "NOTIFY_SOCKET="+sock)
	if ready := expectNotify(t, msgs, "READY=1", 5*time.Second); !strings.Contains(ready, "STATUS=serving: 1 listeners") {
		t.Errorf("READY without a STATUS summary: %q", ready)
	}

	// A good reload: RELOADING=1 with MONOTONIC_USEC, then READY=1.
	p.signal(syscall.SIGHUP)
	msg := expectNotify(t, msgs, "RELOADING=1", 5*time.Second)
	if !strings.Contains(msg, "MONOTONIC_USEC=") {
		t.Errorf("RELOADING without MONOTONIC_USEC: %q", msg)
	}
	checkMonotonic(t, msg)
	expectNotify(t, msgs, "READY=1", 5*time.Second)

	// A broken config: READY=1 must still follow, STATUS says why, the
	// old config keeps serving.
	writeFile(t, file, cfg+"\nbogus_key: 1\n")
	p.signal(syscall.SIGHUP)
	expectNotify(t, msgs, "RELOADING=1", 5*time.Second)
	// READY=1 and the STATUS= that says why arrive in one datagram.
	st := expectNotify(t, msgs, "READY=1", 5*time.Second)
	if !strings.Contains(st, "STATUS=reload failed") || !strings.Contains(st, "bogus_key") {
		t.Errorf("failed reload not reported in STATUS: %q", st)
	}
	addr := (<-readyAgain(p))["http"]
	if code, body, _ := get(t, &http.Client{}, "http://"+addr+"/"); code != 200 || body != "one" {
		t.Errorf("after failed reload: %d %q", code, body)
	}

	p.signal(syscall.SIGTERM)
	expectNotify(t, msgs, "STOPPING=1", 5*time.Second)
	if code := p.wait(10 * time.Second); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// checkMonotonic asserts MONOTONIC_USEC is CLOCK_MONOTONIC now-ish
// (sd_notify(3): it must be read when RELOADING=1 is sent).
func checkMonotonic(t *testing.T, msg string) {
	t.Helper()
	for _, line := range strings.Split(msg, "\n") {
		v, ok := strings.CutPrefix(line, "MONOTONIC_USEC=")
		if !ok {
			continue
		}
		usec, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("MONOTONIC_USEC=%q: %v", v, err)
		}
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
			t.Fatal(err)
		}
		now := uint64(ts.Sec)*1e6 + uint64(ts.Nsec)/1e3
		if usec > now || now-usec > 10e6 {
			t.Errorf("MONOTONIC_USEC=%d not within 10s before now=%d", usec, now)
		}
	}
}

// TestReloadUnderLoad: SIGHUP while requests flow loses none, and the new
// config is visible after each reload.
func TestReloadUnderLoad(t *testing.T) {
	b1, b2 := backend(t, "one"), backend(t, "two")
	dir := t.TempDir()
	file := filepath.Join(dir, "h.yaml")
	cfgFor := func(target string) string {
		return fmt.Sprintf(`
listeners: [{name: http, address: "127.0.0.1:0"}]
admin: {listen: "127.0.0.1:0"}
upstreams: {web: {targets: [{address: %q}]}}
routes: [{match: {}, upstream: web}]
log: {access: false}
`, target)
	}
	writeFile(t, file, cfgFor(hostPort(b1)))
	p := start(t, []string{"-c", file})
	addrs := <-readyAgain(p)
	addr := addrs["http"]

	ctx, cancel := context.WithCancel(context.Background())
	var load loadCount
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{DisableKeepAlives: i%2 == 0} // mix keep-alive and new connections
			defer tr.CloseIdleConnections()
			load.getUntil(ctx, &http.Client{Transport: tr, Timeout: 10 * time.Second}, "http://"+addr+"/")
		}()
	}
	c := &http.Client{}
	for i := range 10 {
		want := "two"
		target := hostPort(b2)
		if i%2 == 1 {
			want, target = "one", hostPort(b1)
		}
		writeFile(t, file, cfgFor(target))
		out, stderr, code := runCLI(t, []string{"reload", "--admin", addrs["admin"]})
		if code != 0 {
			t.Fatalf("reload %d: exit %d: %s %s", i, code, out, stderr)
		}
		if _, body, _ := get(t, c, "http://"+addr+"/"); body != want {
			t.Fatalf("after reload %d: served by %q, want %q", i, body, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A failing reload through the CLI exits 1 and keeps serving.
	writeFile(t, file, "listeners: [}\n")
	if _, stderr, code := runCLI(t, []string{"reload", "--admin", addrs["admin"]}); code != 1 || !strings.Contains(stderr, "h.yaml") {
		t.Errorf("broken reload: exit %d, stderr %q", code, stderr)
	}
	cancel()
	wg.Wait()
	if load.failed.Load() != 0 || load.sent.Load() < 100 {
		t.Errorf("sent %d, failed %d (first error: %v)", load.sent.Load(), load.failed.Load(), load.firstErr.Load())
	}
	t.Logf("sent %d requests across 11 reloads, failed %d", load.sent.Load(), load.failed.Load())
}

// TestGracefulShutdown: SIGTERM lets a slow in-flight request finish,
// refuses new connections, and exits 0.
func TestGracefulShutdown(t *testing.T) {
	b := backend(t, "slow")
	p := start(t, []string{"-l", "127.0.0.1:0", "-b", hostPort(b), "--admin", "off"})
	addr := (<-readyAgain(p))["http"]
	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/?sleep=1500ms")
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- result{resp.StatusCode, string(b), err}
	}()
	time.Sleep(300 * time.Millisecond) // let the request reach the backend
	p.signal(syscall.SIGTERM)
	r := <-done
	if r.err != nil || r.code != 200 || r.body != "slow" {
		t.Fatalf("in-flight request during shutdown: %+v", r)
	}
	if code := p.wait(10 * time.Second); code != 0 {
		t.Errorf("exit code %d", code)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Errorf("still accepting after exit")
	}
}

// TestSocketActivation runs handoff under the real systemd-socket-activate
// with named fds, as a .socket unit with FileDescriptorName= would.
func TestSocketActivation(t *testing.T) {
	if _, err := exec.LookPath("systemd-socket-activate"); err != nil {
		t.Skip("systemd-socket-activate not installed (make deps)")
	}
	b := backend(t, "activated")
	dir := t.TempDir()
	file := filepath.Join(dir, "h.yaml")
	writeFile(t, file, fmt.Sprintf(`
listeners: [{name: web}]
upstreams: {web: {targets: [{address: %q}]}}
routes: [{match: {}, upstream: web}]
`, hostPort(b)))
	t.Run("named fds", func(t *testing.T) {
		web, adm := freeAddr(t), freeAddr(t)
		cmd := exec.Command("systemd-socket-activate", "-l", web, "-l", adm, "--fdname=web:admin", binary, "-c", file)
		p := startCmd(t, cmd)
		waitDial(t, web)
		// The first connection is accepted by the socket systemd bound.
		if code, body, _ := get(t, &http.Client{}, "http://"+web+"/"); code != 200 || body != "activated" {
			t.Fatalf("via activated fd: %d %q\n%s", code, body, p.output())
		}
		if code, body, _ := get(t, &http.Client{}, "http://"+adm+"/healthz"); code != 200 {
			t.Fatalf("admin via activated fd: %d %q", code, body)
		}
		p.signal(syscall.SIGTERM)
		p.wait(10 * time.Second)
	})
	t.Run("unknown fd name is an error that names it", func(t *testing.T) {
		web, extra := freeAddr(t), freeAddr(t)
		cmd := exec.Command("systemd-socket-activate", "-l", web, "-l", extra, "--fdname=web:mystery", binary, "-c", file, "--admin", "off")
		p := startCmd(t, cmd)
		// systemd-socket-activate execs handoff on the first connection.
		waitDial(t, web)
		if code := p.wait(10 * time.Second); code != 1 {
			t.Errorf("exit code %d, want 1", code)
		}
		if !strings.Contains(p.outputAfterExit(5*time.Second), "mystery") {
			t.Errorf("error does not name the fd:\n%s", p.output())
		}
	})
}

func waitDial(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s", addr)
}

func TestIdleExit(t *testing.T) {
	b := backend(t, "one")
	dir := t.TempDir()
	file := filepath.Join(dir, "h.yaml")
	writeFile(t, file, fmt.Sprintf(`
listeners: [{name: http, address: "127.0.0.1:0"}]
admin: {listen: "off"}
idle_exit: 1s
upstreams: {web: {targets: [{address: %q}]}}
routes: [{match: {}, upstream: web}]
`, hostPort(b)))
	p := start(t, []string{"-c", file})
	addr := (<-readyAgain(p))["http"]
	// An open connection keeps it alive past idle_exit.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
		t.Fatal("exited while a connection was open")
	case <-time.After(2500 * time.Millisecond):
	}
	conn.Close()
	if code := p.wait(10 * time.Second); code != 0 {
		t.Errorf("idle exit code %d", code)
	}
	if !strings.Contains(p.outputAfterExit(5*time.Second), "idle") {
		t.Errorf("idle exit not logged")
	}
}
