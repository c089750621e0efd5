// Package nspawn boots throwaway containers with a real systemd as PID 1
// (systemd-nspawn(1)) from a cached, read-only root tree, runs commands in
// them and removes them again, also after a crashed run.
//
// Each Machine gets a fresh overlay (or copy) of the image, its own network
// namespace with only a loopback (--private-network: nothing touches the
// host's network), and is addressed through its init's host pid with
// nsenter(1). It knows nothing of handoff; the integration tests build on
// it.
package nspawn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultWorkDir holds the per-machine directories when Options.WorkDir is
// empty. /var/tmp rather than /tmp: the overlay's upper layer must live on
// a file system that supports it (tmpfs does, but can be small).
const DefaultWorkDir = "/var/tmp/handoff-it"

// containerPath is $PATH for commands run inside a machine.
const containerPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Options configures Boot.
type Options struct {
	// Image is the root tree to boot, never modified. Required.
	Image string
	// WorkDir holds the machine's directory (overlay layers, console
	// log). Empty means DefaultWorkDir.
	WorkDir string
	// BootTimeout bounds the wait for `systemctl is-system-running` to
	// report running or degraded. Zero means 60s.
	BootTimeout time.Duration
	// Logger receives progress and failures. Nil means discard.
	Logger *slog.Logger
}

// Machine is one booted container.
type Machine struct {
	// Dir is the machine's directory on the host.
	Dir string
	// Root is the host path of the container's / : files written below
	// it appear inside the container.
	Root string
	// Leader is the host pid of the container's PID 1 (systemd).
	Leader int

	log         *slog.Logger
	nspawn      *exec.Cmd
	nspawnDone  chan struct{}
	overlay     bool
	leaderStart uint64
	closeOnce   sync.Once
	closeErr    error
}

// Boot prepares a fresh tree from opts.Image, boots it with
// systemd-nspawn and waits until its systemd reports the system running.
// On error nothing is left behind.
func Boot(ctx context.Context, opts Options) (_ *Machine, err error) {
	if opts.Image == "" {
		return nil, errors.New("nspawn: no image")
	}
	if _, err := os.Stat(filepath.Join(opts.Image, "usr/lib/systemd/systemd")); err != nil {
		return nil, fmt.Errorf("nspawn: image %s has no systemd: %w", opts.Image, err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	workDir := opts.WorkDir
	if workDir == "" {
		workDir = DefaultWorkDir
	}
	bootTimeout := opts.BootTimeout
	if bootTimeout <= 0 {
		bootTimeout = 60 * time.Second
	}
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return nil, fmt.Errorf("nspawn: create work dir: %w", err)
	}
	dir, err := os.MkdirTemp(workDir, "m-")
	if err != nil {
		return nil, fmt.Errorf("nspawn: create machine dir: %w", err)
	}
	m := &Machine{Dir: dir, Root: filepath.Join(dir, "root"), log: log.With("machine", filepath.Base(dir))}
	defer func() {
		if err != nil {
			if cerr := m.Close(); cerr != nil {
				m.log.Warn("clean up after failed boot", "error", cerr)
			}
		}
	}()
	self, err := ProcStartTime(os.Getpid())
	if err != nil {
		return nil, err
	}
	// Written first, so that ReapStale can remove this directory if we
	// die at any later point.
	if err := writeOwner(dir, Owner{Pid: os.Getpid(), Start: self}); err != nil {
		return nil, err
	}
	if err := m.prepareRoot(opts.Image); err != nil {
		return nil, err
	}
	if err := m.start(); err != nil {
		return nil, err
	}
	bctx, cancel := context.WithTimeout(ctx, bootTimeout)
	defer cancel()
	if err := m.findLeader(bctx); err != nil {
		return nil, err
	}
	if err := writeOwner(dir, Owner{Pid: os.Getpid(), Start: self, Leader: m.Leader, LeaderStart: m.leaderStart}); err != nil {
		return nil, err
	}
	if err := m.waitRunning(bctx); err != nil {
		return nil, err
	}
	return m, nil
}

// prepareRoot mounts an overlay of image with a fresh upper layer at
// m.Root, or copies the image when overlayfs is unavailable.
func (m *Machine) prepareRoot(image string) error {
	upper, work := filepath.Join(m.Dir, "upper"), filepath.Join(m.Dir, "work")
	for _, d := range []string{upper, work, m.Root} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return fmt.Errorf("nspawn: create %s: %w", d, err)
		}
	}
	data := "lowerdir=" + image + ",upperdir=" + upper + ",workdir=" + work
	err := unix.Mount("overlay", m.Root, "overlay", 0, data)
	if err == nil {
		m.overlay = true
		return nil
	}
	m.log.Info("overlayfs unavailable, copying the image", "error", err)
	out, cerr := exec.Command("cp", "-a", "--reflink=auto", image+"/.", m.Root).CombinedOutput()
	if cerr != nil {
		return fmt.Errorf("nspawn: copy image: %w: %s", cerr, bytes.TrimSpace(out))
	}
	return nil
}

