package server

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// connTracker counts the connections of every traffic listener, whatever
// its protocol: the listeners it wraps register each accepted connection
// and the connection unregisters itself when closed. Drain waits on it for
// connections that have not reached a handler, idle exit asks it whether
// any connection is open.
type connTracker struct {
	act *activity

	mu    sync.Mutex
	conns map[*trackedConn]struct{}

	// answered is told about responses net/http wrote itself, without
	// calling a handler (400 for a malformed request, 431 for oversized
	// headers, 501, 505), so that they are logged and counted like every
	// other answer. Nil means nobody listens.
	answered func(c net.Conn, status int)
	// acceptFailed is told about accept errors other than a closed
	// listener (EMFILE and the like). Nil means nobody listens.
	acceptFailed func(listener string, err error)
}

func newConnTracker(act *activity) *connTracker {
	return &connTracker{act: act, conns: make(map[*trackedConn]struct{})}
}

// listener wraps ln so that its connections are tracked. sniff reports
// whether the protocol on the wire is readable at this level (plain
// HTTP/1.1), so that answers net/http writes itself can be recognised;
// under TLS they are ciphertext here.
func (t *connTracker) listener(name string, ln net.Listener, sniff bool) net.Listener {
	return &trackedListener{Listener: ln, t: t, name: name, sniff: sniff}
}

type trackedListener struct {
	net.Listener
	t     *connTracker
	name  string
	sniff bool
}

func (l *trackedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		if !errors.Is(err, net.ErrClosed) && l.t.acceptFailed != nil {
			l.t.acceptFailed(l.name, err)
		}
		return nil, err
	}
	tc := &trackedConn{Conn: c, t: l.t, sniff: l.sniff}
	l.t.mu.Lock()
	l.t.conns[tc] = struct{}{}
	l.t.mu.Unlock()
	l.t.act.connOpened()
	return tc, nil
}

// fresh counts open connections whose first request has not reached a
// handler yet.
func (t *connTracker) fresh() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for c := range t.conns {
		if !c.served.Load() {
			n++
		}
	}
	return n
}

// open counts open connections.
func (t *connTracker) open() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

type connKey struct{}

// connContext remembers the tracked connection in the connection's
// context, for ServeHTTP (http.Server.ConnContext). Under TLS the
// connection is the *tls.Conn around it.
func (t *connTracker) connContext(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := trackedOf(c); ok { // conncap.go: under TLS and caps
		return context.WithValue(ctx, connKey{}, tc)
	}
	return ctx
}

// connState stops sniffing a hijacked connection: what follows is another
// protocol (http.Server.ConnState).
func (t *connTracker) connState(c net.Conn, st http.ConnState) {
	if st != http.StateHijacked {
		return
	}
	if tc, ok := trackedOf(c); ok { // conncap.go: under TLS and caps
		tc.hijacked.Store(true)
	}
}

// markServed records that a request of the connection in ctx reached a
// handler.
func markServed(ctx context.Context) {
	if tc, ok := ctx.Value(connKey{}).(*trackedConn); ok {
		if !tc.served.Load() {
			tc.served.Store(true)
		}
		tc.handlers.Add(1)
	}
}

// trackedConn is an accepted connection that unregisters itself on Close.
type trackedConn struct {
	net.Conn
	t        *connTracker
	sniff    bool
	served   atomic.Bool  // a request reached a handler
	hijacked atomic.Bool  // the connection left HTTP (WebSocket, upgrades)
	handlers atomic.Int64 // requests that reached a handler
	statuses atomic.Int64 // final status lines written for them
	once     sync.Once
}

// NetConn returns the connection underneath, so that the L4 relay copies
// between bare *net.TCPConn (splice) rather than through this wrapper.
func (c *trackedConn) NetConn() net.Conn { return c.Conn }

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.t.mu.Lock()
		delete(c.t.conns, c)
		c.t.mu.Unlock()
		c.t.act.connClosed()
	})
	return err
}

// Write passes b on and, on a plain HTTP/1 connection, recognises a
// response net/http wrote without a handler. net/http flushes every
// response before reading the next request, so a response starts a
// Write; a final status line that no handler accounts for, on a response
// that closes the connection, is one of net/http's own answers
// (net/http server.go: 400, 431, 501 and 505 are written straight to the
// connection followed by "Connection: close").
func (c *trackedConn) Write(b []byte) (int, error) {
	if c.sniff && !c.hijacked.Load() {
		if code, ok := statusLine(b); ok && code >= 200 {
			if c.statuses.Load() < c.handlers.Load() {
				c.statuses.Add(1)
			} else if bytes.Contains(b, []byte("\r\nConnection: close\r\n")) && c.t.answered != nil {
				c.t.answered(c.Conn, code)
			}
		}
	}
	return c.Conn.Write(b)
}

// statusLine parses the status code of an HTTP/1.x status line at the
// start of b (RFC 9112 §4: HTTP-version SP 3DIGIT SP).
func statusLine(b []byte) (int, bool) {
	const prefix = "HTTP/1."
	if len(b) < len(prefix)+5 || string(b[:len(prefix)]) != prefix || b[len(prefix)+1] != ' ' {
		return 0, false
	}
	d := b[len(prefix)+2 : len(prefix)+5]
	code := 0
	for _, x := range d {
		if x < '0' || x > '9' {
			return 0, false
		}
		code = code*10 + int(x-'0')
	}
	return code, true
}

// rateLimitedLog lets one log line through per interval and counts the
// ones it held back, so that an accept loop failing thousands of times a
// second (EMFILE) is visible without flooding the journal.
type rateLimitedLog struct {
	interval time.Duration
	mu       sync.Mutex
	last     time.Time
	held     int
}

// allow reports whether a line may be logged at now and how many were
// held back since the last one.
func (r *rateLimitedLog) allow(now time.Time) (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.last.IsZero() && now.Sub(r.last) < r.interval {
		r.held++
		return false, 0
	}
	held := r.held
	r.last, r.held = now, 0
	return true, held
}
