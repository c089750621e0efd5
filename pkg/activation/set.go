package activation

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Set holds the listeners Listen returned, by name. Its methods are safe
// for concurrent use.
type Set struct {
	names  []string // in Want order
	byName map[string]*member

	mu     sync.Mutex
	closed bool
}

// member is the listener of one name.
type member struct {
	lns      []net.Listener   // one per socket
	public   net.Listener     // lns[0], or a multiListener over lns
	pcs      []net.PacketConn // datagram.go: one per socket of a Datagram Want
	datagram bool
	passed   bool
}

// Listener returns the listener of name, or nil if no Want had that name.
// When several fds were passed under the name, it accepts from all of
// them. Closing it (as http.Server.Shutdown does) is fine; Set.Close
// closes it too.
func (s *Set) Listener(name string) net.Listener {
	m := s.byName[name]
	if m == nil {
		return nil
	}
	return m.public
}

// Names returns the listener names in the order of the Wants.
func (s *Set) Names() []string {
	return append([]string(nil), s.names...)
}

// FromSystemd reports whether the listener of name was passed in (by
// systemd, from the fd store, or by an upgrading parent) rather than bound
// by Listen.
func (s *Set) FromSystemd(name string) bool {
	m := s.byName[name]
	return m != nil && m.passed
}

// Files returns a duplicate descriptor of every socket, in Want order and
// one entry per socket (a name appears more than once when several fds
// were passed under it), for Notifier.FDStore or for a child process (see
// ChildEnviron). The caller owns and closes them; closing them does not
// affect the listeners.
//
// Unlike (*net.TCPListener).File, the files keep the socket non-blocking
// even when their Fd method is called (os/exec calls it for ExtraFiles):
// O_NONBLOCK belongs to the open file description the listener shares, and
// a blocking listener would tie up a thread in accept(2) and stall Close.
func (s *Set) Files() ([]NamedFile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	var out []NamedFile
	for _, name := range s.names {
		for _, sc := range s.byName[name].conns() {
			f, err := dupSocket(sc)
			if err != nil {
				for _, nf := range out {
					nf.File.Close()
				}
				return nil, fmt.Errorf("duplicate listener %q: %w", name, err)
			}
			out = append(out, NamedFile{Name: name, File: f})
		}
	}
	return out, nil
}

// conns returns the member's sockets, stream or datagram.
func (m *member) conns() []any {
	out := make([]any, 0, len(m.lns)+len(m.pcs))
	for _, ln := range m.lns {
		out = append(out, ln)
	}
	for _, pc := range m.pcs {
		out = append(out, pc)
	}
	return out
}

// dupSocket duplicates the descriptor of a listener or packet conn with
// F_DUPFD_CLOEXEC (fcntl(2)).
func dupSocket(s any) (*os.File, error) {
	sc, ok := s.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("socket type %T has no descriptor", s)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var nfd int
	var dupErr error
	if err := rc.Control(func(fd uintptr) {
		nfd, dupErr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if dupErr != nil {
		return nil, fmt.Errorf("fcntl F_DUPFD_CLOEXEC: %w", dupErr)
	}
	// os.NewFile (not the net package's File methods) so that Fd leaves
	// O_NONBLOCK alone; see Files.
	return os.NewFile(uintptr(nfd), socketLabel(s)), nil
}

// Close closes every listener. Listeners already closed by their server
// are not an error.
func (s *Set) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for _, name := range s.names {
		m := s.byName[name]
		if m == nil {
			continue
		}
		// Before Listen finished, public is not set yet.
		lns := m.lns
		if m.public != nil {
			lns = []net.Listener{m.public}
		}
		for _, ln := range lns {
			if err := ignoreClosed(ln.Close()); err != nil {
				errs = append(errs, fmt.Errorf("close listener %q: %w", name, err))
			}
		}
		for _, pc := range m.pcs {
			if err := ignoreClosed(pc.Close()); err != nil {
				errs = append(errs, fmt.Errorf("close datagram socket %q: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

func ignoreClosed(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
