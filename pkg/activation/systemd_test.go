package activation

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/handofftest"
)

const socketActivate = "/usr/bin/systemd-socket-activate"

// raceQuickExit spares each child the race detector's default one-second
// sleep at exit.
const raceQuickExit = "GORACE=atexit_sleep_ms=0"

// child is a re-executed test binary in helper mode (see runHelper),
// possibly behind systemd-socket-activate.
type child struct {
	cmd    *exec.Cmd
	stdout *output
	stderr *output
	done   chan struct{}
	err    error // cmd.Wait's, valid after done
}

// output collects and logs a child's stream line by line and lets a test
// wait for a line to appear.
type output struct {
	t    *testing.T
	name string

	mu      sync.Mutex
	partial []byte
	all     strings.Builder
	changed chan struct{} // closed and replaced on every line
}

func newOutput(t *testing.T, name string) *output {
	return &output{t: t, name: name, changed: make(chan struct{})}
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.partial = append(o.partial, p...)
	for {
		i := bytes.IndexByte(o.partial, '\n')
		if i < 0 {
			break
		}
		line := string(o.partial[:i])
		o.partial = o.partial[i+1:]
		o.all.WriteString(line + "\n")
		o.t.Log(o.name + ": " + line)
		close(o.changed)
		o.changed = make(chan struct{})
	}
	return len(p), nil
}

func (o *output) snapshot() (string, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.all.String(), o.changed
}

// startChild runs the test binary in helper mode with the environment env,
// prefixed by prefix (e.g. systemd-socket-activate and its flags). It is
// killed and reaped when the test ends.
func startChild(t *testing.T, prefix []string, env []string, extra []*os.File) *child {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := append(append([]string(nil), prefix...), self, "-test.run=^$")
	c := &child{
		stdout: newOutput(t, "child stdout"),
		stderr: newOutput(t, "child stderr"),
		done:   make(chan struct{}),
	}
	c.cmd = exec.Command(args[0], args[1:]...)
	c.cmd.Env = append(env, helperEnv+"=1", raceQuickExit)
	c.cmd.Stdout = c.stdout
	c.cmd.Stderr = c.stderr
	c.cmd.ExtraFiles = extra
	// Bound Wait even if something else holds the output pipes open.
	c.cmd.WaitDelay = 5 * time.Second
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		<-c.done
	})
	return c
}

// waitFor waits until ok holds for everything o has collected and returns
// that text. It reports false when the child exited first.
func (c *child) waitFor(t *testing.T, o *output, ok func(all string) bool) (string, bool) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		all, changed := o.snapshot()
		if ok(all) {
			return all, true
		}
		select {
		case <-changed:
		case <-c.done:
			all, _ := o.snapshot()
			return all, ok(all)
		case <-timeout:
			t.Fatalf("timed out waiting for the child; %s so far:\n%s", o.name, all)
		}
	}
}

// waitListening waits until systemd-socket-activate reported n sockets. It
// reports false, with the tool's output, when the tool exited first.
func (c *child) waitListening(t *testing.T, n int) (bool, string) {
	t.Helper()
	all, ok := c.waitFor(t, c.stderr, func(all string) bool { return strings.Count(all, "Listening on ") >= n })
	return ok, all
}

// waitForLine waits for a stdout line starting with prefix and returns it.
func (c *child) waitForLine(t *testing.T, prefix string) string {
	t.Helper()
	var line string
	_, ok := c.waitFor(t, c.stdout, func(all string) bool {
		for l := range strings.Lines(all) {
			if strings.HasPrefix(l, prefix) {
				line = strings.TrimSpace(l)
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("child exited without printing %q", prefix)
	}
	return line
}

// result waits for the child to exit and returns its exit code and stdout.
func (c *child) result(t *testing.T) (int, string) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		t.Fatal("child did not exit")
	}
	stdout, _ := c.stdout.snapshot()
	code := 0
	var ee *exec.ExitError
	if errors.As(c.err, &ee) {
		code = ee.ExitCode()
	} else if c.err != nil {
		t.Fatal(c.err)
	}
	return code, stdout
}

// readName dials addr and returns the line the helper writes.
func readName(t *testing.T, network, addr string) string {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 10*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read from %s: %v", addr, err)
	}
	return strings.TrimSpace(line)
}

