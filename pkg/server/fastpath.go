package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/handoff-proxy/handoff/pkg/accesslog"
	"github.com/handoff-proxy/handoff/pkg/clientip"
	"github.com/handoff-proxy/handoff/pkg/coalesce"
	"github.com/handoff-proxy/handoff/pkg/h1"
	"github.com/handoff-proxy/handoff/pkg/proxy"
	"github.com/handoff-proxy/handoff/pkg/rawsock"
	"github.com/handoff-proxy/handoff/pkg/reqinfo"
)

// fastServer serves HTTP/1.1 on a plain http listener without net/http:
// it reads each request head with package h1 (strict RFC 9112 parsing,
// exact head limits), and forwards the requests of plain proxy routes
// with proxy.Fast. A connection whose request needs anything else (h2c
// prior knowledge, an upgrade, 100-continue, a chunked body, a route
// with a cache, policy or rewrite, a target over TLS) is handed, with the
// bytes already read, to the net/http server of the same listener, which
// serves it from then on as it would have from the start.
type fastServer struct {
	srv  *Server
	name string // listener
	std  *httpServer
	q    *connQueue // net/http's listener of handed-over connections

	lim        h1.Limits
	readHeader time.Duration
	idle       time.Duration
	bodyIdle   time.Duration

	quiesced atomic.Bool
	// parker keeps idle connections without a goroutine (parking.go);
	// nil when epoll is not available (then a goroutine waits).
	parker atomic.Pointer[parker]
	mu     sync.Mutex
	conns  map[*fastConn]struct{}
	wg     sync.WaitGroup
	bufs   sync.Pool
	// h2bufs are the write buffers of handed-over HTTP/2 connections.
	h2bufs coalesce.Buffers
}

// defaultBodyIdle is how long a request body may pause between reads
// (nginx client_body_timeout 60s).
const defaultBodyIdle = 60 * time.Second

func newFastServer(o protocolOptions, std *httpServer) *fastServer {
	s := &fastServer{
		srv:        o.srv,
		name:       o.lc.Name,
		std:        std,
		lim:        h1.Limits{MaxHeadBytes: std.srv.MaxHeaderBytes, MaxFields: o.cfg.Limits.MaxHeaderFields},
		readHeader: std.srv.ReadHeaderTimeout,
		idle:       std.srv.IdleTimeout,
		bodyIdle:   orDefault(o.cfg.Timeouts.BodyRead, defaultBodyIdle),
		conns:      make(map[*fastConn]struct{}),
	}
	s.bufs.New = func() any { b := make([]byte, fastBufSize); return &b }
	// net/http reads up to MaxHeaderBytes+4096 bytes of head (its
	// initialReadLimitSize): make the limit the documented one on
	// connections handed over too.
	std.srv.MaxHeaderBytes = max(s.lim.MaxHeadBytes-4096, 1024)
	return s
}

// fastBufSize is the read buffer of a connection: a typical head and a
// small body in one read; longer heads grow it up to the limit.
const fastBufSize = 4 << 10

func (s *fastServer) Serve(ln net.Listener) error {
	s.q = newConnQueue(ln.Addr())
	if p, err := newParker(s.resume, s.expire); err == nil {
		s.parker.Store(p)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.std.srv.Serve(s.q) }()
	for {
		c, err := ln.Accept()
		if err != nil {
			s.q.Close()
			<-errc
			return err
		}
		s.wg.Add(1)
		go s.serveConn(c)
	}
}

// Quiesce makes connections close after their current response and
// closes those waiting for a next request.
func (s *fastServer) Quiesce() {
	s.quiesced.Store(true)
	s.std.Quiesce()
	// Parked connections first: once out of the epoll set, closing
	// them cannot hit a reused descriptor.
	s.closeParker()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.idle.Load() {
			c.c.Close()
		}
	}
}

func (s *fastServer) Shutdown(ctx context.Context) error {
	s.Quiesce()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return errors.Join(ctx.Err(), s.std.Shutdown(ctx))
	}
	return s.std.Shutdown(ctx)
}

func (s *fastServer) Close() error {
	s.closeParker()
	s.mu.Lock()
	for c := range s.conns {
		c.c.Close()
	}
	s.mu.Unlock()
	return s.std.Close()
}

// fastConn is one client connection served by the fast path.
type fastConn struct {
	c    net.Conn      // as accepted (tracked, capped): Close unregisters it
	raw  net.Conn      // underneath
	s    *rawsock.Conn // raw's reads and writes while serving (package rawsock)
	peer netip.Addr
	idle atomic.Bool // waiting for a next request
	req  proxy.FastRequest
	head h1.Request
	info reqinfo.Info
	body bodyReader
	bp   *[]byte // the pooled read buffer, nil while given back
	cur  served
	// wait is beforeWait bound to this connection (allocated once);
	// waited says that it ran: the connection waited for its next
	// request, with the read deadline set.
	wait   func() bool
	waited bool
}

