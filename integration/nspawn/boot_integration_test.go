//go:build integration

package nspawn

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/handofftest"
)

// image returns the cached bookworm root, building it if needed.
func image(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("systemd-nspawn needs root")
	}
	if v := os.Getenv("HANDOFF_IT_IMAGE"); v != "" {
		return v
	}
	out, err := exec.Command("../rootfs.sh", "bookworm").Output()
	if err != nil {
		t.Fatalf("rootfs.sh: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func TestBootRunClose(t *testing.T) {
	img := image(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	work := t.TempDir()
	m, err := Boot(ctx, Options{Image: img, WorkDir: work, Logger: slog.New(slog.NewTextHandler(handofftest.Writer(t), nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })

	if out, err := m.Run(ctx, "systemctl", "is-system-running"); err != nil || out != "running" {
		t.Errorf("is-system-running = %q, %v", out, err)
	}
	if err := m.WriteFile("/etc/handoff-it-probe", []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := m.Run(ctx, "cat", "/etc/handoff-it-probe"); err != nil || out != "hello" {
		t.Errorf("file written from the host reads %q, %v inside", out, err)
	}
	// The private network namespace has a loopback that is up, and
	// nothing else.
	out, err := m.NetCommand(ctx, "cat", "/proc/net/dev").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(out), ":") != 1 || !strings.Contains(string(out), "lo:") {
		t.Errorf("container has interfaces other than lo:\n%s", out)
	}
	props, err := m.Show(ctx, "systemd-journald.service", "ActiveState", "SubState")
	if err != nil || props["ActiveState"] != "active" {
		t.Errorf("journald %v, %v", props, err)
	}

	leader, dir := m.Leader, m.Dir
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(leader)); err == nil {
		t.Errorf("container init %d still alive after Close", leader)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("machine dir %s still there after Close", dir)
	}
}

func TestReapStaleKillsOrphanedContainer(t *testing.T) {
	img := image(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	work := t.TempDir()
	m, err := Boot(ctx, Options{Image: img, WorkDir: work})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	// Pretend the owner died: rewrite the owner file with a dead pid.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	if err := writeOwner(m.Dir, Owner{Pid: dead.Process.Pid, Start: 1, Leader: m.Leader, LeaderStart: m.leaderStart}); err != nil {
		t.Fatal(err)
	}
	n, err := ReapStale(work, nil)
	if err != nil || n != 1 {
		t.Fatalf("ReapStale = %d, %v; want 1 removed", n, err)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(m.Leader)); err == nil {
		t.Errorf("orphaned container %d still alive", m.Leader)
	}
}
