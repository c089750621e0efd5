package server

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/handoff-proxy/handoff/pkg/coalesce"
	"github.com/handoff-proxy/handoff/pkg/config"
)

// protocolServer serves one listener's protocol on a net.Listener. There
// is one implementation per listener protocol (http and https here; the
// L4 tcp proxy plugs in the same way), so that drain, idle exit, reload and
// upgrade never depend on the protocol: connections are counted by the
// tracked listener underneath, not by the protocol server.
type protocolServer interface {
	// Serve accepts on ln until ln is closed. It returns nil or
	// net.ErrClosed/http.ErrServerClosed once the listener was closed,
	// any other error when serving failed.
	Serve(ln net.Listener) error
	drainable
}

// drainable is the part of a server that drain and shutdown use: every
// protocolServer, and the HTTP/3 server, which serves UDP sockets rather
// than a net.Listener (http3.go).
type drainable interface {
	// Quiesce asks open connections to end after their current exchange
	// (HTTP: keep-alive off, RFC 9112 §9.6); the server then waits for
	// connections that have not reached a handler (drain).
	Quiesce()
	// Shutdown waits until every connection is done or ctx ends.
	Shutdown(ctx context.Context) error
	// Close ends every connection now.
	Close() error
}

// protocolOptions is what a protocol server needs from the Server.
type protocolOptions struct {
	cfg     *config.Config
	lc      config.Listener
	handler http.Handler
	base    context.Context
	log     *slog.Logger
	certs   *certStore
	tracker *connTracker
	srv     *Server // l4: the generations and L4 metrics
}

// newProtocolServer returns the server for lc.Protocol.
func newProtocolServer(o protocolOptions) protocolServer {
	switch o.lc.Protocol {
	case config.ProtocolTCP:
		return newTCPServer(o) // l4.go
	case config.ProtocolReplicate:
		return newReplicateServer(o) // l4.go
	case config.ProtocolForwardProxy:
		return capConns(o.lc, newForwardServer(o)) // forward.go, conncap.go
	default: // config.ProtocolHTTP, config.ProtocolHTTPS: validated by config
		// policy.go: listener access; conncap.go: max_conns
		o.handler = stampListener(o.lc, nil, o.handler)
		if o.lc.Protocol == config.ProtocolHTTP && o.srv != nil && (o.lc.FastPath == nil || *o.lc.FastPath) {
			// fastpath.go: HTTP/1.1 without net/http where it can.
			return capConns(o.lc, newFastServer(o, newHTTPServer(o)))
		}
		return capConns(o.lc, newHTTPServer(o))
	}
}

// httpServer serves HTTP/1.1 and HTTP/2 (h2c prior knowledge on http,
// ALPN h2 on https) with net/http.
type httpServer struct {
	srv *http.Server
	tls bool
}

// newNetHTTPServer is the net/http server every HTTP-speaking listener
// protocol starts from: client timeouts and header limit from the config,
// connections registered with the tracker, requests under base.
func newNetHTTPServer(o protocolOptions, h http.Handler) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: orDefault(o.cfg.Timeouts.ReadHeader, 10*time.Second),
		IdleTimeout:       orDefault(o.cfg.Timeouts.Idle, 120*time.Second),
		MaxHeaderBytes:    o.cfg.Limits.MaxHeaderBytes,
		ConnState:         o.tracker.connState,
		ConnContext:       o.tracker.connContext,
		BaseContext:       func(net.Listener) context.Context { return o.base },
		ErrorLog:          slog.NewLogLogger(o.log.Handler(), slog.LevelDebug),
	}
	if srv.MaxHeaderBytes == 0 {
		srv.MaxHeaderBytes = 64 << 10
	}
	return srv
}

func newHTTPServer(o protocolOptions) *httpServer {
	lc := o.lc
	srv := newNetHTTPServer(o, o.handler)
	var p http.Protocols
	p.SetHTTP1(true)
	h := &httpServer{srv: srv}
	if lc.Protocol == config.ProtocolHTTPS {
		// RFC 9113 §3.2: HTTP/2 over TLS is negotiated with ALPN "h2".
		p.SetHTTP2(true)
		srv.TLSConfig = &tls.Config{
			MinVersion:     tlsVersion(lc.TLS),
			GetCertificate: o.certs.get,
			NextProtos:     serverNextProtos,
			GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
				if c, ok := hello.Conn.(*coalesce.Conn); ok && slices.Contains(hello.SupportedProtos, "h2") {
					// ALPN will choose h2 (serverNextProtos): many
					// streams share the connection (coalesce).
					c.Start()
				}
				return o.certs.forClient(hello) // certs.go: tls.client_auth
			},
		}
		h.tls = true
	} else {
		// RFC 9113 §3.3: HTTP/2 with prior knowledge on cleartext. The
		// Upgrade: h2c dance (RFC 7540 §3.2) is deliberately not offered:
		// it is removed from RFC 9113 and is a request-smuggling vector.
		p.SetUnencryptedHTTP2(true)
	}
	srv.Protocols = &p
	return h
}

func (h *httpServer) Serve(ln net.Listener) error {
	if h.tls {
		return h.srv.Serve(tls.NewListener(&coalescing{Listener: ln}, h.srv.TLSConfig))
	}
	return h.srv.Serve(ln)
}

// Quiesce closes idle HTTP/1 connections and makes busy ones close after
// their response; a client racing a request onto an idle one sees the
// close before any byte of a response and may retry it (RFC 9112 §9.3.1).
func (h *httpServer) Quiesce() { h.srv.SetKeepAlivesEnabled(false) }

func (h *httpServer) Shutdown(ctx context.Context) error { return h.srv.Shutdown(ctx) }

func (h *httpServer) Close() error { return h.srv.Close() }

func tlsVersion(t *config.ListenerTLS) uint16 {
	if t != nil && t.MinVersion == "1.3" {
		return tls.VersionTLS13
	}
	return tls.VersionTLS12
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// serveErr reports whether err from Serve is a real failure rather than
// the listener being closed on purpose.
func serveErr(err error, draining bool) bool {
	if err == nil || errors.Is(err, http.ErrServerClosed) {
		return false
	}
	return !(draining && errors.Is(err, net.ErrClosed))
}

// coalescing wraps the connections of a TLS listener in a coalesce.Conn
// whose writes go straight through until the handshake picks HTTP/2.
// Records are read whole by crypto/tls; no read buffer.
type coalescing struct {
	net.Listener
	bufs coalesce.Buffers
}

func (l *coalescing) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return coalesce.New(c, coalesce.Options{Later: true, ReadBuffer: -1, Buffers: &l.bufs}), nil
}
