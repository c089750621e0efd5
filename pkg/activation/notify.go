package activation

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Lines of the sd_notify(3) protocol for use with Notifier.Send.
const (
	// NotifyReady tells the manager that start-up or a reload finished.
	NotifyReady = "READY=1"
	// NotifyStopping tells the manager that shutdown began.
	NotifyStopping = "STOPPING=1"
	// NotifyWatchdog is the watchdog keep-alive ping.
	NotifyWatchdog = "WATCHDOG=1"
)

// ErrInvalidMessage reports an sd_notify line Send refuses to send.
var ErrInvalidMessage = errors.New("invalid notify message")

// scmMaxFD is SCM_MAX_FD from the kernel (unix(7)): the most descriptors
// one SCM_RIGHTS message may carry.
const scmMaxFD = 253

// defaultNotifyTimeout bounds a send when NotifierOptions.Timeout is zero.
const defaultNotifyTimeout = 5 * time.Second

// NotifierOptions configures NewNotifier.
type NotifierOptions struct {
	// Env is where NOTIFY_SOCKET is read from. The zero value means the
	// real process. The variable is left set: a child started on
	// upgrade needs it to send READY=1 itself.
	Env
	// Timeout bounds each send, so that a manager that stopped reading
	// cannot block us forever (a full datagram queue blocks the sender,
	// unix(7)). Zero means 5s.
	Timeout time.Duration
}

// Notifier sends sd_notify(3) messages to the service manager. It is
// disabled, and every method a no-op returning nil, when NOTIFY_SOCKET was
// unset; a nil *Notifier is disabled too. It is safe for concurrent use:
// each message goes out on its own socket, as sd_notify(3) does.
type Notifier struct {
	addr    *net.UnixAddr
	timeout time.Duration
}

// NewNotifier returns a Notifier for the socket in NOTIFY_SOCKET: an
// absolute path or, with a leading '@', a Linux abstract socket
// (sd_notify(3)). Other forms (such as systemd 254's "vsock:") are an
// error wrapping ErrInvalidEnv.
func NewNotifier(opts NotifierOptions) (*Notifier, error) {
	n := &Notifier{timeout: opts.Timeout}
	if n.timeout <= 0 {
		n.timeout = defaultNotifyTimeout
	}
	s := opts.getenv(envNotifySocket)
	if s == "" {
		return n, nil
	}
	switch {
	case !strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "@"):
		return nil, fmt.Errorf("%s=%q: want an absolute path or @abstract name: %w", envNotifySocket, s, ErrInvalidEnv)
	case len(s) < 2 || len(s) > maxUnixPath:
		return nil, fmt.Errorf("%s=%q: length must be 2 to %d bytes: %w", envNotifySocket, s, maxUnixPath, ErrInvalidEnv)
	case strings.IndexByte(s, 0) >= 0:
		return nil, fmt.Errorf("%s: NUL byte: %w", envNotifySocket, ErrInvalidEnv)
	}
	// The net package turns a leading '@' into the NUL byte that marks
	// the abstract namespace (unix(7)).
	n.addr = &net.UnixAddr{Name: s, Net: "unixgram"}
	return n, nil
}

// Enabled reports whether messages are sent (NOTIFY_SOCKET was set).
func (n *Notifier) Enabled() bool { return n != nil && n.addr != nil }

// Send sends lines as one datagram, so that the manager sees them
// together (for example READY=1 with STATUS=…). Each line must be
// VARIABLE=value without newline or NUL bytes.
func (n *Notifier) Send(lines ...string) error {
	if len(lines) == 0 {
		return fmt.Errorf("notify: no lines: %w", ErrInvalidMessage)
	}
	for _, l := range lines {
		if err := checkLine(l); err != nil {
			return err
		}
	}
	return n.send(strings.Join(lines, "\n"), nil)
}

func checkLine(l string) error {
	k, _, ok := strings.Cut(l, "=")
	if !ok || k == "" {
		return fmt.Errorf("notify: line %q is not VARIABLE=value: %w", l, ErrInvalidMessage)
	}
	if strings.ContainsAny(l, "\n\x00") {
		return fmt.Errorf("notify: line %q contains a newline or NUL: %w", l, ErrInvalidMessage)
	}
	return nil
}

// Ready sends READY=1: start-up, or a reload begun with Reloading,
// finished.
func (n *Notifier) Ready() error { return n.Send(NotifyReady) }

// Reloading sends RELOADING=1 with MONOTONIC_USEC set to CLOCK_MONOTONIC
// now, in one datagram: sd_notify(3) requires the timestamp with
// RELOADING=1 for Type=notify-reload, so that the manager can tell this
// reload from an older one. READY=1 must follow, even when the reload
// fails.
func (n *Notifier) Reloading() error {
	if !n.Enabled() {
		return nil
	}
	us, err := monotonicUsec()
	if err != nil {
		return err
	}
	return n.Send("RELOADING=1", "MONOTONIC_USEC="+strconv.FormatInt(us, 10))
}

// monotonicUsec returns CLOCK_MONOTONIC in microseconds, the clock
// MONOTONIC_USEC= is defined on (sd_notify(3)).
func monotonicUsec() (int64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, fmt.Errorf("read CLOCK_MONOTONIC: %w", err)
	}
	return ts.Sec*1_000_000 + ts.Nsec/1_000, nil
}

// Stopping sends STOPPING=1: shutdown began.
func (n *Notifier) Stopping() error { return n.Send(NotifyStopping) }

