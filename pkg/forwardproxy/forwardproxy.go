// Package forwardproxy is a forward (client-configured) HTTP proxy:
// absolute-form requests are sent to their origin (RFC 9112 §3.2.2) and
// CONNECT opens a TCP tunnel (RFC 9110 §9.3.6). It is not an open relay:
// CONNECT only reaches the allowed ports, and no connection of either
// kind reaches loopback, link-local (169.254.169.254, the cloud metadata
// service, included), unspecified or multicast addresses, or this host's
// own addresses, unless the destination allow list names them. The check
// runs on the address actually dialled (net.Dialer.Control), after name
// resolution, so a DNS name pointing at 127.0.0.1 cannot get around it.
//
// Who may use the proxy (access lists, authentication) is decided in
// front of it (package policy); it must not know config files or routes.
package forwardproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/handoff-proxy/handoff/pkg/access"
)

// ErrForbidden is wrapped by dial errors for a destination the proxy
// must not reach.
var ErrForbidden = errors.New("destination not allowed")

// Observer is told about tunnels.
type Observer interface {
	// Tunnel counts a CONNECT by result ("ok", "forbidden", "error") and,
	// for "ok", the bytes it carried each way once it ended.
	Tunnel(result string, up, down int64)
}

// Options configure a Handler.
type Options struct {
	// ConnectPorts CONNECT may reach. Empty means [443].
	ConnectPorts []int
	// Allow lists destinations reachable even though they are loopback,
	// link-local, unspecified or this host's; Deny lists more that are
	// not reachable. Deny wins.
	Allow, Deny []netip.Prefix
	// Own are this host's addresses. Nil means the addresses of every
	// interface (net.InterfaceAddrs) at New.
	Own []netip.Addr
	// DialTimeout bounds connecting to a destination. Zero means 10s.
	DialTimeout time.Duration
	// Track registers a tunnel's client connection so that shutdown can
	// wait for it and close it; the returned func unregisters it. Nil
	// means untracked.
	Track func(ctx context.Context, c net.Conn) func()
	// Logger gets errors; AccessLog one line per tunnel. Nil means none.
	Logger, AccessLog *slog.Logger
	Observer          Observer
}

// Handler serves forward-proxy requests.
type Handler struct {
	o      Options
	dialer *net.Dialer
	rp     *httputil.ReverseProxy
}

// New returns a Handler.
func New(o Options) *Handler {
	if len(o.ConnectPorts) == 0 {
		o.ConnectPorts = []int{443}
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	if o.Own == nil {
		o.Own = ownAddrs()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{o: o}
	h.dialer = &net.Dialer{Timeout: o.DialTimeout, Control: h.control}
	tr := &http.Transport{
		Proxy:                 nil, // never chain to another proxy from the environment
		DialContext:           h.dialer.DialContext,
		ForceAttemptHTTP2:     false,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
	}
	h.rp = &httputil.ReverseProxy{
		Rewrite:      func(*httputil.ProxyRequest) {}, // absolute URL kept; hop-by-hop (Proxy-Authorization) removed by ReverseProxy
		Transport:    tr,
		ErrorHandler: h.proxyError,
		ErrorLog:     slog.NewLogLogger(o.Logger.Handler(), slog.LevelDebug),
	}
	return h
}

func ownAddrs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out
}

// Allowed reports whether ip may be dialled.
func (h *Handler) Allowed(ip netip.Addr) bool {
	ip = ip.Unmap().WithZone("")
	if access.Contains(h.o.Deny, ip) {
		return false
	}
	if access.Contains(h.o.Allow, ip) {
		return true
	}
	if !ip.IsValid() || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast() {
		return false
	}
	return !slices.Contains(h.o.Own, ip)
}

// control runs on the resolved address just before connect(2).
func (h *Handler) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrForbidden, address)
	}
	if !h.Allowed(ap.Addr()) {
		return fmt.Errorf("%w: %s", ErrForbidden, ap.Addr())
	}
	return nil
}