// freePort returns a port that was free a moment ago. The caller retries
// when it turns out to be taken.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// setenvFlags passes kv to the program systemd-socket-activate starts:
// the tool gives it a fresh environment with only LISTEN_* and -E entries.
func setenvFlags(kv ...string) []string {
	out := []string{"-E", helperEnv + "=1", "-E", raceQuickExit}
	for _, s := range kv {
		out = append(out, "-E", s)
	}
	return out
}

func requireSocketActivate(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(socketActivate); err != nil {
		t.Skipf("%s not installed: %v", socketActivate, err)
	}
}

// activateTCP starts systemd-socket-activate with a TCP socket on a fresh
// port first and the given further flags (which must include setenvFlags), retrying when the port was
// taken meanwhile. It returns the child and the TCP address.
func activateTCP(t *testing.T, sockets int, flags []string) (*child, string) {
	t.Helper()
	for attempt := range 5 {
		addr := "127.0.0.1:" + freePort(t)
		prefix := append([]string{socketActivate, "-l", addr}, flags...)
		c := startChild(t, prefix, os.Environ(), nil)
		ok, out := c.waitListening(t, sockets)
		if ok {
			return c, addr
		}
		if !strings.Contains(out, "in use") {
			t.Fatalf("systemd-socket-activate failed:\n%s", out)
		}
		t.Logf("attempt %d: port collision, retrying", attempt)
	}
	t.Fatal("no free port after 5 attempts")
	return nil, ""
}

// TestSystemdSocketActivate passes named sockets through the real
// systemd-socket-activate(1), which sets LISTEN_PID/LISTEN_FDS/
// LISTEN_FDNAMES exactly as systemd does for a socket unit.
func TestSystemdSocketActivate(t *testing.T) {
	requireSocketActivate(t)
	sock := filepath.Join(t.TempDir(), "admin.sock")
	flags := append([]string{"-l", sock, "--fdname=http:admin"}, setenvFlags(helperWantsEnv+"=http=127.0.0.1:1,admin=,metrics=127.0.0.1:0")...)
	c, addr := activateTCP(t, 2, flags)
	// Without --accept the tool execs the program on the first
	// connection, which then waits in the backlog for the helper.
	if got := readName(t, "tcp", addr); got != "http" {
		t.Errorf("tcp socket served %q, want http", got)
	}
	if got := readName(t, "unix", sock); got != "admin" {
		t.Errorf("unix socket served %q, want admin", got)
	}
	// The helper serves one connection per listener; find metrics.
	out := c.waitForLine(t, "LISTENING metrics ")
	metrics := strings.Fields(out)[3]
	if got := readName(t, "tcp", metrics); got != "metrics" {
		t.Errorf("self-bound listener served %q", got)
	}
	code, stdout := c.result(t)
	if code != 0 {
		t.Fatalf("helper exited %d", code)
	}
	for _, want := range []string{
		`ENV LISTEN_PID="" LISTEN_FDS="" LISTEN_FDNAMES=""`,
		"LISTENING http passed=true " + addr,
		"LISTENING admin passed=true " + sock,
		"LISTENING metrics passed=false 127.0.0.1:",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("helper output lacks %q", want)
		}
	}
}

func TestSystemdSocketActivateUnclaimed(t *testing.T) {
	requireSocketActivate(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")
	flags := append([]string{"-l", a, "-l", b, "--fdname=http:admin:extra"}, setenvFlags(helperWantsEnv+"=http=")...)
	c, addr := activateTCP(t, 3, flags)
	// Trigger the exec; the helper fails before accepting.
	if conn, err := net.Dial("tcp", addr); err == nil {
		defer conn.Close()
	}
	code, stdout := c.result(t)
	if code != 3 {
		t.Fatalf("helper exited %d, want 3 (Listen error)", code)
	}
	for _, want := range []string{"unclaimed=true", "systemd passed fd(s) named admin, extra that no listener is configured for"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("helper output lacks %q", want)
		}
	}
}

