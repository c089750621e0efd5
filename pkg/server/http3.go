package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/handoff-proxy/handoff/pkg/config"
)

// altSvcMaxAge is how long a client may remember that a listener serves
// HTTP/3 (RFC 7838 §3 "ma", in seconds): a day, as Caddy and nginx
// advertise; a client that finds UDP blocked falls back to TCP anyway.
const altSvcMaxAge = 86400

// http3Server serves HTTP/3 (RFC 9114) on the UDP sockets of an https
// listener with http3: true, with the same handler as its TCP side and
// certificates from the same store. It owns one quic.Transport per
// socket rather than letting http3.Server create them, so that a drain
// can stop accepting, let the open connections finish after GOAWAY, and
// then stop reading the socket: after an upgrade the new process reads
// the same socket, and every datagram this process still reads for a
// connection it does not know is lost to the new one.
//
// Handing a QUIC socket over is not as clean as a TCP one: both processes
// read the one socket while the old one drains, so each sees some of the
// other's datagrams and drops them (no stateless reset is sent, as no
// StatelessResetKey is set: RFC 9000 §10.3 would let a reset kill the
// other process's connection). QUIC's loss recovery retransmits them
// (RFC 9002), at the cost of some latency during the drain only.
type http3Server struct {
	srv *http3.Server
	trs []*quic.Transport
	lns []*quic.EarlyListener
	log *slog.Logger

	// inFlight counts requests in a handler, so that a drain can close
	// connections once none is left (see Shutdown).
	inFlight atomic.Int64
	// settle is how long after GOAWAY a drain waits for requests the
	// clients sent before they saw it. Zero means goawaySettle.
	settle time.Duration

	quiesce sync.Once
	// stop ends the graceful shutdown Quiesce started: the connections
	// still open are closed (H3_NO_ERROR).
	stop     context.Context
	stopNow  context.CancelFunc
	drained  chan struct{} // closed when the graceful shutdown returned
	closeTrs sync.Once
}

// http3Options is what an HTTP/3 server needs besides protocolOptions.
type http3Options struct {
	protocolOptions
	// pcs are the listener's UDP sockets; the caller keeps ownership.
	pcs []net.PacketConn
	// act counts QUIC connections for idle exit.
	act *activity
}

func newHTTP3Server(o http3Options) (*http3Server, error) {
	tlsConf := http3.ConfigureTLSConfig(&tls.Config{
		// RFC 9001 §4.2: QUIC requires TLS 1.3.
		MinVersion:     tls.VersionTLS13,
		GetCertificate: o.certs.get,
	})
	quicConf := &quic.Config{
		// RFC 9001 §9.2: 0-RTT data can be replayed; a proxy cannot tell
		// which requests of its upstreams are safe to replay.
		Allow0RTT:      false,
		MaxIdleTimeout: orDefault(o.cfg.Timeouts.Idle, 120*time.Second),
	}
	h := &http3Server{log: o.log, drained: make(chan struct{})}
	h.stop, h.stopNow = context.WithCancel(context.Background())
	maxHeader := o.cfg.Limits.MaxHeaderBytes
	if maxHeader == 0 {
		maxHeader = 64 << 10
	}
	next := stampListener(o.lc, nil, o.handler)
	h.srv = &http3.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.inFlight.Add(1)
			defer h.inFlight.Add(-1)
			next.ServeHTTP(w, r)
		}),
		MaxHeaderBytes: maxHeader,
		IdleTimeout:    orDefault(o.cfg.Timeouts.Idle, 120*time.Second),
		QUICConfig:     quicConf,
		Logger:         o.log,
		ConnContext: func(ctx context.Context, c *quic.Conn) context.Context {
			// Idle exit: an open QUIC connection is activity, like an
			// open TCP connection (connTracker).
			o.act.connOpened()
			context.AfterFunc(c.Context(), o.act.connClosed)
			return ctx
		},
	}
	for _, pc := range o.pcs {
		tr := &quic.Transport{Conn: pc}
		ln, err := tr.ListenEarly(tlsConf, quicConf)
		if err != nil {
			h.closeTransports()
			_ = tr.Close()
			return nil, fmt.Errorf("listen quic on %s: %w", pc.LocalAddr(), err)
		}
		h.trs = append(h.trs, tr)
		h.lns = append(h.lns, ln)
	}
	return h, nil
}

// Serve serves every socket until the server is shut down; it returns
// http.ErrServerClosed then, or the first other error.
func (h *http3Server) Serve() error {
	errs := make(chan error, len(h.lns))
	for _, ln := range h.lns {
		go func() { errs <- h.srv.ServeListener(ln) }()
	}
	var first error
	for range h.lns {
		if err := <-errs; first == nil && !errors.Is(err, http.ErrServerClosed) {
			first = err
		}
	}
	if first == nil {
		return http.ErrServerClosed
	}
	return first
}

// Quiesce stops accepting QUIC connections and sends GOAWAY on the open
// ones (RFC 9114 §5.2): requests already sent complete, a client opens a
// new connection for more (to the new process after an upgrade, to the
// next start after a stop). It returns at once; Shutdown waits.
func (h *http3Server) Quiesce() {
	h.quiesce.Do(func() {
		go func() {
			defer close(h.drained)
			if err := h.srv.Shutdown(h.stop); err != nil && !errors.Is(err, context.Canceled) {
				h.log.Debug("http3 shutdown", "error", err)
			}
		}()
		for _, ln := range h.lns {
			_ = ln.Close()
		}
	})
}

