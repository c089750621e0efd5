package server

import (
	"net"
	"net/netip"
	"sync"

	"github.com/handoff-proxy/handoff/pkg/clientip"
	"github.com/handoff-proxy/handoff/pkg/config"
)

// capConns wraps ps so that a listener holds at most lc.MaxConns open
// connections and at most lc.MaxConnsPerClient per peer address (the
// socket's peer: a connection cap cannot wait for a forwarding header).
// A connection over a cap is closed as soon as it is accepted, before a
// byte is read. Without caps ps is returned as is.
func capConns(lc config.Listener, ps protocolServer) protocolServer {
	if lc.MaxConns <= 0 && lc.MaxConnsPerClient <= 0 {
		return ps
	}
	return &connCap{protocolServer: ps, max: lc.MaxConns, perClient: lc.MaxConnsPerClient, per: make(map[netip.Addr]int)}
}

type connCap struct {
	protocolServer
	max, perClient int

	mu  sync.Mutex
	n   int
	per map[netip.Addr]int
}

func (c *connCap) Serve(ln net.Listener) error {
	return c.protocolServer.Serve(&cappedListener{Listener: ln, c: c})
}

// take reserves a slot for a connection from ip and reports whether one
// was free.
func (c *connCap) take(ip netip.Addr) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if (c.max > 0 && c.n >= c.max) || (c.perClient > 0 && c.per[ip] >= c.perClient) {
		return false
	}
	c.n++
	c.per[ip]++
	return true
}

func (c *connCap) release(ip netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n--
	if c.per[ip]--; c.per[ip] <= 0 {
		delete(c.per, ip)
	}
}

type cappedListener struct {
	net.Listener
	c *connCap
}

func (l *cappedListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := clientip.Peer(conn.RemoteAddr().String())
		if !l.c.take(ip) {
			_ = conn.Close()
			continue
		}
		return &cappedConn{Conn: conn, release: func() { l.c.release(ip) }}, nil
	}
}

type cappedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *cappedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// NetConn returns the connection underneath (the tracked one), as
// tls.Conn does, so that the tracker finds it.
func (c *cappedConn) NetConn() net.Conn { return c.Conn }

// trackedOf finds the tracked connection under c's wrappers (TLS, the
// connection caps).
func trackedOf(c net.Conn) (*trackedConn, bool) {
	for {
		if tc, ok := c.(*trackedConn); ok {
			return tc, true
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil, false
		}
		c = u.NetConn()
	}
}
