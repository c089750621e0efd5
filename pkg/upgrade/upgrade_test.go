package upgrade

import (
	"context"
	"errors"
	"net"
	"os"
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
