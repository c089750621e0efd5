package server

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/handoff-proxy/handoff/pkg/balance"
	"github.com/handoff-proxy/handoff/pkg/clientip"
	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/health"
	"github.com/handoff-proxy/handoff/pkg/l4"
	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// l4Upstream is what a tcp listener needs of one upstream of a
// generation: its pool, its selector and its health checker.
type l4Upstream struct {
	pool *upstream.Pool
	sel  balance.Selector
	hc   *health.Checker
}

// l4Upstream returns the upstream name of g for L4 connections.
func (g *generation) l4Upstream(name string) (l4Upstream, bool) {
	u, ok := g.l4[name]
	return u, ok
}

// Pick implements l4.Picker: the generation's selector picks among the
// targets its checker deems available and that have room; the dial's
// outcome goes to the checker (passive health), and the target counts
// the connection as in flight until it ends (least_conn, max_conns).
func (u l4Upstream) Pick(client netip.Addr, tried func(string) bool) (l4.Target, bool) {
	t := u.sel.Select(balance.Key{Client: client}, func(t *upstream.Target) bool {
		return !tried(t.URL.Host) && u.hc.Available(t) && t.HasRoom()
	})
	if t == nil {
		return l4.Target{}, false
	}
	release, ok := t.TryAcquire()
	if !ok {
		release = func() {}
	}
	return l4.Target{
		Address: t.URL.Host,
		Report: func(err error) {
			r := health.Result{Outcome: health.Success}
			if err != nil {
				r.Outcome = health.ConnectFailed
			}
			u.hc.Report(t, r)
		},
		Release: release,
	}, true
}

// acceptProxy wraps ln with the PROXY protocol reader when lc accepts it.
// It sits under the connection tracker, so that the tracked connection's
// RemoteAddr is the client the header names: logs, X-Forwarded-For,
// hashing and access rules all see it.
func acceptProxy(lc config.Listener, ln net.Listener) net.Listener {
	pp := lc.ProxyProtocol
	if pp == nil || !pp.Accept {
		return ln
	}
	trusted, _ := clientip.ParsePrefixes(pp.Trusted) // validated by config
	return l4.AcceptProxy(ln, l4.AcceptOptions{Trusted: trusted})
}

// l4Conns serves accepted connections of an L4 listener on goroutines it
// owns, counted so that Shutdown can wait for them, and caps them at
// max_conns.
type l4Conns struct {
	name     string
	maxConns int64
	open     atomic.Int64
	wg       sync.WaitGroup
	ctx      context.Context
	cancel   context.CancelFunc
	refused  func()
}

func newL4Conns(o protocolOptions) *l4Conns {
	ctx, cancel := context.WithCancel(o.base)
	return &l4Conns{name: o.lc.Name, maxConns: int64(o.lc.MaxConns), ctx: ctx, cancel: cancel}
}

// serve accepts on ln and runs handle for each connection.
func (s *l4Conns) serve(ln net.Listener, handle func(ctx context.Context, c net.Conn)) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		// An L4 connection is "served" at once: there is no request to
		// wait for, so drain must not hold it as fresh.
		if tc, ok := c.(*trackedConn); ok {
			tc.served.Store(true)
		}
		if s.maxConns > 0 && s.open.Load() >= s.maxConns {
			// A clear refusal: a reset now, not a connection that hangs.
			if tc, ok := c.(*trackedConn); ok {
				if raw, ok := tc.Conn.(interface{ SetLinger(int) error }); ok {
					_ = raw.SetLinger(0)
				}
			}
			_ = c.Close()
			if s.refused != nil {
				s.refused()
			}
			continue
		}
		s.open.Add(1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.open.Add(-1)
			handle(s.ctx, c)
		}()
	}
}

// Quiesce does nothing: a byte stream has no point at which it could be
// asked to end; established connections run until they end or Shutdown's
// deadline.
func (s *l4Conns) Quiesce() {}

// Shutdown waits for every connection to end, or ctx.
func (s *l4Conns) Shutdown(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close ends every connection now and waits for their goroutines.
func (s *l4Conns) Close() error {
	s.cancel()
	s.wg.Wait()
	return nil
}

// tcpServer relays a tcp listener's connections to its upstream. Each
// connection picks its target on the generation current at accept time
// and holds that generation until it ends, so a reload never moves or
// cuts an established connection.
type tcpServer struct {
	*l4Conns
	srv   *Server
	proxy *l4.Proxy
}

func newTCPServer(o protocolOptions) protocolServer {
	lc := o.lc
	connect := lc.ConnectTimeout
	if up, ok := o.cfg.Upstreams[lc.Upstream]; ok && connect <= 0 {
		connect = up.Timeouts.Dial
	}
	var mirrors []string
	var mbuf int64
	sendProxy := ""
	if lc.Mirror != nil {
		for _, t := range lc.Mirror.Targets {
			mirrors = append(mirrors, t.Address)
		}
		mbuf, _ = config.ParseBytes(lc.Mirror.Buffer)
	}
	if lc.ProxyProtocol != nil {
		sendProxy = lc.ProxyProtocol.Send
	}
	s := &tcpServer{l4Conns: newL4Conns(o), srv: o.srv}
	s.proxy = l4.NewProxy(l4.ProxyOptions{
		Listener:       lc.Name,
		ConnectTimeout: connect,
		IdleTimeout:    lc.IdleTimeout,
		SendProxy:      sendProxy,
		Mirrors:        mirrors,
		MirrorBuffer:   int(mbuf),
		Observer:       o.srv.l4m,
		Logger:         o.log,
	})
	s.refused = func() { o.srv.l4m.ConnDone(lc.Name, l4.ConnStats{Result: "max_conns"}) }
	return s
}

func (s *tcpServer) Serve(ln net.Listener) error {
	name := s.name
	return s.serve(ln, func(ctx context.Context, c net.Conn) {
		g := s.srv.gens.acquire()
		defer g.release()
		up, ok := g.l4Upstream(g.listenerUpstream(name))
		if !ok {
			_ = c.Close()
			return
		}
		_ = s.proxy.ServeConn(ctx, c, up)
	})
}

// Close ends every connection and waits for the mirrors.
func (s *tcpServer) Close() error {
	err := s.l4Conns.Close()
	s.proxy.Wait()
	return err
}

// listenerUpstream is the upstream the listener name relays to in g's
// config (a reload may point it elsewhere).
func (g *generation) listenerUpstream(name string) string {
	for _, l := range g.cfg.Listeners {
		if l.Name == name {
			return l.Upstream
		}
	}
	return ""
}

// replicateServer serves a replicate listener.
type replicateServer struct {
	*l4Conns
	rep *l4.Replicator
}

func newReplicateServer(o protocolOptions) protocolServer {
	lc := o.lc
	var ins, outs []l4.Peer
	for _, p := range lc.Inputs {
		if x, err := l4.ParsePeer(p); err == nil { // validated by config
			ins = append(ins, x)
		}
	}
	for _, p := range lc.Outputs {
		if x, err := l4.ParsePeer(p); err == nil {
			outs = append(outs, x)
		}
	}
	buf, _ := config.ParseBytes(lc.Buffer)
	return &replicateServer{l4Conns: newL4Conns(o), rep: l4.NewReplicator(l4.ReplicatorOptions{
		Listener: lc.Name, Inputs: ins, Outputs: outs, Buffer: int(buf),
		Observer: o.srv.l4m, Logger: o.log,
	})}
}

func (s *replicateServer) Serve(ln net.Listener) error {
	return s.serve(ln, func(ctx context.Context, c net.Conn) { _ = s.rep.ServeConn(ctx, c) })
}
