package activation

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Environment variables of the socket activation protocol (sd_listen_fds(3)).
const (
	envListenPID     = "LISTEN_PID"
	envListenFDs     = "LISTEN_FDS"
	envListenFDNames = "LISTEN_FDNAMES"
	// envListenPPID is handoff's own addition for upgrades, see
	// ChildEnviron: a Go parent cannot know its child's pid before the
	// child runs, so it names itself instead and the child compares the
	// value with getppid(2).
	envListenPPID = "HANDOFF_LISTEN_PPID"

	envWatchdogUSec = "WATCHDOG_USEC"
	envWatchdogPID  = "WATCHDOG_PID"
	envNotifySocket = "NOTIFY_SOCKET"
)

// listenFDsStart is SD_LISTEN_FDS_START from sd-daemon.h: passed file
// descriptors are numbered from 3 on, after stdin, stdout and stderr.
const listenFDsStart = 3

// maxListenFDs bounds LISTEN_FDS so that a corrupt value cannot make us
// allocate or close millions of descriptors. No sane service is passed
// more sockets than this.
const maxListenFDs = 4096

// unknownName is the name sd_listen_fds_with_names(3) reports for every fd
// when LISTEN_FDNAMES is absent.
const unknownName = "unknown"

// maxNameLen is the longest FDNAME= sd_pid_notify_with_fds(3) accepts and the
// longest FileDescriptorName= systemd.socket(5) allows.
const maxNameLen = 255

// Errors reported by this package. Branch on them with errors.Is.
var (
	// ErrInvalidEnv reports a malformed LISTEN_*, WATCHDOG_* or
	// NOTIFY_SOCKET variable.
	ErrInvalidEnv = errors.New("invalid environment")
	// ErrInvalidName reports a listener or fd store name that systemd
	// would not accept (empty, longer than 255 bytes, non-printable
	// ASCII, or containing ':').
	ErrInvalidName = errors.New("invalid name")
)

// Env is the part of the process environment this package reads. The zero
// value means the real process: os.Getenv, os.Unsetenv, os.Getpid and
// os.Getppid.
type Env struct {
	// Getenv looks up a variable; "" means unset. Nil means os.Getenv.
	Getenv func(key string) string
	// Unsetenv removes a variable. Nil means os.Unsetenv.
	Unsetenv func(key string) error
	// Pid is this process's id, compared with LISTEN_PID and
	// WATCHDOG_PID. Zero means os.Getpid().
	Pid int
	// Ppid is the parent's id, compared with HANDOFF_LISTEN_PPID (see
	// ChildEnviron). Zero means os.Getppid().
	Ppid int
}

func (e Env) getenv(key string) string {
	if e.Getenv == nil {
		return os.Getenv(key)
	}
	return e.Getenv(key)
}

func (e Env) unsetenv(key string) error {
	if e.Unsetenv == nil {
		return os.Unsetenv(key)
	}
	return e.Unsetenv(key)
}

func (e Env) pid() int {
	if e.Pid == 0 {
		return os.Getpid()
	}
	return e.Pid
}

func (e Env) ppid() int {
	if e.Ppid == 0 {
		return os.Getppid()
	}
	return e.Ppid
}

// listenEnv is the raw socket activation variables.
type listenEnv struct {
	pid, ppid, fds, names string
}

// readListenEnv reads the socket activation variables and unsets them, as
// sd_listen_fds(3) does with unset_environment set, so that processes we
// start do not mistake their own fds 3… for sockets meant for us.
func readListenEnv(e Env) (listenEnv, error) {
	le := listenEnv{
		pid:   e.getenv(envListenPID),
		ppid:  e.getenv(envListenPPID),
		fds:   e.getenv(envListenFDs),
		names: e.getenv(envListenFDNames),
	}
	var errs []error
	for _, k := range []string{envListenPID, envListenPPID, envListenFDs, envListenFDNames} {
		if err := e.unsetenv(k); err != nil {
			errs = append(errs, fmt.Errorf("unset %s: %w", k, err))
		}
	}
	return le, errors.Join(errs...)
}

