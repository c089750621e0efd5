package activation

import (
	"errors"
	"net"
	"sync"
)

// multiListener accepts from several sockets passed under one name (for
// example a socket unit listening on an IPv4 and an IPv6 address with
// BindIPv6Only=ipv6-only, systemd.socket(5)). One goroutine per socket
// feeds Accept; they start with the first Accept and Close stops them.
type multiListener struct {
	lns  []net.Listener
	ch   chan acceptResult
	done chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	started bool
	closed  bool
}

type acceptResult struct {
	c   net.Conn
	err error
}

func newMultiListener(lns []net.Listener) *multiListener {
	return &multiListener{
		lns:  lns,
		ch:   make(chan acceptResult),
		done: make(chan struct{}),
	}
}

// Accept returns the next connection from any of the sockets, or an error
// one of them reported (temporary errors such as EMFILE are passed through
// so that the server backs off as it would with a single socket).
func (m *multiListener) Accept() (net.Conn, error) {
	m.start()
	select {
	case r := <-m.ch:
		return r.c, r.err
	case <-m.done:
		return nil, m.closedErr()
	}
}

func (m *multiListener) start() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started || m.closed {
		return
	}
	m.started = true
	for _, ln := range m.lns {
		m.wg.Add(1)
		go m.loop(ln)
	}
}

// loop accepts on ln until it is closed. The unbuffered channel means at
// most one connection per socket waits for the server's next Accept.
func (m *multiListener) loop(ln net.Listener) {
	defer m.wg.Done()
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		select {
		case m.ch <- acceptResult{c, err}:
		case <-m.done:
			if c != nil {
				c.Close()
			}
			return
		}
	}
}

// Close closes every socket and waits for the accept goroutines to exit.
func (m *multiListener) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return m.closedErr()
	}
	m.closed = true
	close(m.done)
	m.mu.Unlock()
	var errs []error
	for _, ln := range m.lns {
		errs = append(errs, ignoreClosed(ln.Close()))
	}
	m.wg.Wait()
	return errors.Join(errs...)
}

// Addr returns the address of the first socket.
func (m *multiListener) Addr() net.Addr { return m.lns[0].Addr() }

func (m *multiListener) closedErr() error {
	a := m.Addr()
	return &net.OpError{Op: "accept", Net: a.Network(), Addr: a, Err: net.ErrClosed}
}
