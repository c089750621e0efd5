package activation

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Errors reported by Listen. Branch on them with errors.Is.
var (
	// ErrUnclaimed reports passed fds whose names no Want asks for.
	ErrUnclaimed = errors.New("unclaimed file descriptors")
	// ErrNoAddress reports a Want without an Address for which no fd of
	// that name was passed.
	ErrNoAddress = errors.New("no address")
	// ErrNotListener reports a passed fd that is not a listening TCP or
	// Unix stream socket (a datagram socket, a regular file, a closed
	// fd, a socket without listen(2)).
	ErrNotListener = errors.New("not a listening stream socket")
	// ErrNotDatagram reports a passed fd for a Datagram Want that is not
	// a UDP socket.
	ErrNotDatagram = errors.New("not a UDP datagram socket")
	// ErrClosed reports use of a Set after Close.
	ErrClosed = errors.New("listener set closed")
)

// Want asks Listen for one named listener.
type Want struct {
	// Name matches FileDescriptorName= of the systemd socket unit
	// (systemd.socket(5)), i.e. an entry of LISTEN_FDNAMES. Required:
	// 1 to 255 printable ASCII characters, no ':'. Unique within a call.
	Name string
	// Address is bound when no fd of this Name was passed, in a form
	// ParseAddress accepts (for a Datagram Want: "host:port" only, bound
	// on UDP). Empty means the socket must be passed, unless AddressOf
	// is set.
	Address string
	// Datagram reports whether the socket is a UDP socket
	// (ListenDatagram= in systemd.socket(5)), served by Set.PacketConns,
	// rather than a listening stream socket. False means stream.
	Datagram bool
	// AddressOf names a stream Want of the same call: when no fd of this
	// Name was passed and Address is empty, this Datagram Want binds
	// the UDP socket on the IP and port that listener ended up on
	// (passed by systemd or bound, port 0 resolved), as HTTP/3 wants its
	// UDP socket beside the TCP one (RFC 9114 §3.2). Empty means none.
	AddressOf string
}

// Options configures Listen.
type Options struct {
	// Env is where LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES are read
	// from (and unset). The zero value means the real process.
	Env
	// SingleUnnamed, when set, names a lone fd passed without a name:
	// if exactly one fd was passed and it is named "unknown" (what
	// sd_listen_fds_with_names(3) reports when LISTEN_FDNAMES is absent,
	// e.g. `systemd-socket-activate -l :8080 handoff`), it serves the
	// Want of this name. Empty means no such mapping; "http" is the
	// usual value for the quick mode.
	SingleUnnamed string
	// SocketMode is the permission Listen sets on Unix socket files it
	// creates. Zero means 0660 (owner and group may connect).
	SocketMode fs.FileMode
	// RemoveSocketFiles reports whether closing a listener Listen bound
	// on a Unix socket path removes the socket file. False (the default)
	// keeps it, like RemoveOnStop=no in systemd.socket(5), so that a
	// process that inherited the socket on upgrade keeps serving on the
	// path after this one exits; the next Listen removes it if stale.
	RemoveSocketFiles bool
	// FirstFD is the number of the first passed fd. Zero means 3
	// (SD_LISTEN_FDS_START, sd_listen_fds(3)); tests change it.
	FirstFD int
	// Logger receives one line per listener. Nil means no logging.
	Logger *slog.Logger
}

// NamedFile is a duplicate of a listening socket's descriptor and the name
// it is known by, ready to be stored with Notifier.FDStore or passed to a
// child process (see ChildEnviron).
type NamedFile struct {
	Name string
	File *os.File
}

// passedFD is one fd handed to us.
type passedFD struct {
	fd   int
	name string
}