// parseListenEnv interprets the socket activation variables the way
// sd_listen_fds_with_names(3) does and returns one name per passed fd
// (fd listenFDsStart+i has names[i]). It returns nil, nil when the variables
// are not meant for this process:
//
//   - LISTEN_PID set: it must equal pid, else the fds are not ours
//     (sd_listen_fds(3)).
//   - LISTEN_PID unset, HANDOFF_LISTEN_PPID set: it must equal ppid (an
//     upgrade parent, see ChildEnviron).
//   - neither set, or LISTEN_FDS unset or 0: nothing was passed.
//
// Without LISTEN_FDNAMES (or with it empty) every fd is named "unknown";
// otherwise it must hold exactly one colon-separated name per fd. An empty
// entry also becomes "unknown", since no socket unit can produce one.
func parseListenEnv(le listenEnv, pid, ppid int) ([]string, error) {
	switch {
	case le.pid != "":
		p, err := parsePID(le.pid)
		if err != nil {
			return nil, fmt.Errorf("parse %s=%q: %w", envListenPID, le.pid, err)
		}
		if p != pid {
			return nil, nil
		}
	case le.ppid != "":
		p, err := parsePID(le.ppid)
		if err != nil {
			return nil, fmt.Errorf("parse %s=%q: %w", envListenPPID, le.ppid, err)
		}
		if p != ppid {
			return nil, nil
		}
	default:
		return nil, nil
	}
	if le.fds == "" {
		return nil, nil
	}
	n, err := parseUint(le.fds, maxListenFDs)
	if err != nil {
		return nil, fmt.Errorf("parse %s=%q: %w", envListenFDs, le.fds, err)
	}
	if n == 0 {
		return nil, nil
	}
	names := make([]string, n)
	if le.names == "" {
		for i := range names {
			names[i] = unknownName
		}
		return names, nil
	}
	parts := strings.Split(le.names, ":")
	if len(parts) != n {
		return nil, fmt.Errorf("parse %s: %d names for %d fds: %w", envListenFDNames, len(parts), n, ErrInvalidEnv)
	}
	for i, p := range parts {
		if p == "" {
			p = unknownName
		}
		if err := validName(p); err != nil {
			return nil, fmt.Errorf("parse %s: fd %d: %w", envListenFDNames, listenFDsStart+i, err)
		}
		names[i] = p
	}
	return names, nil
}

// parsePID parses a positive process id.
func parsePID(s string) (int, error) {
	p, err := parseUint(s, 1<<31-1)
	if err != nil {
		return 0, err
	}
	if p == 0 {
		return 0, fmt.Errorf("pid 0: %w", ErrInvalidEnv)
	}
	return p, nil
}

// parseUint parses decimal digits only (no sign, no spaces) up to max.
func parseUint(s string, limit uint64) (int, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("not a decimal number: %w", ErrInvalidEnv)
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > limit {
		return 0, fmt.Errorf("out of range (max %d): %w", limit, ErrInvalidEnv)
	}
	return int(v), nil
}

// validName reports whether name is acceptable as FileDescriptorName=
// (systemd.socket(5)) and FDNAME= (sd_pid_notify_with_fds(3)): 1 to 255
// printable ASCII characters other than ':'.
func validName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return fmt.Errorf("name %q must be 1 to %d bytes: %w", name, maxNameLen, ErrInvalidName)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c > 0x7e || c == ':' {
			return fmt.Errorf("name %q: byte %#x not allowed (printable ASCII except ':'): %w", name, c, ErrInvalidName)
		}
	}
	return nil
}

// ChildEnviron returns environ adjusted for a child process that receives
// files as exec.Cmd.ExtraFiles (in the same order, so that files[i] becomes
// fd 3+i) and calls Listen: this is how a parent hands its listeners to its
// replacement on upgrade. parentPID is the caller's own pid.
//
// sd_listen_fds(3) requires LISTEN_PID to hold the receiver's pid, which a
// Go parent cannot know before the child starts (os/exec has no hook between
// fork and exec). The child's environment therefore carries
// HANDOFF_LISTEN_PPID=parentPID instead of LISTEN_PID, and Listen accepts
// the fds when that equals its getppid(2): a grandchild still never mistakes
// them for its own. Any inherited LISTEN_* variables are replaced, and
// WATCHDOG_PID is dropped so that the child (which the parent announces with
// MAINPID=) accepts WATCHDOG_USEC as sd_watchdog_enabled(3) does when
// WATCHDOG_PID is unset. NOTIFY_SOCKET is kept.
func ChildEnviron(environ []string, parentPID int, files []NamedFile) ([]string, error) {
	if parentPID <= 0 {
		return nil, fmt.Errorf("child environ: parent pid %d: %w", parentPID, ErrInvalidEnv)
	}
	names := make([]string, len(files))
	for i, f := range files {
		if err := validName(f.Name); err != nil {
			return nil, fmt.Errorf("child environ: file %d: %w", i, err)
		}
		names[i] = f.Name
	}
	drop := map[string]bool{
		envListenPID: true, envListenPPID: true, envListenFDs: true,
		envListenFDNames: true, envWatchdogPID: true,
	}
	out := make([]string, 0, len(environ)+3)
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			out = append(out, kv)
		}
	}
	if len(files) == 0 {
		return out, nil
	}
	return append(out,
		envListenPPID+"="+strconv.Itoa(parentPID),
		envListenFDs+"="+strconv.Itoa(len(files)),
		envListenFDNames+"="+strings.Join(names, ":"),
	), nil
}
