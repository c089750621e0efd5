package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// binary is the handoff binary built once for the process-level tests:
// signals, exit codes and sd_notify are only real in a real process.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "handoff-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "handoff")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build handoff: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// proc is a running handoff process.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	mu     sync.Mutex
	lines  []string
	ready  chan map[string]string // listener name -> address, from the "serving" log line
	exited chan error
	state  *os.ProcessState
	// scanned is closed once all of stdout was read (every holder of the
	// pipe is gone).
	scanned chan struct{}
}

// start runs handoff with args and env (added to a minimal environment)
// and waits until it logs that it is serving.
func start(t *testing.T, args []string, env ...string) *proc {
	t.Helper()
	p := startNoWait(t, args, env...)
	select {
	case <-p.ready:
	case err := <-p.exited:
		t.Fatalf("handoff exited before serving: %v\n%s", err, p.output())
	case <-time.After(15 * time.Second):
		t.Fatalf("handoff did not start serving\n%s", p.output())
	}
	return p
}

func startNoWait(t *testing.T, args []string, env ...string) *proc {
	t.Helper()
	return startCmd(t, exec.Command(binary, args...), env...)
}

func startCmd(t *testing.T, cmd *exec.Cmd, env ...string) *proc {
	t.Helper()
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	p := &proc{t: t, cmd: cmd, ready: make(chan map[string]string, 1), exited: make(chan error, 1)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	scanDone := make(chan struct{})
	p.scanned = scanDone
	go func() {
		defer close(scanDone)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.lines = append(p.lines, line)
			p.mu.Unlock()
			if !sent && strings.Contains(line, `"msg":"serving"`) {
				p.ready <- parseServing(line)
				sent = true
			}
		}
	}()
	// Wait on the process itself, not on its stdout: after an upgrade the
	// new process inherits stdout and keeps the pipe open.
	go func() {
		st, err := cmd.Process.Wait()
		p.mu.Lock()
		p.state = st
		p.mu.Unlock()
		p.exited <- err
	}()
	t.Cleanup(func() {
		select {
		case err := <-p.exited:
			p.exited <- err
		default:
			_ = cmd.Process.Kill()
		}
		// Reading stdout ends once every holder of the pipe is gone.
		select {
		case <-scanDone:
		case <-time.After(5 * time.Second):
		}
		if t.Failed() {
			t.Logf("handoff output:\n%s", p.output())
		}
	})
	return p
}

func parseServing(line string) map[string]string {
	var rec struct {
		Listeners []string `json:"listeners"`
		Admin     string   `json:"admin"`
	}
	_ = json.Unmarshal([]byte(line), &rec)
	out := map[string]string{"admin": rec.Admin}
	for _, l := range rec.Listeners {
		// name=proto://addr
		name, rest, _ := strings.Cut(l, "=")
		_, addr, _ := strings.Cut(rest, "://")
		out[name] = addr
	}
	return out
}

// outputAfterExit is the whole output of a process that exited: it waits
// (up to d) until its stdout was read to the end, which may come after
// the exit is seen.
func (p *proc) outputAfterExit(d time.Duration) string {
	select {
	case <-p.scanned:
	case <-time.After(d):
	}
	return p.output()
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal: %v", err)
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(d time.Duration) int {
	p.t.Helper()
	select {
	case err := <-p.exited:
		p.exited <- err // later waits see it too
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.state.ExitCode()
	case <-time.After(d):
		p.t.Fatalf("handoff did not exit within %s\n%s", d, p.output())
		return -1
	}
}

// runCLI runs handoff to completion and returns stdout, stderr, exit code.
func runCLI(t *testing.T, args []string, env ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run handoff: %v", err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

// backend is a real HTTP origin that answers with its name.
func backend(t *testing.T, name string) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		if d := r.URL.Query().Get("sleep"); d != "" {
			dur, _ := time.ParseDuration(d)
			select {
			case <-time.After(dur):
			case <-r.Context().Done():
				return
			}
		}
		io.WriteString(w, name)
	}))
	t.Cleanup(s.Close)
	return s
}

func hostPort(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

// freeAddr returns a loopback address that was free a moment ago; for the
// few tests that must name an address before the process starts.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func get(t *testing.T, c *http.Client, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// notifySocket listens on a unixgram socket like systemd's NOTIFY_SOCKET
// and delivers each datagram.
func notifySocket(t *testing.T) (string, <-chan string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan string, 256)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				return
			}
			select {
			case ch <- string(buf[:n]):
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); conn.Close(); <-done })
	return path, ch
}

// expectNotify reads datagrams until one contains want, failing after d.
func expectNotify(t *testing.T, ch <-chan string, want string, d time.Duration) string {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case msg := <-ch:
			if strings.Contains(msg, want) {
				return msg
			}
		case <-deadline:
			t.Fatalf("no sd_notify message with %q within %s", want, d)
			return ""
		}
	}
}

func execCommand(path string, args ...string) *exec.Cmd { return exec.Command(path, args...) }

// loadCount counts the requests a load loop sent and those that failed
// (an error or a status other than 200), keeping the first failure.
type loadCount struct {
	sent, failed atomic.Int64
	firstErr     atomic.Value
}

// getUntil sends GETs to url with c, one after the other, until ctx ends.
func (l *loadCount) getUntil(ctx context.Context, c *http.Client, url string) {
	for ctx.Err() == nil {
		l.sent.Add(1)
		resp, err := c.Get(url)
		if err != nil {
			l.fail(err.Error())
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			l.fail(resp.Status)
		}
	}
}

func (l *loadCount) fail(what string) {
	l.failed.Add(1)
	l.firstErr.CompareAndSwap(nil, what)
}