func (m *Machine) start() error {
	console, err := os.Create(filepath.Join(m.Dir, "console.log"))
	if err != nil {
		return fmt.Errorf("nspawn: create console log: %w", err)
	}
	// systemd-nspawn(1): --keep-unit because systemd is not PID 1 on the
	// host (no machined to register with: --register=no);
	// --private-network leaves the container only a loopback.
	cmd := exec.Command("systemd-nspawn",
		"--quiet",
		"--directory="+m.Root,
		"--machine="+filepath.Base(m.Dir),
		"--private-network",
		"--register=no",
		"--keep-unit",
		"--console=pipe",
		"--boot")
	cmd.Stdin = nil
	cmd.Stdout = console
	cmd.Stderr = console
	// Own process group, so Close can kill whatever nspawn left behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		console.Close()
		return fmt.Errorf("nspawn: start systemd-nspawn: %w", err)
	}
	m.nspawn = cmd
	m.nspawnDone = make(chan struct{})
	go func() {
		defer close(m.nspawnDone)
		defer console.Close()
		if err := cmd.Wait(); err != nil {
			m.log.Debug("systemd-nspawn exited", "error", err)
		}
	}()
	return nil
}

// findLeader waits for nspawn's child to exec systemd.
func (m *Machine) findLeader(ctx context.Context) error {
	for {
		for _, pid := range Children(m.nspawn.Process.Pid) {
			comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
			if err != nil || strings.TrimSpace(string(comm)) != "systemd" {
				continue
			}
			start, err := ProcStartTime(pid)
			if err != nil {
				continue
			}
			m.Leader, m.leaderStart = pid, start
			m.log.Debug("container booting", "leader", pid)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("nspawn: wait for container init: %w\n%s", ctx.Err(), m.Console())
		case <-m.nspawnDone:
			return fmt.Errorf("nspawn: systemd-nspawn exited during boot\n%s", m.Console())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitRunning waits for `systemctl is-system-running --wait` to report
// running or degraded; it retries while the manager is not reachable yet.
func (m *Machine) waitRunning(ctx context.Context) error {
	var last string
	for {
		out, _ := m.Command(ctx, "systemctl", "is-system-running", "--wait").CombinedOutput()
		state := strings.TrimSpace(string(out))
		switch state {
		case "running":
			return nil
		case "degraded":
			failed, _ := m.Run(ctx, "systemctl", "--failed", "--no-legend", "--plain")
			m.log.Warn("container degraded", "failed", failed)
			return nil
		}
		last = state
		select {
		case <-ctx.Done():
			return fmt.Errorf("nspawn: wait for boot (last state %q): %w\n%s", last, ctx.Err(), m.Console())
		case <-m.nspawnDone:
			return fmt.Errorf("nspawn: systemd-nspawn exited during boot\n%s", m.Console())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Command returns a command that runs name inside the machine, in all its
// namespaces (mount, pid, network, …), with a plain environment.
func (m *Machine) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(m.Leader), "-a", "--", name}, args...)...)
	cmd.Env = []string{"PATH=" + containerPath, "LANG=C.UTF-8", "TERM=dumb", "SYSTEMD_PAGER=cat", "SYSTEMD_COLORS=0"}
	return cmd
}

// NetCommand returns a command that runs the host program name in the
// machine's network namespace only: it sees the host's file system and the
// container's network. nsenter execs name directly, so signals sent to the
// command reach the program.
//
// The program is SIGKILLed if the calling process dies
// (PR_SET_PDEATHSIG, kept across nsenter's exec): it runs on the host and
// would otherwise outlive a crashed test, and keep the container's network
// namespace alive.
func (m *Machine) NetCommand(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(m.Leader), "-n", "--", name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// Run runs name inside the machine and returns its combined output,
// trimmed. A non-zero exit is an error that carries the output.
func (m *Machine) Run(ctx context.Context, name string, args ...string) (string, error) {
	out, err := m.Command(ctx, name, args...).CombinedOutput()
	s := strings.TrimSpace(string(out))
	if err != nil {
		return s, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, s)
	}
	return s, nil
}

// Show returns unit properties from `systemctl show`.
func (m *Machine) Show(ctx context.Context, unit string, props ...string) (map[string]string, error) {
	args := []string{"show", unit}
	for _, p := range props {
		args = append(args, "--property="+p)
	}
	out, err := m.Run(ctx, "systemctl", args...)
	if err != nil {
		return nil, err
	}
	return ParseShow(out), nil
}

// WriteFile writes a file at path inside the machine, creating parent
// directories. It works before and after boot.
func (m *Machine) WriteFile(path string, data []byte, perm os.FileMode) error {
	host, err := m.hostPath(path)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
		return fmt.Errorf("nspawn: create parent of %s: %w", path, err)
	}
	// Write then rename, as a package manager does: a running program
	// keeps its old inode.
	tmp := host + ".nspawn-tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return fmt.Errorf("nspawn: write %s: %w", path, err)
	}
	if err := os.Chmod(tmp, perm); err != nil {
		return fmt.Errorf("nspawn: chmod %s: %w", path, err)
	}
	if err := os.Rename(tmp, host); err != nil {
		return fmt.Errorf("nspawn: install %s: %w", path, err)
	}
	return nil
}

