package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/config"
)

func TestIsLocalError(t *testing.T) {
	dial := func(errno syscall.Errno, call string) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError(call, errno)}
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{name: "emfile", err: dial(syscall.EMFILE, "socket"), want: true},
		{name: "enfile", err: dial(syscall.ENFILE, "socket"), want: true},
		{name: "enobufs", err: dial(syscall.ENOBUFS, "connect"), want: true},
		{name: "enomem", err: dial(syscall.ENOMEM, "socket"), want: true},
		{name: "ephemeral ports", err: dial(syscall.EADDRNOTAVAIL, "connect"), want: true},
		{name: "refused", err: dial(syscall.ECONNREFUSED, "connect"), want: false},
		{name: "reset", err: errors.New("connection reset"), want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isLocalError(tt.err); got != tt.want {
				t.Errorf("isLocalError = %v, want %v", got, tt.want)
			}
			if tt.want && statusFor(&localError{err: tt.err}) != http.StatusServiceUnavailable {
				t.Errorf("status is not 503")
			}
		})
	}
}

const emfileChildEnv = "HANDOFF_TEST_EMFILE_CHILD"

// TestLocalResourceError pins the measured fault where handoff blamed its
// own "too many open files" on healthy targets and ejected them. It runs
// itself in a subprocess that lowers RLIMIT_NOFILE to the descriptors it
// has open, so the proxy's dial really fails with EMFILE: the client gets
// 503 and Health hears nothing.
func TestLocalResourceError(t *testing.T) {
	if os.Getenv(emfileChildEnv) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLocalResourceError$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), emfileChildEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	backend := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// No keep-alive, so the next request must dial.
		w.Header().Set("Connection", "close")
		io.WriteString(w, "ok")
	}))
	h, rh := newProxy(t, config.Upstream{}, []string{backend.Listener.Addr().String()}, nil)
	front := httptest.NewServer(h)
	t.Cleanup(front.Close)
	c, err := net.Dial("tcp", front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	get := func() int {
		t.Helper()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	if code := get(); code != 200 {
		t.Fatalf("first request: %d", code)
	}
	waitFor(t, "the upstream connection to close", func() bool { return h.pool.Targets()[0].InFlight() == 0 })
	time.Sleep(50 * time.Millisecond) // let both ends of the upstream connection close

	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	highest := 0
	for _, e := range es {
		if n, err := strconv.Atoi(e.Name()); err == nil && n > highest {
			highest = n
		}
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = uint64(highest + 1)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	var fillers []*os.File
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			break
		}
		fillers = append(fillers, f)
	}
	code := get()
	for _, f := range fillers {
		f.Close()
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	if code != http.StatusServiceUnavailable {
		t.Errorf("out of fds: %d, want 503", code)
	}
	if got := rh.got(); got != "0 success OK" {
		t.Errorf("health heard %q, want only the first request's success", got)
	}
	if code := get(); code != 200 {
		t.Errorf("after the fds came back: %d, want 200", code)
	}
}