// Status sends STATUS=s, the one-line state systemctl status shows.
// Newlines and NUL bytes in s become spaces.
func (n *Notifier) Status(s string) error {
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == 0 {
			return ' '
		}
		return r
	}, s)
	return n.Send("STATUS=" + s)
}

// Watchdog sends WATCHDOG=1, the keep-alive ping (sd_watchdog_enabled(3)).
func (n *Notifier) Watchdog() error { return n.Send(NotifyWatchdog) }

// MainPID sends MAINPID=pid: the manager should watch pid as the service's
// main process from now on (after an upgrade handed over to a child).
func (n *Notifier) MainPID(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("notify: MAINPID=%d: %w", pid, ErrInvalidMessage)
	}
	return n.Send("MAINPID=" + strconv.Itoa(pid))
}

// Extend sends EXTEND_TIMEOUT_USEC: the start-up, reload or stop in
// progress needs d more before the manager's timeout fires (sd_notify(3)).
// Resend before d runs out to extend again.
func (n *Notifier) Extend(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("notify: extend by %v: %w", d, ErrInvalidMessage)
	}
	return n.Send("EXTEND_TIMEOUT_USEC=" + strconv.FormatInt(d.Microseconds(), 10))
}

// FDStore stores duplicates of files in the manager's file descriptor
// store under name (FDSTORE=1, FDNAME=name, the descriptors attached with
// SCM_RIGHTS; sd_pid_notify_with_fds(3)). On the next start they come back
// through LISTEN_FDS/LISTEN_FDNAMES, so Listen picks them up by name. The
// unit needs FileDescriptorStoreMax= (systemd.service(5)) or the manager
// drops them. The caller still owns files; sending does not change their
// blocking mode.
func (n *Notifier) FDStore(name string, files ...*os.File) error {
	if err := validName(name); err != nil {
		return fmt.Errorf("notify: fd store: %w", err)
	}
	if len(files) == 0 || len(files) > scmMaxFD {
		return fmt.Errorf("notify: fd store %q: %d files, want 1 to %d: %w", name, len(files), scmMaxFD, ErrInvalidMessage)
	}
	return n.send("FDSTORE=1\nFDNAME="+name, files)
}

// FDStoreAll stores files (as returned by Set.Files) with one FDStore
// message per name, since FDNAME= applies to every fd in its message.
// Names are sent in order of first appearance.
func (n *Notifier) FDStoreAll(files []NamedFile) error {
	var order []string
	byName := make(map[string][]*os.File)
	for _, f := range files {
		if _, ok := byName[f.Name]; !ok {
			order = append(order, f.Name)
		}
		byName[f.Name] = append(byName[f.Name], f.File)
	}
	for _, name := range order {
		if err := n.FDStore(name, byName[name]...); err != nil {
			return err
		}
	}
	return nil
}

// FDStoreRemove removes every descriptor stored under name
// (FDSTOREREMOVE=1, sd_notify(3)).
func (n *Notifier) FDStoreRemove(name string) error {
	if err := validName(name); err != nil {
		return fmt.Errorf("notify: fd store remove: %w", err)
	}
	return n.send("FDSTOREREMOVE=1\nFDNAME="+name, nil)
}

// send writes payload as one datagram with files attached.
func (n *Notifier) send(payload string, files []*os.File) error {
	if !n.Enabled() {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("notify: connect %s: %w", n.addr.Name, err)
	}
	defer c.Close()
	if err := c.SetWriteDeadline(time.Now().Add(n.timeout)); err != nil {
		return fmt.Errorf("notify: set deadline: %w", err)
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	err = withFDs(files, func(fds []int) error {
		var oob []byte
		if len(fds) > 0 {
			oob = unix.UnixRights(fds...)
		}
		// sendmsg(2) on the connected socket; net.UnixConn refuses
		// WriteMsgUnix on a connected datagram socket. RawConn.Write
		// waits for writability and honours the write deadline.
		var serr error
		if werr := rc.Write(func(fd uintptr) bool {
			for {
				_, serr = unix.SendmsgN(int(fd), []byte(payload), oob, nil, unix.MSG_NOSIGNAL)
				if !errors.Is(serr, unix.EINTR) {
					return !errors.Is(serr, unix.EAGAIN)
				}
			}
		}); werr != nil {
			return werr
		}
		return serr
	})
	if err != nil {
		return fmt.Errorf("notify: send to %s: %w", n.addr.Name, err)
	}
	return nil
}

// withFDs calls fn with the descriptors of files, holding each through
// SyscallConn.Control so none can be closed meanwhile. Unlike File.Fd it
// leaves O_NONBLOCK alone, which matters for a duplicate of a live
// listener: the flag is shared by all its descriptors.
func withFDs(files []*os.File, fn func(fds []int) error) error {
	fds := make([]int, 0, len(files))
	var step func(i int) error
	step = func(i int) error {
		if i == len(files) {
			return fn(fds)
		}
		if files[i] == nil {
			return fmt.Errorf("file %d is nil: %w", i, ErrInvalidMessage)
		}
		rc, err := files[i].SyscallConn()
		if err != nil {
			return fmt.Errorf("file %d: %w", i, err)
		}
		var inner error
		if err := rc.Control(func(fd uintptr) {
			fds = append(fds, int(fd))
			inner = step(i + 1)
		}); err != nil {
			return fmt.Errorf("file %d: %w", i, err)
		}
		return inner
	}
	return step(0)
}