// ServeHTTP serves CONNECT and absolute-form requests; anything else is
// 400 (this listener is not a web server).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		h.connect(w, r)
		return
	}
	if !r.URL.IsAbs() || r.URL.Host == "" || (r.URL.Scheme != "http" && r.URL.Scheme != "https") {
		http.Error(w, "this is a forward proxy: send absolute-form requests or CONNECT", http.StatusBadRequest)
		return
	}
	h.rp.ServeHTTP(w, r)
}

func (h *Handler) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(err)
	if r.Context().Err() != nil {
		status = 499
	}
	h.o.Logger.Debug("forward proxy request failed", "url", r.URL.String(), "error", err)
	if status != 499 {
		http.Error(w, http.StatusText(status), status)
	}
}

// statusOf maps a dial or transport error: 403 for a forbidden
// destination, 504 for a timeout, 502 otherwise.
func statusOf(err error) int {
	var ne net.Error
	switch {
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// connect opens a tunnel. The 200 is sent only once the destination
// answered the dial (an early 200 lies to the client and makes the proxy
// a blind relay).
func (h *Handler) connect(w http.ResponseWriter, r *http.Request) {
	host, portStr, err := net.SplitHostPort(r.Host)
	port, perr := strconv.Atoi(portStr)
	if err != nil || perr != nil || host == "" {
		http.Error(w, "CONNECT needs host:port", http.StatusBadRequest)
		return
	}
	if !slices.Contains(h.o.ConnectPorts, port) {
		h.observe("forbidden", 0, 0)
		http.Error(w, fmt.Sprintf("CONNECT to port %d is not allowed", port), http.StatusForbidden)
		return
	}
	start := time.Now()
	dst, err := h.dialer.DialContext(r.Context(), "tcp", r.Host)
	if err != nil {
		status := statusOf(err)
		result := "error"
		if status == http.StatusForbidden {
			result = "forbidden"
		}
		h.observe(result, 0, 0)
		h.o.Logger.Debug("CONNECT failed", "to", r.Host, "error", err)
		http.Error(w, http.StatusText(status), status)
		return
	}
	defer dst.Close()
	rc := http.NewResponseController(w)
	client, brw, err := rc.Hijack()
	if err != nil {
		http.Error(w, "CONNECT needs HTTP/1.1", http.StatusHTTPVersionNotSupported)
		return
	}
	defer client.Close()
	if h.o.Track != nil {
		defer h.o.Track(r.Context(), client)()
	}
	_ = client.SetDeadline(time.Time{})
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection Established\r\n\r\n"); err != nil {
		return
	}
	var src io.Reader = client
	if n := brw.Reader.Buffered(); n > 0 {
		src = io.MultiReader(io.LimitReader(brw.Reader, int64(n)), client)
	}
	up, down := splice(src, client, dst)
	h.observe("ok", up, down)
	if h.o.AccessLog != nil {
		h.o.AccessLog.Info("tunnel", "client", r.RemoteAddr, "to", r.Host, "remote", dst.RemoteAddr().String(),
			"bytes_up", up, "bytes_down", down, "duration_ms", time.Since(start).Milliseconds())
	}
}

func (h *Handler) observe(result string, up, down int64) {
	if h.o.Observer != nil {
		h.o.Observer.Tunnel(result, up, down)
	}
}

// splice copies both ways until both are done. Each direction half-closes
// its destination when its source ends (TCP FIN passed on), so protocols
// that close one side first still finish; when one side fails, both
// connections are closed.
func splice(src io.Reader, client, dst net.Conn) (up, down int64) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		up, _ = io.Copy(dst, src)
		closeWrite(dst)
	}()
	down, _ = io.Copy(client, dst)
	closeWrite(client)
	wg.Wait()
	return up, down
}

func closeWrite(c net.Conn) {
	type cw interface{ CloseWrite() error }
	if t, ok := c.(cw); ok {
		_ = t.CloseWrite()
		return
	}
	if u, ok := c.(interface{ NetConn() net.Conn }); ok {
		closeWrite(u.NetConn())
		return
	}
	_ = c.Close()
}
