package statetest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Redis is a redis-server the test started on a loopback port.
type Redis struct {
	// Addr is host:port.
	Addr string
	t    testing.TB
	dir  string
	args []string
	proc *os.Process
	// exited delivers the running server's exit; nil when not running.
	exited chan error
}

// RequireRedis skips the test when redis-server is not installed.
func RequireRedis(t testing.TB) {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (make deps installs the Debian package redis-server): %v", bin, err)
		}
	}
}

// StartRedis starts a redis-server without persistence on a free loopback
// port, in a temporary directory, and stops it when the test ends.
func StartRedis(t testing.TB, extraArgs ...string) *Redis {
	t.Helper()
	RequireRedis(t)
	dir := t.TempDir()
	var last error
	for range 5 { // the free port may be taken by someone else before redis binds it
		port := freePort(t, 0)
		r := &Redis{t: t, dir: dir, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
		r.args = append([]string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port),
			"--save", "", "--appendonly", "no", "--dir", dir}, extraArgs...)
		if last = r.start(); last == nil {
			t.Cleanup(r.Stop)
			return r
		}
	}
	t.Fatalf("start redis-server: %v", last)
	return nil
}

// Stop kills the server (SIGKILL: an outage, not a clean shutdown) and
// waits for it. Stopping a stopped server does nothing.
func (r *Redis) Stop() {
	if r.proc == nil {
		return
	}
	_ = r.proc.Kill()
	<-r.exited
	r.proc, r.exited = nil, nil
}

// Restart starts the server again on the same port, empty.
func (r *Redis) Restart() {
	r.t.Helper()
	r.Stop()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := r.start()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("restart redis-server on %s: %v", r.Addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *Redis) start() error {
	return r.startCmd("redis-server", r.args...)
}

func (r *Redis) startCmd(name string, args ...string) error {
	logPath := filepath.Join(r.dir, "redis-"+strings.ReplaceAll(r.Addr, ":", "-")+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		// A server with requirepass answers NOAUTH: it is up all the same.
		if _, err := Command(r.Addr, "PING"); err == nil || strings.Contains(err.Error(), "NOAUTH") {
			r.proc, r.exited = cmd.Process, exited
			return nil
		}
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("%s exited (%v): %s", name, err, tail(b))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("%s on %s not ready after 5s: %s", name, r.Addr, tail(b))
		}
	}
}

func tail(b []byte) string {
	const n = 2000
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// Ping sends PING to a Redis (or Sentinel) at addr and reports an error
// unless it answers +PONG within a second.
func Ping(addr string) error {
	_, err := Command(addr, "PING")
	return err
}

// Command sends one inline command to addr and returns the first line of
// the reply; an error reply is an error.
func Command(addr string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if strings.HasPrefix(line, "-") {
		return "", fmt.Errorf("redis %s: %s", args[0], line[1:])
	}
	return line, nil
}

// freePort returns a loopback TCP port that was free a moment ago; with
// busOffset > 0, port+busOffset (a cluster bus port) was free too.
func freePort(t testing.TB, busOffset int) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if busOffset == 0 {
			return port
		}
		if port+busOffset > 65535 {
			continue
		}
		if l2, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+busOffset))); err == nil {
			_ = l2.Close()
			return port
		}
	}
	t.Fatalf("no free port with a free bus port %d above it", busOffset)
	return 0
}
