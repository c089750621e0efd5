package server

import (
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/handoff-proxy/handoff/pkg/accesslog"
	"github.com/handoff-proxy/handoff/pkg/h1"
	"github.com/handoff-proxy/handoff/pkg/proxy"
	"github.com/handoff-proxy/handoff/pkg/route"
)

// fastRoutes is what the fast path needs of a generation: its route
// table and, per route, the fast forwarder of its upstream when the
// route is a plain proxy route.
type fastRoutes struct {
	table *route.Table
	fwd   map[*route.Route]*proxy.Fast
	// listeners the fast path may serve: plain http without listener
	// policy (access, forward proxy).
	listeners map[string]bool
	// headers reports a route with header conditions: matching needs
	// the header map net/http builds.
	headers bool
	// exporting reports span export (tracing.go), which net/http serves.
	exporting bool
	// keep is the access log's sampling decision.
	keep func(status int) bool
}

func newFastRoutes(g *generation, table *route.Table) *fastRoutes {
	fr := &fastRoutes{table: table, fwd: make(map[*route.Route]*proxy.Fast), listeners: make(map[string]bool)}
	fr.exporting = g.tracing != nil && g.tracing.tracer != nil
	fr.keep = accesslog.Options{Sample: g.cfg.Log.AccessSample}.Keep()
	for _, rt := range table.Routes() {
		if len(rt.Match.Headers) > 0 {
			fr.headers = true
		}
		if ph, ok := rt.Handler().(*proxy.Handler); ok {
			if f := ph.Fast(); f != nil {
				fr.fwd[rt] = f
			}
		}
	}
	for _, lc := range g.cfg.Listeners {
		fr.listeners[lc.Name] = lc.Access == nil && lc.Auth == nil && lc.Redirect == nil
	}
	return fr
}

// fastRoute returns the fast forwarder for a request on listener, or nil
// when net/http must serve it.
func (g *generation) fastRoute(listener string, h *h1.Request, buf []byte) (*proxy.Fast, *route.Route) {
	fr := g.fast
	if fr == nil || fr.headers || fr.exporting || !fr.listeners[listener] {
		return nil, nil
	}
	target := h.Target.String(buf)
	if strings.HasPrefix(target, acmeChallengePrefix) {
		return nil, nil // acme.go: answered before routing, in ServeHTTP
	}
	p := target
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if strings.IndexByte(p, '%') >= 0 {
		u, err := url.PathUnescape(p)
		if err != nil {
			return nil, nil
		}
		p = u
	}
	host := ""
	if h.HasHost {
		host = h.Host.String(buf)
	}
	rt, ok := fr.table.Match(route.Request{Host: host, Path: p, Method: h.Method.String(buf)})
	if !ok {
		return nil, nil
	}
	f := fr.fwd[rt]
	if f == nil {
		return nil, nil
	}
	return f, rt
}

// acmeChallengePrefix is where ACME HTTP-01 challenges are asked
// (RFC 8555 §8.3).
const acmeChallengePrefix = "/.well-known/acme-challenge/"

// bodyReader reads the rest of a request body from the client, with an
// idle timeout between reads: a client that stops sending is cut off
// rather than holding a connection to the target.
type bodyReader struct {
	c    net.Conn
	idle time.Duration
}

func (b *bodyReader) Read(p []byte) (int, error) {
	_ = b.c.SetReadDeadline(time.Now().Add(b.idle))
	return b.c.Read(p)
}

// replayConn is a connection handed to net/http: it reads the bytes the
// fast path already read first.
type replayConn struct {
	net.Conn
	pending []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// NetConn lets trackedOf find the tracked connection.
func (c *replayConn) NetConn() net.Conn { return c.Conn }

// connQueue is the net.Listener net/http serves handed-over connections
// from.
type connQueue struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

// push hands c to net/http; false when it is shut down (c is closed).
func (q *connQueue) push(c net.Conn) bool {
	select {
	case q.ch <- c:
		return true
	case <-q.done:
		c.Close()
		return true
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }
