package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// copyBinary puts a copy of handoff at a path the test may replace.
func copyBinary(t *testing.T, dst string) {
	t.Helper()
	b, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	// Rename over the old file, as dpkg does, so a running process keeps
	// its (now deleted) inode.
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

// TestUpgradeUnderLoad replaces the binary on disk and upgrades: the new
// process takes over the listening socket, the old one drains and exits 0,
// and no request fails. A replacement that cannot start leaves the old
// process serving.
func TestUpgradeUnderLoad(t *testing.T) {
	b := backend(t, "one")
	dir := t.TempDir()
	bin := filepath.Join(dir, "handoff")
	copyBinary(t, bin)
	sock, msgs := notifySocket(t)

	// The admin listener is needed by `handoff upgrade`; give it a fixed
	// free port so the new process can be reached at the same address.
	p := startCmd(t, execCommand(bin, "-l", "127.0.0.1:0", "-b", hostPort(b), "--admin", freeAddr(t), "--log-format", "json"), "NOTIFY_SOCKET="+sock)
	select {
	case <-p.ready:
	case <-time.After(15 * time.Second):
		t.Fatalf("not serving\n%s", p.output())
	}
	addrs := <-readyAgain(p)
	expectNotify(t, msgs, "READY=1", 5*time.Second)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var load loadCount
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{DisableKeepAlives: i%2 == 0}
			defer tr.CloseIdleConnections()
			load.getUntil(ctx, &http.Client{Transport: tr, Timeout: 10 * time.Second}, "http://"+addrs["http"]+"/")
		}()
	}
	time.Sleep(300 * time.Millisecond)

	// 1. A broken binary on disk: the upgrade fails, the old one serves.
	broken := filepath.Join(dir, "broken")
	if err := os.WriteFile(broken, []byte("#!/bin/sh\necho broken >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(broken, bin); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := runCLI(t, []string{"upgrade", "--admin", addrs["admin"]})
	if code != 1 || !strings.Contains(stderr, "upgrade failed") {
		t.Fatalf("upgrade to a broken binary: exit %d, %s %s", code, out, stderr)
	}
	select {
	case <-p.exited:
		t.Fatal("old process exited after a failed upgrade")
	default:
	}

	// 2. The real binary again: upgrade by `handoff reload PID`, which
	// notices the replaced binary.
	copyBinary(t, bin)
	out, stderr, code = runCLI(t, []string{"reload", "--admin", addrs["admin"], strconv.Itoa(p.cmd.Process.Pid)})
	if code != 0 || !strings.Contains(out, "upgraded: new process") {
		t.Fatalf("upgrade: exit %d, %s %s", code, out, stderr)
	}
	newPID, _ := strconv.Atoi(strings.Fields(strings.SplitN(out, "new process ", 2)[1])[0])
	defer syscall.Kill(newPID, syscall.SIGKILL)
	// The new process knows it was started by an upgrade (the dashboard's
	// upgrade count).
	eventually(t, 10*time.Second, "status shows the upgrade", func() (bool, string) {
		out, stderr, _ := runCLI(t, []string{"status", "--admin", addrs["admin"]})
		return strings.Contains(out, "started by upgrade #1"), out + stderr
	})
	msg := expectNotify(t, msgs, "MAINPID=", 10*time.Second)
	if !strings.Contains(msg, "READY=1") || !strings.Contains(msg, "MAINPID="+strconv.Itoa(newPID)) {
		t.Errorf("new process announced %q, want READY=1 and MAINPID=%d", msg, newPID)
	}
	if code := p.wait(15 * time.Second); code != 0 {
		t.Errorf("old process exit code %d", code)
	}
	if strings.Contains(p.output(), "STOPPING=1") {
		t.Errorf("old process sent STOPPING=1 after handing over")
	}
	time.Sleep(500 * time.Millisecond) // load against the new process alone
	cancel()
	wg.Wait()
	if load.failed.Load() != 0 || load.sent.Load() < 50 {
		t.Errorf("sent %d, failed %d (first error: %v)", load.sent.Load(), load.failed.Load(), load.firstErr.Load())
	}
	t.Logf("sent %d requests across a failed and a successful upgrade, failed %d", load.sent.Load(), load.failed.Load())

	// The new process serves and stops cleanly.
	if code, body, _ := get(t, &http.Client{}, "http://"+addrs["http"]+"/"); code != 200 || body != "one" {
		t.Errorf("new process: %d %q", code, body)
	}
	syscall.Kill(newPID, syscall.SIGTERM)
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(newPID, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBinaryReplacedAsksTheProcess pins the fix for `systemctl reload`
// never upgrading on systemd: ExecReload= (PrivateUsers=yes) may not read
// the main process's /proc/PID/exe, and must then ask the process through
// GET /api/v1/upgrade. A pid that does not exist stands in for the link
// that cannot be read.
func TestBinaryReplacedAsksTheProcess(t *testing.T) {
	const noSuchPID = 1 << 30
	tests := []struct {
		name   string
		answer string // body of GET /api/v1/upgrade; "" means no admin API
		want   bool
	}{
		{name: "replaced", answer: `{"supported":true,"binary_replaced":true}`, want: true},
		{name: "not replaced", answer: `{"supported":true,"binary_replaced":false}`},
		{name: "cannot upgrade", answer: `{"supported":false,"binary_replaced":true}`},
		{name: "old server without the endpoint", answer: "method not allowed"},
		{name: "admin API off"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := "off"
			if tt.answer != "" {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.Method != http.MethodGet || r.URL.Path != "/api/v1/upgrade" {
						t.Errorf("%s %s, want GET /api/v1/upgrade", r.Method, r.URL.Path)
					}
					io.WriteString(w, tt.answer)
				}))
				defer srv.Close()
				addr = strings.TrimPrefix(srv.URL, "http://")
			}
			if got := binaryReplaced(context.Background(), addr, noSuchPID); got != tt.want {
				t.Errorf("binaryReplaced = %v, want %v", got, tt.want)
			}
		})
	}
}