// Listen returns one listener per Want.
//
// A Want is served by the fds passed under its name, if any, otherwise by
// binding its Address. Passed fds are found through the socket activation
// protocol of sd_listen_fds(3): LISTEN_PID must be our pid, LISTEN_FDS
// counts fds from 3 on, LISTEN_FDNAMES names them. The same variables
// serve a parent handing its listeners to a new process on upgrade (see
// ChildEnviron, which uses HANDOFF_LISTEN_PPID in place of LISTEN_PID), so
// both cases take the same path here. Listen unsets the variables, marks
// the fds close-on-exec and takes ownership of them: each is duplicated
// into a net.Listener and the original closed.
//
// Several fds may share a name (a socket unit with two ListenStream=
// lines, e.g. IPv4 and IPv6); the Want's listener then accepts from all of
// them. Passed fds no Want claims are an error wrapping ErrUnclaimed that
// names them, because a socket nobody serves would accept connections that
// hang; the fds are closed. On any error, nothing stays open.
func Listen(ctx context.Context, opts Options, wants []Want) (*Set, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	addrs, err := checkWants(wants)
	if err != nil {
		return nil, err
	}
	passed, err := inherit(opts)
	if err != nil {
		return nil, err
	}
	closePassed := func() {
		for _, p := range passed {
			if p.fd >= 0 {
				unix.Close(p.fd)
			}
		}
	}
	if n := opts.SingleUnnamed; n != "" && len(passed) == 1 && passed[0].name == unknownName {
		passed[0].name = n
	}
	if err := checkClaimed(passed, wants); err != nil {
		closePassed()
		return nil, err
	}
	passed = dropDuplicates(passed, log)

	s := &Set{byName: make(map[string]*member, len(wants))}
	for _, w := range wants {
		s.names = append(s.names, w.Name)
		s.byName[w.Name] = &member{datagram: w.Datagram}
	}
	fail := func(err error) (*Set, error) {
		closePassed()
		s.Close()
		return nil, err
	}
	for i, p := range passed {
		m := s.byName[p.name]
		if m.datagram {
			pc, err := fdPacketConn(p) // datagram.go; closes p.fd
			passed[i].fd = -1
			if err != nil {
				return fail(err)
			}
			m.pcs = append(m.pcs, pc)
			m.passed = true
			log.Info("using passed datagram socket", "name", p.name, "fd", p.fd, "addr", pc.LocalAddr().String())
			continue
		}
		ln, err := fdListener(p) // closes p.fd
		passed[i].fd = -1
		if err != nil {
			return fail(err)
		}
		m.lns = append(m.lns, ln)
		m.passed = true
		log.Info("using passed listener", "name", p.name, "fd", p.fd, "addr", ln.Addr().String())
	}
	mode := opts.SocketMode
	if mode == 0 {
		mode = defaultSocketMode
	}
	for i, w := range wants {
		m := s.byName[w.Name]
		if m.passed || w.Datagram {
			continue
		}
		if w.Address == "" {
			return fail(fmt.Errorf("listener %q has no address and no fd of that name was passed: %w", w.Name, ErrNoAddress))
		}
		ln, err := bind(ctx, addrs[i], bindOptions{mode: mode, removeOnClose: opts.RemoveSocketFiles})
		if err != nil {
			return fail(fmt.Errorf("listen %q on %s: %w", w.Name, w.Address, err))
		}
		m.lns = append(m.lns, ln)
		log.Info("bound listener", "name", w.Name, "addr", ln.Addr().String())
	}
	if err := s.bindDatagrams(ctx, wants, addrs, log); err != nil { // datagram.go
		return fail(err)
	}
	for _, m := range s.byName {
		if m.datagram {
			continue
		}
		if len(m.lns) == 1 {
			m.public = m.lns[0]
		} else {
			m.public = newMultiListener(m.lns)
		}
	}
	return s, nil
}

// checkWants validates names and addresses and returns the parsed
// addresses (zero Address for an empty one).
func checkWants(wants []Want) ([]Address, error) {
	seen := make(map[string]bool, len(wants))
	addrs := make([]Address, len(wants))
	for i, w := range wants {
		if err := validName(w.Name); err != nil {
			return nil, fmt.Errorf("listener %d: %w", i, err)
		}
		if seen[w.Name] {
			return nil, fmt.Errorf("listener %q wanted twice: %w", w.Name, ErrInvalidName)
		}
		seen[w.Name] = true
		if err := checkDatagramWant(w, wants); err != nil { // datagram.go
			return nil, err
		}
		if w.Address == "" {
			continue
		}
		a, err := ParseAddress(w.Address)
		if err != nil {
			return nil, fmt.Errorf("listener %q: %w", w.Name, err)
		}
		if w.Datagram {
			if a.Network != "tcp" {
				return nil, fmt.Errorf("listener %q: datagram sockets bind host:port only: %w", w.Name, ErrInvalidAddress)
			}
			a.Network = "udp"
		}
		addrs[i] = a
	}
	return addrs, nil
}