// CopyFile copies the host file src to path inside the machine.
func (m *Machine) CopyFile(src, path string, perm os.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("nspawn: read %s: %w", src, err)
	}
	return m.WriteFile(path, data, perm)
}

func (m *Machine) hostPath(path string) (string, error) {
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("nspawn: path %q is not absolute", path)
	}
	clean := filepath.Clean(path)
	return filepath.Join(m.Root, clean), nil
}

// Console returns the last few KiB of the container's console output.
func (m *Machine) Console() string {
	f, err := os.Open(filepath.Join(m.Dir, "console.log"))
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > 8192 {
		f.Seek(st.Size()-8192, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// Close kills the container (SIGKILL to its PID 1 ends its whole pid
// namespace), then nspawn's process group, unmounts the overlay and
// removes the machine's directory. Safe to call more than once.
func (m *Machine) Close() error {
	m.closeOnce.Do(func() { m.closeErr = m.close() })
	return m.closeErr
}

func (m *Machine) close() error {
	var errs []error
	if m.Leader > 0 {
		if err := killIfSame(m.Leader, m.leaderStart); err != nil {
			errs = append(errs, err)
		}
	} else if m.nspawn != nil {
		// Boot failed before the init was identified: nspawn's children
		// run in their own session, out of reach of the group kill
		// below, and survive nspawn.
		for _, pid := range Children(m.nspawn.Process.Pid) {
			if start, err := ProcStartTime(pid); err == nil {
				if err := killIfSame(pid, start); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	if m.nspawn != nil {
		select {
		case <-m.nspawnDone:
		case <-time.After(10 * time.Second):
			m.log.Warn("systemd-nspawn still running 10s after its container was killed")
		}
		// The group may be gone already (ESRCH); that is the good case.
		if err := unix.Kill(-m.nspawn.Process.Pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("nspawn: kill process group: %w", err))
		}
		<-m.nspawnDone
	}
	if err := removeMachineDir(m.Dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// killIfSame SIGKILLs pid if it still is the process that started at
// start (not a recycled pid), and waits up to 10s for it to go away.
func killIfSame(pid int, start uint64) error {
	if s, err := ProcStartTime(pid); err != nil || s != start {
		return nil
	}
	if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("nspawn: kill container init %d: %w", pid, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if s, err := ProcStartTime(pid); err != nil || s != start {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("nspawn: container init %d survived SIGKILL", pid)
}

// removeMachineDir unmounts the overlay (lazily: a dying container may
// still hold it) and removes the directory.
func removeMachineDir(dir string) error {
	root := filepath.Join(dir, "root")
	if err := unix.Unmount(root, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("nspawn: unmount %s: %w", root, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("nspawn: remove %s: %w", dir, err)
	}
	return nil
}

// Children returns the pids of pid's child processes (proc(5)
// /proc/PID/task/TID/children), or nil.
func Children(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// ReapStale removes machine directories under workDir whose owning
// process is gone (a test run that crashed or was killed), killing their
// container first. It returns how many it removed.
func ReapStale(workDir string, log *slog.Logger) (int, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	entries, err := os.ReadDir(workDir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("nspawn: list %s: %w", workDir, err)
	}
	n := 0
	var errs []error
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "m-") {
			continue
		}
		dir := filepath.Join(workDir, e.Name())
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		if errors.Is(err, os.ErrNotExist) {
			// Boot writes the owner file right after creating the
			// directory: a young directory without one is being born.
			if st, serr := os.Stat(dir); serr == nil && time.Since(st.ModTime()) < time.Minute {
				continue
			}
		}
		o, perr := ParseOwner(string(b))
		if err == nil && perr == nil {
			if s, err := ProcStartTime(o.Pid); err == nil && s == o.Start {
				continue // owner alive: not stale
			}
			if o.Leader > 0 {
				if err := killIfSame(o.Leader, o.LeaderStart); err != nil {
					errs = append(errs, err)
					continue
				}
			}
		}
		log.Info("removing stale machine", "dir", dir)
		if err := removeMachineDir(dir); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}
