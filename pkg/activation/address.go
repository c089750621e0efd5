package activation

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrInvalidAddress reports an address ParseAddress does not accept.
var ErrInvalidAddress = errors.New("invalid address")

// unixPrefix marks a Unix stream socket address.
const unixPrefix = "unix:"

// maxUnixPath is the room in sockaddr_un.sun_path (unix(7)): 108 bytes
// including the terminating NUL for a path name.
const maxUnixPath = 107

// defaultSocketMode is the permission of Unix socket files Listen creates:
// owner and group may connect (connect(2) needs write permission, unix(7)).
const defaultSocketMode fs.FileMode = 0o660

// Address is a parsed listen address.
type Address struct {
	// Network is "tcp" or "unix".
	Network string
	// Address is what net.Listen takes: "host:port" for tcp (the input
	// unchanged), a path for unix, or "@name" for a Linux abstract Unix
	// socket (unix(7)).
	Address string
}

// String returns the address in the form ParseAddress accepts.
func (a Address) String() string {
	if a.Network == "unix" {
		return unixPrefix + a.Address
	}
	return a.Address
}

// abstract reports whether a is a Linux abstract Unix socket, which has no
// file to remove or chmod.
func (a Address) abstract() bool {
	return a.Network == "unix" && strings.HasPrefix(a.Address, "@")
}

// ParseAddress parses a listen address: "host:port", ":port" or
// "[v6addr]:port" listen on TCP ("tcp", so ":port" is dual-stack);
// "unix:/path" on a Unix stream socket and "unix:@name" on a Linux abstract
// one. The port must be a decimal number from 0 to 65535 (0 picks a free
// port). A host may be an IP literal or a name net.Listen resolves.
func ParseAddress(s string) (Address, error) {
	if path, ok := strings.CutPrefix(s, unixPrefix); ok {
		switch {
		case path == "" || path == "@":
			return Address{}, fmt.Errorf("parse address %q: empty socket path: %w", s, ErrInvalidAddress)
		case len(path) > maxUnixPath:
			return Address{}, fmt.Errorf("parse address %q: socket path longer than %d bytes: %w", s, maxUnixPath, ErrInvalidAddress)
		case strings.IndexByte(path, 0) >= 0:
			return Address{}, fmt.Errorf("parse address %q: NUL in socket path: %w", s, ErrInvalidAddress)
		}
		return Address{Network: "unix", Address: path}, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return Address{}, fmt.Errorf("parse address %q: %w: %w", s, ErrInvalidAddress, err)
	}
	if strings.ContainsAny(host, " \t\r\n\x00/") {
		return Address{}, fmt.Errorf("parse address %q: bad host %q: %w", s, host, ErrInvalidAddress)
	}
	if port == "" || strings.TrimLeft(port, "0123456789") != "" {
		return Address{}, fmt.Errorf("parse address %q: port %q is not a number: %w", s, port, ErrInvalidAddress)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil {
		return Address{}, fmt.Errorf("parse address %q: port %q out of range: %w", s, port, ErrInvalidAddress)
	} else if strconv.FormatUint(p, 10) != port {
		// Leading zeros: reject so that an address has one spelling.
		return Address{}, fmt.Errorf("parse address %q: port %q has leading zeros: %w", s, port, ErrInvalidAddress)
	}
	return Address{Network: "tcp", Address: s}, nil
}

// bindOptions controls how bind creates sockets.
type bindOptions struct {
	mode          fs.FileMode
	removeOnClose bool
}

// bind listens on a. For a Unix socket path it removes a stale socket file
// left by a process that died (nothing accepts connections on it), but
// never a file that is not a socket nor one somebody still listens on,
// then sets the file's mode.
func bind(ctx context.Context, a Address, o bindOptions) (net.Listener, error) {
	ln, err := bindSocket(ctx, a, o)
	if err != nil {
		return nil, err
	}
	if err := setBacklog(ln, listenBacklog); err != nil {
		ln.Close()
		return nil, fmt.Errorf("set backlog of %s: %w", a, err)
	}
	return ln, nil
}

// listenBacklog is the accept queue asked of listen(2) for the sockets
// handoff binds itself: as long as the kernel allows, which listen(2) caps
// at net.core.somaxconn (4096 by default since Linux 5.4).
//
// net.Listen means to do the same, but it learns somaxconn by reading
// /proc/sys/net/core/somaxconn and falls back to 128 when it cannot, and
// the unit's ProcSubset=pid (systemd.exec(5)) hides /proc/sys. 128 is too
// short for the connections that queue while handoff restarts or upgrades
// with its listeners in the fd store: once the queue is full the kernel
// drops SYNs, and clients wait for TCP's retransmission timer (1 s, then
// doubling; RFC 6298 §2.1, §5.5). The socket units ask for Backlog=4096
// for the same reason.
const listenBacklog = 1<<16 - 1

// setBacklog sets the accept queue of a listening socket: listen(2) on a
// socket that already listens only changes its backlog (Linux, for TCP
// and Unix stream sockets).
func setBacklog(ln net.Listener, backlog int) error {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) { lerr = syscall.Listen(int(fd), backlog) }); err != nil {
		return err
	}
	return lerr
}