func (s *fastServer) serveConn(c net.Conn) {
	fc := &fastConn{c: c, raw: c}
	if tc, ok := trackedOf(c); ok {
		fc.raw = tc.Conn
	}
	fc.s = rawsock.New(fc.raw)
	fc.wait = func() bool { return s.beforeWait(fc) }
	fc.peer = clientip.Peer(c.RemoteAddr().String())
	s.mu.Lock()
	s.conns[fc] = struct{}{}
	s.mu.Unlock()
	fc.bp = s.bufs.Get().(*[]byte)
	s.run(fc, (*fc.bp)[:0], true)
}

// Outcomes of readHead.
const (
	headRead   = iota // a request head is in the buffer
	headDone          // the connection is done
	headParked        // idle past idleHold: park waits for the next request
)

// run serves fc's requests on the calling goroutine (counted in s.wg)
// until the connection ends, is handed to net/http, or parks.
func (s *fastServer) run(fc *fastConn, buf []byte, first bool) {
	defer s.wg.Done()
	ends, handed := true, false
	defer func() {
		if ends {
			s.putBuf(fc, buf)
			s.finish(fc, handed)
		}
	}()
	for {
		var st int
		buf, st = s.readHead(fc, buf, first)
		switch st {
		case headDone:
			return
		case headParked:
			s.wg.Add(1)
			if p := s.parker.Load(); p == nil || p.park(fc, s.idle-idleHold) != nil {
				go s.park(fc)
			}
			ends = false
			return
		}
		first = false
		if !fc.eligible(buf) {
			handed = s.handOver(fc, buf)
			return
		}
		var next bool
		buf, next, handed = s.serveRequest(fc, buf)
		if !next || handed {
			return
		}
	}
}

// park waits for the next request of an idle connection on a new
// goroutine: the one that served requests exits, and with it the stack
// that serving grew, so that an idle connection costs a small stack and
// no buffer. The read deadline is the rest of the idle timeout.
func (s *fastServer) park(fc *fastConn) {
	var one [1]byte
	if n, _ := fc.raw.Read(one[:]); n == 0 {
		s.finish(fc, false)
		s.wg.Done()
		return
	}
	fc.idle.Store(false)
	fc.bp = s.bufs.Get().(*[]byte)
	buf := (*fc.bp)[:1]
	buf[0] = one[0]
	s.run(fc, buf, false)
}

// resume serves a parked connection whose socket became readable; it
// runs on the parker's goroutine, so it only starts the serving one.
func (s *fastServer) resume(fc *fastConn) {
	fc.bp = s.bufs.Get().(*[]byte)
	go s.run(fc, (*fc.bp)[:0], false)
}

// expire ends a parked connection (idle timeout, quiesce, close).
func (s *fastServer) expire(fc *fastConn) {
	s.finish(fc, false)
	s.wg.Done()
}

func (s *fastServer) closeParker() {
	if p := s.parker.Load(); p != nil {
		p.close()
	}
}

// finish unregisters fc and, unless net/http took it over, closes it.
func (s *fastServer) finish(fc *fastConn, handed bool) {
	s.mu.Lock()
	delete(s.conns, fc)
	s.mu.Unlock()
	if !handed {
		fc.c.Close()
	}
}

// h2Preface is the HTTP/2 connection preface (RFC 9113 §3.4).
var h2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

// readHead reads until buf holds a complete, acceptable request head
// (parsed into fc.head). It answers a malformed head itself.
func (s *fastServer) readHead(fc *fastConn, buf []byte, first bool) ([]byte, int) {
	fc.head.Reset()
	if len(buf) == 0 {
		// Wait for the next request without a deadline on reading the
		// head: the idle timeout, or for a new connection the header
		// timeout.
		wait := s.idle
		if first {
			wait = s.readHeader
		}
		fc.idle.Store(!first)
		if !first && s.quiesced.Load() {
			return buf, headDone
		}
		n, st := s.waitRequest(fc, buf, wait, !first)
		if st != headRead {
			return buf, st
		}
		fc.idle.Store(false)
		buf = buf[:n]
	}
	// The read header timeout is set once a head needs more than one
	// read: most arrive whole.
	deadline := false
	for {
		if first && bytes.HasPrefix(h2Preface, buf[:min(len(buf), len(h2Preface))]) {
			if len(buf) >= len(h2Preface) {
				return buf, headRead // eligible hands it over
			}
		} else {
			err := h1.ParseRequest(buf, &fc.head, s.lim)
			if err == nil {
				return buf, headRead
			}
			var he *h1.Error
			if errors.As(err, &he) {
				s.reject(fc, he)
				return buf, headDone
			}
		}
		if len(buf) == cap(buf) {
			buf = grow(buf, s.lim.MaxHeadBytes+1)
		}
		if !deadline {
			_ = fc.s.SetReadDeadline(time.Now().Add(s.readHeader))
			deadline = true
		}
		n, err := fc.s.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil && n == 0 {
			return buf, headDone
		}
	}
}