func TestSystemdSocketActivateDatagram(t *testing.T) {
	requireSocketActivate(t)
	sock := filepath.Join(t.TempDir(), "dgram.sock")
	prefix := append([]string{socketActivate, "--datagram", "-l", sock, "--fdname=http"}, setenvFlags(helperWantsEnv+"=http=")...)
	c := startChild(t, prefix, os.Environ(), nil)
	if ok, out := c.waitListening(t, 1); !ok {
		t.Fatalf("systemd-socket-activate failed:\n%s", out)
	}
	// A datagram triggers the exec.
	conn, err := net.Dial("unixgram", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("wake up"))
	code, stdout := c.result(t)
	if code != 3 {
		t.Fatalf("helper exited %d, want 3", code)
	}
	for _, want := range []string{"notlistener=true", "named http", "SOCK_DGRAM"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("helper output lacks %q", want)
		}
	}
}

// TestSystemdSocketActivateQuickMode: without --fdname the fd is named
// "unknown", and SingleUnnamed maps it to http.
func TestSystemdSocketActivateQuickMode(t *testing.T) {
	requireSocketActivate(t)
	sock := filepath.Join(t.TempDir(), "quick.sock")
	prefix := append([]string{socketActivate, "-l", sock}, setenvFlags(helperWantsEnv+"=http=", helperSingleEnv+"=http")...)
	c := startChild(t, prefix, os.Environ(), nil)
	if ok, out := c.waitListening(t, 1); !ok {
		t.Fatalf("systemd-socket-activate failed:\n%s", out)
	}
	if got := readName(t, "unix", sock); got != "http" {
		t.Errorf("served %q, want http", got)
	}
	if code, stdout := c.result(t); code != 0 || !strings.Contains(stdout, "LISTENING http passed=true") {
		t.Errorf("helper exited %d", code)
	}
}

// TestUpgradeChild hands listeners to a child process the way an upgrade
// does: Set.Files as ExtraFiles, ChildEnviron for the variables.
func TestUpgradeChild(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "admin.sock")
	set, err := Listen(t.Context(), Options{Env: newFakeEnv().env(4242, 1), Logger: handofftest.Logger(t)}, []Want{
		{Name: "http", Address: "127.0.0.1:0"},
		{Name: "admin", Address: "unix:" + sock},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	files, err := set.Files()
	if err != nil {
		t.Fatal(err)
	}
	extra := make([]*os.File, len(files))
	for i, f := range files {
		extra[i] = f.File
		defer f.File.Close()
	}
	env, err := ChildEnviron(os.Environ(), os.Getpid(), files)
	if err != nil {
		t.Fatal(err)
	}
	env = append(env, helperWantsEnv+"=http=,admin=")
	c := startChild(t, nil, env, extra)
	// This process never accepts, so the child must.
	if got := readName(t, "tcp", set.Listener("http").Addr().String()); got != "http" {
		t.Errorf("http served %q", got)
	}
	if got := readName(t, "unix", sock); got != "admin" {
		t.Errorf("admin served %q", got)
	}
	code, stdout := c.result(t)
	if code != 0 {
		t.Fatalf("child exited %d", code)
	}
	for _, want := range []string{
		`HANDOFF_LISTEN_PPID=""`,
		"LISTENING http passed=true",
		"LISTENING admin passed=true",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("child output lacks %q", want)
		}
	}
	// The parent's listeners still work after the child exited.
	roundTrip(t, set.Listener("http"), "tcp", set.Listener("http").Addr().String())
	roundTrip(t, set.Listener("admin"), "unix", sock)
}
