// Package upgrade replaces a running handoff with a new binary without
// closing a listening socket: the parent starts the binary on disk with its
// listeners as inherited fds (the same LISTEN_FDS/LISTEN_FDNAMES contract
// systemd uses, see package activation), waits until the child says it is
// serving, and only then drains and exits. A child that fails to start or to
// become ready is killed and the parent keeps serving.
//
// The child announces itself to systemd with MAINPID= and READY=1, which
// needs NotifyAccess=all on the unit (systemd.service(5)), since it is not
// the main process yet when it sends them.
//
// It does not know about HTTP or config; it moves file descriptors and waits
// for one byte.
package upgrade

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/handoff-proxy/handoff/pkg/activation"
)

// EnvReadyFD names the fd number on which the child reports readiness. It
// is not a config key; callers that reject unknown HANDOFF_* variables must
// skip it (see IsInternalEnv).
const EnvReadyFD = "HANDOFF_UPGRADE_READY_FD"

// EnvCount counts the upgrades that led to a process, for the dashboard:
// the caller of Start sets it, one more than it was given. Like
// EnvReadyFD it is not a config key.
const EnvCount = "HANDOFF_UPGRADE_COUNT"

// IsInternalEnv reports whether key is a variable of the upgrade handshake.
func IsInternalEnv(key string) bool {
	return key == EnvReadyFD || key == EnvCount || activation.IsInternalEnv(key)
}

// ErrNotReady is wrapped by Start when the child exited or timed out before
// it reported readiness.
var ErrNotReady = errors.New("new process did not become ready")

// Options configure Start.
type Options struct {
	// Path is the binary to run. Empty means os.Executable(), which on
	// Linux names the file the running binary was loaded from, so a
	// package upgrade that renamed a new file over it runs the new one.
	Path string
	// Args are the arguments after argv[0].
	Args []string
	// Environ is the parent's environment (os.Environ()).
	Environ []string
	// Files are the listeners to hand over, from activation.Set.Files.
	// Start does not close them.
	Files []activation.NamedFile
	// ReadyTimeout bounds the wait for the child's readiness. Zero means
	// 60s.
	ReadyTimeout time.Duration
	// Stdout and Stderr of the child. Nil means the parent's.
	Stdout, Stderr *os.File
	// Logger for progress. Nil means none.
	Logger *slog.Logger
}

// Start runs the replacement process and waits until it is serving. On
// success the caller should drain and exit without telling systemd it is
// stopping: the child has already announced itself as the main process.
// The returned pid is the child's.
func Start(ctx context.Context, o Options) (int, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	path := o.Path
	if path == "" {
		p, err := os.Executable()
		if err != nil {
			return 0, fmt.Errorf("find own binary: %w", err)
		}
		path = p
	}
	timeout := o.ReadyTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	env, err := activation.ChildEnviron(o.Environ, os.Getpid(), o.Files)
	if err != nil {
		return 0, fmt.Errorf("child environment: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("readiness pipe: %w", err)
	}
	defer r.Close()
	extra := make([]*os.File, 0, len(o.Files)+1)
	for _, f := range o.Files {
		extra = append(extra, f.File)
	}
	// The readiness pipe comes after the listeners, which must start at
	// fd 3 (SD_LISTEN_FDS_START, sd_listen_fds(3)).
	readyFD := 3 + len(extra)
	extra = append(extra, w)
	env = append(withoutKey(env, EnvReadyFD), fmt.Sprintf("%s=%d", EnvReadyFD, readyFD))

	cmd := exec.Command(path, o.Args...)
	cmd.Env = env
	cmd.ExtraFiles = extra
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if o.Stdout != nil {
		cmd.Stdout = o.Stdout
	}
	if o.Stderr != nil {
		cmd.Stderr = o.Stderr
	}
	if err := cmd.Start(); err != nil {
		w.Close()
		return 0, fmt.Errorf("start %s: %w", path, err)
	}
	w.Close() // the child holds its copy; EOF on r means it is gone
	pid := cmd.Process.Pid
	log.Info("upgrade: started new process", "pid", pid, "path", path)

	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		if err == nil && strings.TrimSpace(line) == "ready" {
			ready <- nil
			return
		}
		ready <- fmt.Errorf("%w: readiness pipe closed (%v)", ErrNotReady, err)
	}()
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	select {
	case err = <-ready:
	case <-tctx.Done():
		err = fmt.Errorf("%w within %s: %w", ErrNotReady, timeout, tctx.Err())
		// Unblock the reader goroutine, then let it finish.
		r.Close()
		<-ready
	}
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return 0, err
	}
	// The child is the service's main process now (MAINPID=); it is not
	// ours to wait for. Not reaping it matters: if it dies while we
	// drain, it stays a zombie until we exit, is then reparented to the
	// service manager (PID 1) and reaped there, so systemd sees its exit
	// status and applies Restart= (wait(2), systemd.service(5)). A Wait
	// here would swallow that status, and it would be a goroutine nobody
	// can stop.
	_ = cmd.Process.Release()
	return pid, nil
}

// SignalReady tells the parent that started this process (if any) that it
// is serving. getenv is the process environment lookup. It is a no-op when
// the process was not started by Start.
func SignalReady(getenv func(string) string) error {
	v := getenv(EnvReadyFD)
	if v == "" {
		return nil
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return fmt.Errorf("parse %s=%q: invalid fd", EnvReadyFD, v)
	}
	f := os.NewFile(uintptr(fd), "upgrade-ready")
	if f == nil {
		return fmt.Errorf("%s=%d: not an open fd", EnvReadyFD, fd)
	}
	defer f.Close()
	if _, err := f.WriteString("ready\n"); err != nil {
		return fmt.Errorf("report readiness to parent: %w", err)
	}
	return nil
}

// BinaryReplaced reports whether the executable of process pid (0 means
// this process) was deleted or replaced on disk since it started, as a
// package upgrade that renames a new binary over the old one does: proc(5)
// then shows /proc/PID/exe with the suffix " (deleted)".
//
// Reading another process's exe link needs ptrace read access (proc(5),
// ptrace(2) "Ptrace access mode checking"), which a caller in another user
// namespace lacks without CAP_SYS_PTRACE there. systemd gives every
// process of a PrivateUsers=yes unit its own user namespace, so
// ExecReload= is denied the main process's link even under the same uid
// (and ProtectProc=invisible hides that process from it altogether). A
// process always passes for itself; callers ask it (see package server).
func BinaryReplaced(pid int) (bool, error) {
	link := "/proc/self/exe"
	if pid != 0 {
		link = "/proc/" + strconv.Itoa(pid) + "/exe"
	}
	exe, err := os.Readlink(link)
	if err != nil {
		return false, fmt.Errorf("read executable of process: %w", err)
	}
	return strings.HasSuffix(exe, " (deleted)"), nil
}

// StartedByUpgrade reports whether this process was started by Start.
func StartedByUpgrade(getenv func(string) string) bool { return getenv(EnvReadyFD) != "" }

func withoutKey(env []string, key string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k != key {
			out = append(out, kv)
		}
	}
	return out
}
