package upgrade

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/handoff-proxy/handoff/pkg/activation"
)

func TestMain(m *testing.M) {
	if os.Getenv("UPGRADE_TEST_CHILD") != "" {
		child()
		return
	}
	goleak.VerifyTestMain(m)
}

// child is the replacement process: it takes the listener by name the way
// handoff does, reports readiness and serves one connection.
func child() {
	set, err := activation.Listen(context.Background(), activation.Options{}, []activation.Want{{Name: "http"}})
	if err != nil {
		os.Exit(4)
	}
	if os.Getenv("UPGRADE_TEST_CHILD") == "never-ready" {
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	if err := SignalReady(os.Getenv); err != nil {
		os.Exit(5)
	}
	c, err := set.Listener("http").Accept()
	if err != nil {
		os.Exit(6)
	}
	c.Write([]byte("child\n"))
	c.Close()
	os.Exit(0)
}

func listenerFiles(t *testing.T) (net.Listener, []activation.NamedFile) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return ln, []activation.NamedFile{{Name: "http", File: f}}
}

func TestStart(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "broken")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		mode    string
		timeout time.Duration
		wantErr error
	}{
		{name: "ready child takes the listener", path: self, mode: "ready"},
		{name: "child that exits is not ready", path: script, wantErr: ErrNotReady},
		{name: "child that never reports times out", path: self, mode: "never-ready", timeout: 500 * time.Millisecond, wantErr: ErrNotReady},
		{name: "missing binary", path: filepath.Join(t.TempDir(), "absent"), wantErr: os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, files := listenerFiles(t)
			env := append(os.Environ(), "UPGRADE_TEST_CHILD="+tt.mode)
			start := time.Now()
			pid, err := Start(context.Background(), Options{Path: tt.path, Environ: env, Files: files, ReadyTimeout: tt.timeout})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if time.Since(start) > 10*time.Second {
					t.Errorf("took %s to notice", time.Since(start))
				}
				return
			}
			if err != nil || pid <= 0 {
				t.Fatalf("Start: %d %v", pid, err)
			}
			// Our copy closed: only the child accepts now.
			ln.Close()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			buf := make([]byte, 6)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Read(buf); err != nil || string(buf) != "child\n" {
				t.Fatalf("read %q %v", buf, err)
			}
		})
	}
}

// TestBinaryReplaced runs a copy of sleep(1), then renames another file
// over that copy the way dpkg installs a new binary.
func TestBinaryReplaced(t *testing.T) {
	if replaced, err := BinaryReplaced(0); err != nil || replaced {
		t.Fatalf("BinaryReplaced(self) = %v, %v; want false, nil", replaced, err)
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep(1)")
	}
	b, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "sleep")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	// Wait until the child has exec'd the copy (before that its exe is
	// this test binary).
	deadline := time.Now().Add(5 * time.Second)
	for {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid))
		if exe == bin || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if replaced, err := BinaryReplaced(cmd.Process.Pid); err != nil || replaced {
		t.Fatalf("before replacing: %v, %v; want false, nil", replaced, err)
	}
	next := filepath.Join(dir, "next")
	if err := os.WriteFile(next, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, bin); err != nil {
		t.Fatal(err)
	}
	if replaced, err := BinaryReplaced(cmd.Process.Pid); err != nil || !replaced {
		t.Fatalf("after replacing: %v, %v; want true, nil", replaced, err)
	}
	if _, err := BinaryReplaced(1 << 30); err == nil {
		t.Errorf("BinaryReplaced of a pid that does not exist: no error")
	}
}