// goawaySettle is how long a drain waits after GOAWAY for requests that
// clients sent before it reached them (about one round trip) before it
// closes idle connections itself.
const goawaySettle = time.Second

// answerFlush is how long a drain waits after the last handler returned
// before it closes connections: long enough for QUIC to send (and resend
// once) the last responses on any network a client is on.
const answerFlush = 250 * time.Millisecond

// Shutdown waits until every request that was sent before GOAWAY is
// answered or ctx ends, then closes what is left and stops reading the
// sockets.
//
// Clients close a connection once GOAWAY came and their requests are
// answered (RFC 9114 §5.2), but that CONNECTION_CLOSE is sent once and
// not repeated: while a new process reads the same UDP socket after an
// upgrade, it may be the one that reads it, and the connection would stay
// open here until the idle timeout. So once no request is in flight after
// goawaySettle, the server closes the connections itself (H3_NO_ERROR).
func (h *http3Server) Shutdown(ctx context.Context) error {
	h.Quiesce()
	settle := h.settle
	if settle <= 0 {
		settle = goawaySettle
	}
	settled := time.NewTimer(settle)
	defer settled.Stop()
	tick := time.NewTicker(freshPoll)
	defer tick.Stop()
	var err error
	settledDown := false
	var idleSince time.Time
wait:
	for {
		select {
		case <-h.drained:
			break wait
		case <-ctx.Done():
			err = ctx.Err()
			break wait
		case <-settled.C:
			settledDown = true
		case now := <-tick.C:
			// A handler that returned has handed its response to
			// QUIC, which may not have sent all of it yet: closing the
			// connection then would cut the stream off. Wait until no
			// handler ran for answerFlush.
			switch {
			case h.inFlight.Load() != 0:
				idleSince = time.Time{}
			case idleSince.IsZero():
				idleSince = now
			}
		}
		if settledDown && !idleSince.IsZero() && time.Since(idleSince) >= answerFlush {
			break
		}
	}
	h.stopNow()
	<-h.drained
	h.closeTransports()
	return err
}

// Close ends every connection now and stops reading the sockets.
func (h *http3Server) Close() error {
	h.stopNow()
	err := h.srv.Close()
	h.Quiesce()
	<-h.drained
	h.closeTransports()
	return err
}

// closeTransports stops reading the sockets. It leaves them open: they
// belong to the caller (activation.Set), and after an upgrade another
// process reads them.
func (h *http3Server) closeTransports() {
	h.closeTrs.Do(func() {
		for _, tr := range h.trs {
			_ = tr.Close()
		}
		h.stopNow()
	})
}

// altSvc advertises HTTP/3 on port in every response of next (RFC 7838
// §3; RFC 9114 §3.1.1), for the TCP side of an http3 listener.
func altSvc(port int, next http.Handler) http.Handler {
	v := []string{`h3=":` + strconv.Itoa(port) + `"; ma=` + strconv.Itoa(altSvcMaxAge)}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Alt-Svc"] = v
		next.ServeHTTP(w, r)
	})
}

// http3Port is the UDP port of the first socket of pcs, for Alt-Svc.
func http3Port(pcs []net.PacketConn) int {
	if len(pcs) == 0 {
		return 0
	}
	if a, ok := pcs[0].LocalAddr().(*net.UDPAddr); ok {
		return a.Port
	}
	return 0
}

// startHTTP3 builds the HTTP/3 server of lc, if it has one, and serves it
// on a goroutine counted by serving; serve errors go to errc. It returns
// nil when lc serves no HTTP/3.
func (s *Server) startHTTP3(o protocolOptions, serving *sync.WaitGroup, errc chan<- error) (*http3Server, error) {
	pcs := s.opts.PacketConns[o.lc.Name]
	if !o.lc.HTTP3 || len(pcs) == 0 {
		return nil, nil
	}
	hs, err := newHTTP3Server(http3Options{protocolOptions: o, pcs: pcs, act: s.act})
	if err != nil {
		return nil, fmt.Errorf("listener %q: %w", o.lc.Name, err)
	}
	serving.Add(1)
	go func() {
		defer serving.Done()
		if err := hs.Serve(); serveErr(err, s.draining.Load()) {
			errc <- fmt.Errorf("listener %q (http3): %w", o.lc.Name, err)
		}
	}()
	return hs, nil
}

// tcpHandler is the handler of lc's TCP side: h, advertising HTTP/3 when
// lc serves it.
func (s *Server) tcpHandler(lc config.Listener, h http.Handler) http.Handler {
	if !lc.HTTP3 {
		return h
	}
	if port := http3Port(s.opts.PacketConns[lc.Name]); port != 0 {
		return altSvc(port, h)
	}
	return h
}

// checkPacketConns reports an http3 listener without a UDP socket.
func checkPacketConns(cfg *config.Config, pcs map[string][]net.PacketConn) error {
	for _, l := range cfg.Listeners {
		if l.HTTP3 && len(pcs[l.Name]) == 0 {
			return fmt.Errorf("server: no UDP socket for http3 listener %q", l.Name)
		}
	}
	return nil
}

// http3Summary names the UDP sockets of the http3 listeners for the
// "serving" log line, as "<name>-quic=h3://addr".
func (s *Server) http3Summary(cfg *config.Config) []string {
	var out []string
	for _, l := range cfg.Listeners {
		if !l.HTTP3 {
			continue
		}
		for _, pc := range s.opts.PacketConns[l.Name] {
			out = append(out, l.Name+config.QUICSuffix+"=h3://"+pc.LocalAddr().String())
		}
	}
	return out
}