// bindSocket is bind without the backlog.
func bindSocket(ctx context.Context, a Address, o bindOptions) (net.Listener, error) {
	var lc net.ListenConfig
	if a.Network != "unix" {
		// TCP keepalive on the listening socket, which every accepted
		// socket inherits (tcp(7): the accepted socket is a clone of
		// the listener), instead of four setsockopt(2) per accepted
		// connection by net: a tenth of the CPU a short connection
		// costs. The values are net's defaults. (Sockets from systemd
		// or a parent come through net.FileListener, which always sets
		// them per connection.)
		lc.KeepAlive = -1
		lc.Control = inheritKeepAlive
		return lc.Listen(ctx, a.Network, a.Address)
	}
	ln, err := lc.Listen(ctx, "unix", a.Address)
	if err != nil && !a.abstract() && errors.Is(err, syscall.EADDRINUSE) {
		if rerr := removeStaleSocket(ctx, a.Address); rerr != nil {
			return nil, fmt.Errorf("%w (%w)", err, rerr)
		}
		ln, err = lc.Listen(ctx, "unix", a.Address)
	}
	if err != nil {
		return nil, err
	}
	if a.abstract() {
		return ln, nil
	}
	// unix(7): connecting needs write permission on the socket file. The
	// file is created with the process umask; tighten or widen it now,
	// before anyone is told the listener exists.
	if err := os.Chmod(a.Address, o.mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod %s: %w", a.Address, err)
	}
	// Keep the file on Close by default (like RemoveOnStop=no in
	// systemd.socket(5)): a child that inherited the socket on upgrade
	// still serves on this path after the parent closes its copy.
	ln.(*net.UnixListener).SetUnlinkOnClose(o.removeOnClose)
	return ln, nil
}

// Keepalive of accepted TCP connections: net.KeepAliveConfig's defaults
// (idle 15 s, then a probe every 15 s, 9 unanswered probes).
const (
	keepAliveIdle     = 15
	keepAliveInterval = 15
	keepAliveCount    = 9
)

// inheritKeepAlive is a ListenConfig.Control that sets TCP keepalive on
// the listening socket.
func inheritKeepAlive(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		for _, o := range []struct{ level, opt, v int }{
			{syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
			{syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, keepAliveIdle},
			{syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, keepAliveInterval},
			{syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, keepAliveCount},
		} {
			if err := syscall.SetsockoptInt(int(fd), o.level, o.opt, o.v); err != nil {
				serr = fmt.Errorf("setsockopt %d: %w", o.opt, err)
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// staleDialTimeout bounds the probe of a socket file; a live listener
// answers connect(2) at once even when its accept queue is full
// (connect then fails with EAGAIN, which still proves it is alive).
const staleDialTimeout = time.Second

// removeStaleSocket removes path if it is a socket file nobody listens on.
func removeStaleSocket(ctx context.Context, path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("stat existing %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket, not removing it: %w", path, fs.ErrExist)
	}
	ctx, cancel := context.WithTimeout(ctx, staleDialTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err == nil {
		c.Close()
		return fmt.Errorf("another process listens on %s: %w", path, syscall.EADDRINUSE)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		// EAGAIN (full backlog), EACCES, a timeout: somebody may be
		// there or we cannot tell; leave the file alone.
		return fmt.Errorf("probe %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	return nil
}