// idleHold is how long a kept-alive connection waits for its next
// request with its read buffer; after that it gives the buffer back and
// waits on one byte, so that idle connections cost little memory (a
// busy connection is never idle that long).
const idleHold = time.Second

// waitRequest waits up to wait for the first bytes of a request into
// buf and returns their count. A kept-alive connection idle for longer
// than idleHold gives its buffers back and parks instead.
func (s *fastServer) waitRequest(fc *fastConn, buf []byte, wait time.Duration, keptAlive bool) (int, int) {
	hold := wait
	if keptAlive && wait > idleHold {
		hold = idleHold
	}
	if !fc.waited { // else writeWait set it
		_ = fc.s.SetReadDeadline(time.Now().Add(hold))
	}
	fc.waited = false
	n, err := fc.s.Read(buf[:cap(buf)])
	switch {
	case n > 0:
		return n, headRead
	case hold == wait || !isTimeout(err):
		return 0, headDone
	}
	s.putBuf(fc, buf)
	// What a request grew is grown again by the next one, if any.
	fc.req.Scratch = nil
	fc.head.Fields = nil
	fc.req.Resp.Fields = nil
	_ = fc.raw.SetReadDeadline(time.Now().Add(wait - hold))
	return 0, headParked
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// putBuf returns the connection's read buffer to the pool when it is
// the pooled one (a head that outgrew it keeps its own until it ends).
func (s *fastServer) putBuf(fc *fastConn, buf []byte) {
	if fc.bp != nil && cap(buf) == fastBufSize {
		*fc.bp = buf[:0]
		s.bufs.Put(fc.bp)
	}
	fc.bp = nil
}

// grow returns buf with twice its capacity, at most max (and at least
// its length plus one).
func grow(buf []byte, max int) []byte {
	n := min(2*cap(buf), max)
	if n <= len(buf) {
		n = len(buf) + 1
	}
	nb := make([]byte, len(buf), n)
	copy(nb, buf)
	return nb
}

// reject answers a request head that cannot be accepted and counts and
// logs the answer like net/http's own answers.
func (s *fastServer) reject(fc *fastConn, he *h1.Error) {
	msg := http.StatusText(he.Status) + ": " + he.Reason + "\n"
	resp := "HTTP/1.1 " + strconv.Itoa(he.Status) + " " + http.StatusText(he.Status) +
		"\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\nContent-Length: " +
		strconv.Itoa(len(msg)) + "\r\n\r\n" + msg
	_ = fc.raw.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = io.WriteString(fc.raw, resp)
	s.srv.answeredByServer(fc.c, he.Status)
}

// eligible reports whether the fast path serves the parsed request in
// buf; anything else goes to net/http.
func (fc *fastConn) eligible(buf []byte) bool {
	h := &fc.head
	if h.Len == 0 { // the HTTP/2 preface
		return false
	}
	return !h.Upgrade && !h.Expect && !h.Chunked && h1.ValidOriginForm(h.Target.Bytes(buf)) &&
		string(h.Method.Bytes(buf)) != http.MethodConnect
}

// handOver gives the connection to net/http with the bytes read so far.
func (s *fastServer) handOver(fc *fastConn, buf []byte) bool {
	pending := bytes.Clone(buf)
	_ = fc.raw.SetReadDeadline(time.Time{})
	var c net.Conn = &replayConn{Conn: fc.c, pending: pending}
	if fc.head.Len == 0 {
		// HTTP/2 with prior knowledge: many streams share the
		// connection; their frames go out and come in together.
		c = coalesce.New(c, coalesce.Options{Buffers: &s.h2bufs})
	}
	return s.q.push(c)
}

// serveRequest serves the request parsed into fc.head, or hands the
// connection over when its route is not served by the fast path. It
// returns the buffer with what follows the request (pipelined bytes),
// whether the connection goes on, and whether it was handed over.
func (s *fastServer) serveRequest(fc *fastConn, buf []byte) ([]byte, bool, bool) {
	srv := s.srv
	g := srv.gens.acquire()
	fwd, rt := g.fastRoute(s.name, &fc.head, buf)
	if fwd == nil {
		g.release()
		return buf, false, s.handOver(fc, buf)
	}
	srv.handlers.Add(1)
	srv.act.requestStarted()
	if tc, ok := trackedOf(fc.c); ok && !tc.served.Load() {
		tc.served.Store(true)
	}
	srv.metrics.RequestStarted()
	fc.cur = served{g: g, buf: buf, start: srv.now()}

	h := &fc.head
	fc.info = reqinfo.Info{Route: rt.Name, Upstream: rt.Upstream}
	req := &fc.req
	req.Buf, req.Head, req.Peer, req.Client, req.Info = buf, h, fc.peer, fc.s, &fc.info
	req.KeepAlive = !h.Close && !s.quiesced.Load()
	req.Body, req.Buffered = nil, nil
	end := h.Len // where the next request starts
	if cl := h.ContentLength; cl > 0 {
		have := int64(len(buf) - h.Len)
		if have >= cl {
			req.Buffered = buf[h.Len : h.Len+int(cl)]
			end += int(cl)
		} else {
			req.Buffered = buf[h.Len:]
			fc.body = bodyReader{c: fc.s, idle: s.bodyIdle}
			req.Body = &fc.body
			end = len(buf)
		}
	}
	// With no pipelined request behind this one, the client's next
	// request is awaited right after the response is written (rawsock
	// WriteWait), without the read(2) that would find nothing yet.
	req.Defer = end == len(buf)
	res := fwd.Serve(req)
	req.Scratch = res.Scratch
	fc.cur.res = res
	if len(res.Pending) > 0 {
		s.writeWait(fc, res.Pending)
	}
	if fc.cur.g != nil { // not ended by beforeWait
		s.endRequest(fc)
	}
	if !fc.cur.res.Reusable {
		return buf, false, false
	}
	// Keep what follows the request: a pipelined next request.
	n := copy(buf[:cap(buf)], buf[end:])
	return buf[:n], true, false
}

// served is the request in progress on a fast-path connection, for the
// accounting that ends it.
type served struct {
	g     *generation // nil once endRequest released it
	buf   []byte
	start time.Time
	res   proxy.FastResult
}

// writeWait writes the last bytes of a response and waits for the next
// request. The request is accounted for (endRequest) between the two,
// once the write succeeded or failed: a keep-alive connection is idle
// (and Quiesce may close it) only once its response is written.
func (s *fastServer) writeWait(fc *fastConn, p []byte) {
	hold := min(s.idle, idleHold)
	_ = fc.s.SetReadDeadline(time.Now().Add(hold))
	if err := fc.s.WriteWait(p, fc.wait); err != nil {
		fc.cur.res.Status, fc.cur.res.Reusable = proxy.StatusClientClosedRequest, false
		fc.info.ClientGone = true
	}
}

// beforeWait is WriteWait's hook (fc.wait): the response is written.
func (s *fastServer) beforeWait(fc *fastConn) bool {
	s.endRequest(fc)
	if !fc.cur.res.Reusable {
		return false
	}
	fc.idle.Store(true)
	fc.waited = true
	return !s.quiesced.Load()
}

// endRequest counts, logs and releases the request in fc.cur.
func (s *fastServer) endRequest(fc *fastConn) {
	srv, cur := s.srv, &fc.cur
	srv.metrics.Request(fc.info.Route, fc.info.Upstream, cur.res.Status, cur.start, cur.res.Bytes)
	if cur.res.Status == http.StatusRequestTimeout {
		srv.metrics.BodyTimeout()
	}
	s.logAccess(cur.g, fc, cur.buf, cur.start, cur.res)
	srv.metrics.RequestDone()
	cur.g.release()
	cur.g = nil
	srv.act.requestDone()
	srv.handlers.Done()
}

// logAccess writes the access log record of a fast-path request.
func (s *fastServer) logAccess(g *generation, fc *fastConn, buf []byte, start time.Time, res proxy.FastResult) {
	if !g.accessLog || !g.fast.keep(res.Status) {
		return
	}
	lh := s.srv.opts.AccessLogger.Handler()
	if !accesslog.Enabled(lh, 0) {
		return
	}
	h := &fc.head
	ua, _ := fieldString(h, buf, "user-agent")
	ref, _ := fieldString(h, buf, "referer")
	proto := "HTTP/1.1"
	if h.Minor == 0 {
		proto = "HTTP/1.0"
	}
	host := ""
	if h.HasHost {
		host = h.Host.String(buf)
	}
	client := ""
	if fc.peer.IsValid() {
		client = fc.peer.String()
	}
	accesslog.Write(lh, 0, accesslog.Entry{
		Start: start, End: s.srv.now(), Client: client, Method: h.Method.String(buf), Host: host,
		URI: h.Target.String(buf), Proto: proto, Status: res.Status, Bytes: res.Bytes, Info: &fc.info,
		UserAgent: ua, Referer: ref,
	})
}

func fieldString(h *h1.Request, buf []byte, name string) (string, bool) {
	for _, f := range h.Fields {
		if h1.EqualFold(f.Name.Bytes(buf), name) {
			return f.Value.String(buf), true
		}
	}
	return "", false
}