// inherit reads and unsets the activation variables and returns the passed
// fds, marked close-on-exec.
func inherit(opts Options) ([]passedFD, error) {
	le, unsetErr := readListenEnv(opts.Env)
	names, err := parseListenEnv(le, opts.pid(), opts.ppid())
	if err != nil {
		return nil, fmt.Errorf("socket activation: %w", err)
	}
	first := opts.FirstFD
	if first == 0 {
		first = listenFDsStart
	}
	passed := make([]passedFD, len(names))
	for i, n := range names {
		fd := first + i
		// sd_listen_fds(3): the fds are passed without FD_CLOEXEC;
		// set it so they do not leak into processes we start.
		unix.CloseOnExec(fd)
		passed[i] = passedFD{fd: fd, name: n}
	}
	if unsetErr != nil {
		for _, p := range passed {
			unix.Close(p.fd)
		}
		return nil, fmt.Errorf("socket activation: %w", unsetErr)
	}
	return passed, nil
}

// dropDuplicates closes and drops fds that are the same socket as an
// earlier fd of the same name. That happens when a socket reaches us both
// from its socket unit and from the fd store (systemd suppresses
// duplicates within the store, not across the two), and accepting twice on
// one socket would only cost a goroutine and duplicate Files entries.
func dropDuplicates(passed []passedFD, log *slog.Logger) []passedFD {
	type key struct {
		name     string
		dev, ino uint64
	}
	seen := make(map[key]int, len(passed))
	out := passed[:0]
	for _, p := range passed {
		var st unix.Stat_t
		if err := unix.Fstat(p.fd, &st); err == nil {
			k := key{p.name, uint64(st.Dev), st.Ino}
			if first, dup := seen[k]; dup {
				log.Info("dropping duplicate of passed fd", "name", p.name, "fd", p.fd, "same_as", first)
				unix.Close(p.fd)
				continue
			}
			seen[k] = p.fd
		}
		out = append(out, p)
	}
	return out
}

// checkClaimed reports passed fds no Want claims.
func checkClaimed(passed []passedFD, wants []Want) error {
	var extra []string
	for _, p := range passed {
		if !slices.ContainsFunc(wants, func(w Want) bool { return w.Name == p.name }) && !slices.Contains(extra, p.name) {
			extra = append(extra, p.name)
		}
	}
	if len(extra) == 0 {
		return nil
	}
	return fmt.Errorf("systemd passed fd(s) named %s that no listener is configured for: %w", strings.Join(extra, ", "), ErrUnclaimed)
}

// fdListener turns a passed fd into a net.Listener after checking that it
// is a listening stream socket of a family package net supports. It closes
// p.fd in every case: the listener holds a duplicate.
func fdListener(p passedFD) (net.Listener, error) {
	f := os.NewFile(uintptr(p.fd), "LISTEN_FD_"+strconv.Itoa(p.fd))
	defer f.Close()
	what := fmt.Sprintf("fd %d named %s", p.fd, p.name)
	domain, err := unix.GetsockoptInt(p.fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", what, ErrNotListener, err)
	}
	if domain != unix.AF_INET && domain != unix.AF_INET6 && domain != unix.AF_UNIX {
		return nil, fmt.Errorf("%s: address family %d: %w", what, domain, ErrNotListener)
	}
	typ, err := unix.GetsockoptInt(p.fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", what, ErrNotListener, err)
	}
	if typ != unix.SOCK_STREAM {
		return nil, fmt.Errorf("%s: socket type %s: %w", what, sockType(typ), ErrNotListener)
	}
	acc, err := unix.GetsockoptInt(p.fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", what, ErrNotListener, err)
	}
	if acc == 0 {
		return nil, fmt.Errorf("%s: stream socket is not listening: %w", what, ErrNotListener)
	}
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return ln, nil
}

func sockType(t int) string {
	switch t {
	case unix.SOCK_DGRAM:
		return "SOCK_DGRAM"
	case unix.SOCK_SEQPACKET:
		return "SOCK_SEQPACKET"
	case unix.SOCK_RAW:
		return "SOCK_RAW"
	default:
		return strconv.Itoa(t)
	}
}
