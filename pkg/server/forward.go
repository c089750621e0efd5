package server

import (
	"context"
	"net"
	"net/http"
	"sync"
)

// forwardServer serves a forward_proxy listener: HTTP/1.1 only (CONNECT
// tunnels take over the connection), on the tracked listener like the
// http protocol, so drain and idle exit count its connections. Tunnels
// are handlers that run until the tunnel ends, so drain waits for them
// (Server.handlers); Close ends them.
type forwardServer struct {
	srv     *http.Server
	tunnels *tunnelSet
}

func newForwardServer(o protocolOptions) *forwardServer {
	ts := &tunnelSet{conns: make(map[net.Conn]struct{})}
	srv := newNetHTTPServer(o, stampListener(o.lc, ts, o.handler))
	var p http.Protocols
	p.SetHTTP1(true)
	srv.Protocols = &p
	return &forwardServer{srv: srv, tunnels: ts}
}

func (f *forwardServer) Serve(ln net.Listener) error { return f.srv.Serve(ln) }
func (f *forwardServer) Quiesce()                    { f.srv.SetKeepAlivesEnabled(false) }
func (f *forwardServer) Shutdown(ctx context.Context) error {
	return f.srv.Shutdown(ctx)
}

// Close ends every connection now, tunnels included (http.Server.Close
// does not know hijacked connections).
func (f *forwardServer) Close() error {
	err := f.srv.Close()
	f.tunnels.closeAll()
	return err
}

// tunnelSet holds the client connections of a listener's open tunnels.
type tunnelSet struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func (t *tunnelSet) add(c net.Conn) func() {
	t.mu.Lock()
	t.conns[c] = struct{}{}
	t.mu.Unlock()
	return func() {
		t.mu.Lock()
		delete(t.conns, c)
		t.mu.Unlock()
	}
}

func (t *tunnelSet) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for c := range t.conns {
		_ = c.Close()
	}
}

// trackTunnel registers a tunnel with its listener's set
// (forwardproxy.Options.Track).
func trackTunnel(ctx context.Context, c net.Conn) func() {
	if st, ok := ctx.Value(listenerKey{}).(*listenerStamp); ok && st.tunnels != nil {
		return st.tunnels.add(c)
	}
	return func() {}
}
