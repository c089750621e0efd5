package proxy

import (
	"context"
	"net"
	"net/http"
	"net/netip"

	"github.com/handoff-proxy/handoff/pkg/l4"
)

// dialFunc is http.Transport.DialContext.
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// sendProxyDialer wraps dial so that each new connection to a target
// starts with a PROXY header (HAProxy's proxy-protocol.txt, version "v1"
// or "v2") naming the client of the request the connection is dialed for:
// the client address package clientip found (the peer, or the
// X-Forwarded-For entry of a trusted proxy), and the address that client
// connected to. The transport must not reuse such connections for other
// requests (buildTransport turns keep-alives off), since the header binds
// the connection to one client.
func sendProxyDialer(dial dialFunc, version string) dialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		src, dst := proxyAddrs(ctx, c)
		if err := l4.WriteHeader(c, version, src, dst); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
}

// proxyAddrs are the source and destination a PROXY header names for the
// request in ctx. Without one (a connection not dialed for a proxied
// request) they are the connection's own, as HAProxy does for its health
// checks.
func proxyAddrs(ctx context.Context, c net.Conn) (src, dst net.Addr) {
	src, dst = c.LocalAddr(), c.RemoteAddr()
	ex := exchangeFrom(ctx)
	if ex == nil || !ex.key.Client.IsValid() {
		return src, dst
	}
	client := netip.AddrPortFrom(ex.key.Client.Unmap(), 0)
	if peer, err := netip.ParseAddrPort(ex.in.RemoteAddr); err == nil && peer.Addr().Unmap() == client.Addr() {
		client = peer // the peer itself: its port is known too
		client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
	}
	local := netip.AddrPortFrom(netip.IPv6Unspecified(), 0)
	if la, ok := ex.in.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ap, err := netip.ParseAddrPort(la.String()); err == nil {
			local = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		}
	}
	// Both addresses of a header share a family (proxy-protocol.txt
	// §2.1): a client of the other family than the socket it came in on
	// (an X-Forwarded-For entry) names the wildcard of its own family as
	// destination. (A mapped v4 address would print as v4 in a v1 TCP6
	// line, which peers reject.)
	switch {
	case client.Addr().Is4() && !local.Addr().Is4():
		local = netip.AddrPortFrom(netip.IPv4Unspecified(), local.Port())
	case client.Addr().Is6() && !local.Addr().Is6():
		local = netip.AddrPortFrom(netip.IPv6Unspecified(), local.Port())
	}
	return net.TCPAddrFromAddrPort(client), net.TCPAddrFromAddrPort(local)
}
