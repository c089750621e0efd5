package proxy

import (
	"bufio"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/handoff-proxy/handoff/pkg/rawsock"
)

// h1Conns keeps the idle HTTP/1.1 keep-alive connections of the fast path
// to the targets of one upstream, last used first (fresh connections stay
// warm, surplus ones age out), like http.Transport's idle pool for the
// net/http path.
type h1Conns struct {
	dialer      net.Dialer
	maxIdle     int
	idleTimeout time.Duration

	mu     sync.Mutex
	idle   map[string][]*h1Conn // by host:port
	closed bool
}

// h1Conn is one connection to a target with its read buffer.
type h1Conn struct {
	c     net.Conn
	br    *bufio.Reader
	s     *rawsock.Conn // c's reads and writes (package rawsock)
	addr  string
	since time.Time // idle since
	// armed is the read deadline set for the response header timeout,
	// zero when none is set.
	armed time.Time
	// interrupted: the client of the request in progress went away
	// (fastnet.go cancel); the connection is closed after it.
	interrupted atomic.Bool
}

// interrupt ends whatever the connection waits for, now and after any
// later deadline change (setReadDeadline).
func (c *h1Conn) interrupt() {
	c.interrupted.Store(true)
	_ = c.c.SetDeadline(past)
}

// past is a deadline that has passed: set, it ends a wait at once.
var past = time.Unix(1, 0)

// setReadDeadline sets the read deadline, unless interrupt ran: its past
// deadline stays (interrupt may run between the two stores, so check
// after).
func (c *h1Conn) setReadDeadline(t time.Time) {
	_ = c.c.SetReadDeadline(t)
	if c.interrupted.Load() {
		_ = c.c.SetDeadline(past)
	}
}

// armResponse makes sure that a response head is awaited for at least d
// from now and at most d plus a slack of d/8 (1 s at most): the
// deadline is set again only when the one left from an earlier request
// is too close, so that a busy connection moves its timer about once a
// second rather than twice per request (runtime timer updates showed in
// profiles).
func (c *h1Conn) armResponse(now time.Time, d time.Duration) {
	want := now.Add(d)
	if !c.armed.IsZero() && !c.armed.Before(want) {
		return
	}
	c.armed = want.Add(min(d/8, time.Second))
	c.setReadDeadline(c.armed)
}

// disarm clears the response header timeout before the body is read
// from the socket (a body may take any time) or the connection is
// probed.
func (c *h1Conn) disarm() {
	if !c.armed.IsZero() {
		c.armed = time.Time{}
		c.setReadDeadline(time.Time{})
	}
}

const upstreamReadBuffer = 64 << 10

func newH1Conns(dial, idle time.Duration, maxIdle int) *h1Conns {
	return &h1Conns{
		dialer:      net.Dialer{Timeout: dial, KeepAlive: tcpKeepAlive},
		maxIdle:     maxIdle,
		idleTimeout: idle,
		idle:        make(map[string][]*h1Conn),
	}
}

// staleAfter is how long a connection may sit idle before it is checked
// for a close from the target before reuse: targets close idle
// keep-alive connections after seconds (nginx keepalive_timeout 60s,
// Go 's IdleTimeout), never within one.
const staleAfter = time.Second

// get returns an idle connection to addr, or nil.
func (p *h1Conns) get(addr string, now time.Time) *h1Conn {
	p.mu.Lock()
	for {
		cs := p.idle[addr]
		if len(cs) == 0 {
			p.mu.Unlock()
			return nil
		}
		c := cs[len(cs)-1]
		cs[len(cs)-1] = nil
		p.idle[addr] = cs[:len(cs)-1]
		idle := now.Sub(c.since)
		if idle > p.idleTimeout {
			c.c.Close()
			continue
		}
		p.mu.Unlock()
		if idle > staleAfter {
			c.disarm()
			if !alive(c.c) {
				c.c.Close()
				p.mu.Lock()
				continue
			}
		}
		return c
	}
}

// dial opens a new connection to addr.
func (p *h1Conns) dial(addr string) (*h1Conn, error) {
	c, err := p.dialer.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := rawsock.New(c)
	return &h1Conn{c: c, s: s, br: bufio.NewReaderSize(s, upstreamReadBuffer), addr: addr}, nil
}

// put returns c to the idle pool, or closes it when the pool is full or
// closed.
func (p *h1Conns) put(c *h1Conn, now time.Time) {
	c.since = now
	p.mu.Lock()
	if !p.closed && len(p.idle[c.addr]) < p.maxIdle {
		p.idle[c.addr] = append(p.idle[c.addr], c)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	c.c.Close()
}

// close closes the idle connections; connections in use are closed when
// they are returned.
func (p *h1Conns) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for addr, cs := range p.idle {
		for _, c := range cs {
			c.c.Close()
		}
		delete(p.idle, addr)
	}
}

// alive reports whether c has neither been closed by the target nor
// received unexpected bytes, by peeking without blocking (recv(2)
// MSG_PEEK|MSG_DONTWAIT): EAGAIN means nothing is pending.
func alive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	ok = false
	var b [1]byte
	_ = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ok = n < 0 && errors.Is(err, syscall.EAGAIN)
		return true
	})
	return ok
}
