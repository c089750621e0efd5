package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/handoff-proxy/handoff/pkg/balance"
	"github.com/handoff-proxy/handoff/pkg/h1"
	"github.com/handoff-proxy/handoff/pkg/health"
	"github.com/handoff-proxy/handoff/pkg/reqinfo"
	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// FastRequest is a request the HTTP/1.1 fast path hands to a Fast
// forwarder: its parsed head in the client connection's buffer and its
// body.
type FastRequest struct {
	// Buf holds the head at Buf[:Head.Len].
	Buf  []byte
	Head *h1.Request
	// Peer is the client's address; TLS whether it came over TLS.
	Peer netip.Addr
	TLS  bool
	// Body is the rest of the body when it is not all in Buf: its
	// first Buffered bytes are Buf[Head.Len:Head.Len+len(Buffered)].
	// Reading it may fail with the client's error (a body read idle
	// timeout, a reset): that is the client's fault.
	Body     io.Reader
	Buffered []byte
	// Client receives the response.
	Client io.Writer
	// KeepAlive reports whether the client's connection may stay open
	// after the response.
	KeepAlive bool
	// Defer asks that a keep-alive response whole in one buffer (no
	// body, or a small one the target sent with its head) be left
	// unwritten in FastResult.Pending, for the caller to write and then
	// wait for the next request (package rawsock's WriteWait). It is
	// accounted as written.
	Defer bool
	// Info receives route, target, retries and request id; not nil.
	Info *reqinfo.Info
	// Scratch is a buffer the forwarder may grow and keep (returned in
	// FastResult) to build heads without allocating.
	Scratch []byte
	// Resp is where the response head is parsed; reused.
	Resp h1.Response

	// Kept across the requests of a connection, so that a request
	// allocates nothing: the exchange state, the Selector's eligibility
	// func bound to it, and the bytes of a generated request id.
	ex       exchange
	eligible func(*upstream.Target) bool
	fast     *Fast
	idBuf    [32]byte
	traceBuf [55]byte
	iov      net.Buffers // head and body for one writev(2)

	// A request net/http read (fastnet.go): the response goes to rw,
	// abort asks ServeHTTP to break the response off, and the head
	// written from the *http.Request lives in netBuf.
	rw       http.ResponseWriter
	proto    string // the client's protocol version in Via
	abort    bool
	net      *netState
	netBuf   []byte
	trailers []byte
	// While a net/http request's client is there (watch), cur is the
	// target connection in use, which its going away interrupts.
	canceled atomic.Bool
	cur      atomic.Pointer[h1Conn]
}

// FastResult is how a fast-path request ended.
type FastResult struct {
	// Status sent to the client; StatusClientClosedRequest (499) when
	// the client went away.
	Status int
	// Bytes of response body written.
	Bytes int64
	// Reusable reports whether the client connection may carry the
	// next request: the response was framed and written whole.
	Reusable bool
	Scratch  []byte
	// Pending is the response left for the caller to write (Defer).
	Pending []byte
}

// Fast forwards HTTP/1.1 requests of a Handler without net/http: the
// fast path of package server parses requests with package h1 and calls
// Serve for the routes whose upstream it can serve. The semantics are
// ServeHTTP's: forwarding fields, hop-by-hop removal, retries within the
// budget, health reports, one error→status map.
type Fast struct {
	h     *Handler
	conns *h1Conns
	// respTimeout bounds the wait for a response head.
	respTimeout time.Duration
	now         func() time.Time
	date        dateCache
	// buffers recycles body copy buffers; netReqs the FastRequests of
	// ServeHTTP.
	buffers sync.Pool
	netReqs sync.Pool
}

// Fast returns the fast-path forwarder of h, or nil when the upstream
// needs what only ServeHTTP does: TLS or h2c targets, a PROXY header per
// connection, a wait queue, hashing by header or cookie, 5xx retries
// (which hold a response), or a whole-request timeout.
func (h *Handler) Fast() *Fast { return h.fast }

func (h *Handler) newFast() *Fast {
	if h.queue != nil || h.timeout > 0 || h.policy.on5xx || h.ut.h1 == nil || h.ut.key.sendProxy != "" ||
		(h.hashKey.Source != "" && h.hashKey.Source != balance.HashKeyClientIP) {
		return nil
	}
	if h.pool.Resolving() {
		// Targets from DNS may change scheme-less entries at any time;
		// ServeHTTP serves them.
		return nil
	}
	for _, t := range h.pool.Targets() {
		if t.URL.Scheme != upstream.SchemeHTTP {
			return nil
		}
	}
	f := &Fast{h: h, conns: h.ut.h1, respTimeout: h.ut.respTimeout, now: time.Now}
	f.buffers.New = func() any { b := make([]byte, fastCopyBuffer); return &b }
	f.netReqs.New = newNetRequest
	return f
}

// fastCopyBuffer is the body copy buffer of the fast path: a 100 KiB
// body in two reads after the first (measured against 32 KiB).
const fastCopyBuffer = 64 << 10

// fastAttempt is how one try at a target went.
type fastAttempt struct {
	err           error
	connectFailed bool
	refused       bool
	// sentBody reports that body bytes were read from the client for
	// this attempt (a streamed body cannot be sent again).
	sentBody bool
	// unwritten reports that writing the head failed.
	unwritten bool
}

// Serve forwards req and writes the response to req.Client.
func (f *Fast) Serve(req *FastRequest) FastResult {
	h := f.h
	ex := &req.ex
	// One clock read serves the request: pooling, timeouts, Date.
	*ex = exchange{info: req.Info, now: f.now()}
	ex.tried = ex.triedA[:0]
	ex.id = requestIDOf(req)
	if req.rw != nil {
		// The request is pooled when the middleware around ServeHTTP
		// logs its id.
		ex.id = strings.Clone(ex.id)
	}
	req.Info.RequestID = ex.id
	ex.key = balance.Key{Client: f.client(req)}
	if req.eligible == nil {
		req.eligible = func(t *upstream.Target) bool {
			return !req.ex.hasTried(t) && t.HasRoom() && req.fast.h.health.Available(t)
		}
	}
	req.fast = f
	if max := h.maxBody; max > 0 && req.Head.ContentLength > max {
		return f.answer(req, ex, http.StatusRequestEntityTooLarge, "", false)
	}
	h.budget.request()
	t := f.pick(req)
	if t == nil {
		h.log.Warn("no upstream target", "upstream", h.pool.Name, "error", errNoTarget)
		h.obs.UpstreamError(h.pool.Name, "", KindNoTarget)
		return f.answer(req, ex, http.StatusServiceUnavailable, errNoTarget.Error(), true)
	}
	out := h.fwd.appendRequestHead(req.Scratch[:0], req, ex.id)
	req.Scratch = out
	same := 0
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			h.obs.Retry(h.pool.Name)
			req.Info.Retries++
			ex.now = f.now() // the failed attempt took its time
		}
		if same == 0 {
			ex.tried = append(ex.tried, t)
		}
		req.Info.Target = t.Address
		res, uc, a := f.send(req, t, out)
		if a.err == nil {
			h.health.Report(t, health.Result{Outcome: health.Success, Status: res.Status})
			var r FastResult
			if req.rw != nil {
				r = f.relayNet(req, res, uc, t)
			} else {
				r = f.relay(req, res, uc, t)
			}
			t.ReleaseSlot()
			return r
		}
		if req.gone() {
			// The client went away (fastnet.go): not the target's
			// fault, and nobody to answer.
			t.ReleaseSlot()
			req.Info.ClientGone = true
			return FastResult{Status: StatusClientClosedRequest, Scratch: req.Scratch}
		}
		if isLocalError(a.err) {
			t.ReleaseSlot()
			h.log.Error("out of a local resource, not the target's fault", "upstream", h.pool.Name, "target", t.Address, "error", a.err)
			h.obs.UpstreamError(h.pool.Name, t.Address, KindLocal)
			return f.answer(req, ex, http.StatusServiceUnavailable, "", true)
		}
		var bodyErr *requestBodyError
		if errors.As(a.err, &bodyErr) {
			t.ReleaseSlot()
			return f.answer(req, ex, statusFor(a.err), "", false)
		}
		next, again := f.afterFailure(req, ex, a, t, attempt, same)
		if again {
			same++
			time.Sleep(sameTargetDelay(same))
			continue
		}
		t.ReleaseSlot()
		if next == nil {
			err := a.err
			return f.answer(req, ex, statusFor(err), "", !a.sentBody)
		}
		t, same = next, 0
	}
}

// client is the address the Selector picks by (package clientip).
func (f *Fast) client(req *FastRequest) netip.Addr {
	tr := f.h.fwd.trusted
	if !tr.Contains(req.Peer) {
		return req.Peer
	}
	return tr.ClientIP(req.Peer, fieldValues(req, h1.KindXForwardedFor))
}

// pick selects an available target not tried yet and counts the request
// on it; the fast path serves only upstreams without max_conns.
func (f *Fast) pick(req *FastRequest) *upstream.Target {
	t := f.h.sel.Select(req.ex.key, req.eligible)
	if t != nil {
		t.AcquireSlot()
	}
	return t
}

// afterFailure reports the failed attempt a at t and decides what comes
// next, as roundTrip.afterFailure does for ServeHTTP.
func (f *Fast) afterFailure(req *FastRequest, ex *exchange, a fastAttempt, t *upstream.Target, attempt, same int) (next *upstream.Target, again bool) {
	h := f.h
	kind := kindOf(a.err, a.connectFailed)
	var may bool
	switch {
	case a.sentBody:
	case a.connectFailed:
		may = h.policy.onConnect
	case kind == KindTimeout:
		may = h.policy.onTimeout && fastIdempotent(req)
	}
	if may && attempt < h.policy.max {
		next = f.pick(req)
		again = next == nil && a.refused && same < h.policy.max
		if (next != nil || again) && !h.budget.withdraw() {
			if next != nil {
				next.ReleaseSlot()
			}
			next, again = nil, false
		}
	}
	if again {
		h.log.Debug("upstream connect failed, trying the same target again", "upstream", h.pool.Name, "target", t.Address, "error", a.err)
		return nil, true
	}
	h.health.Report(t, health.Result{Outcome: outcomeOf(kind, a.connectFailed)})
	h.log.Warn("upstream request failed", "upstream", h.pool.Name, "target", t.Address, "error", a.err, "retry", next != nil)
	h.obs.UpstreamError(h.pool.Name, t.Address, kind)
	return next, false
}

// fastIdempotent is idempotent for a parsed head.
func fastIdempotent(req *FastRequest) bool {
	if idempotentMethod(req.Head.Method.String(req.Buf)) {
		return true
	}
	for _, fl := range req.Head.Fields {
		if n := fl.Name.Bytes(req.Buf); h1.EqualFold(n, "idempotency-key") || h1.EqualFold(n, "x-idempotency-key") {
			return true
		}
	}
	return false
}

// send makes one attempt at t: a connection (idle or new), the head and
// the body written, the response head read. A reused connection that
// turns out closed before any byte of a response is replaced by a new
// one once, when the request can be sent again.
func (f *Fast) send(req *FastRequest, t *upstream.Target, head []byte) (*h1.Response, *h1Conn, fastAttempt) {
	addr := t.URL.Host
	uc := f.conns.get(addr, req.ex.now)
	for {
		reused := uc != nil
		if !reused {
			var err error
			if uc, err = f.conns.dial(addr); err != nil {
				var ne net.Error
				return nil, nil, fastAttempt{err: err, connectFailed: true, refused: !(errors.As(err, &ne) && ne.Timeout())}
			}
		}
		if req.watch(uc) {
			uc.c.Close()
			return nil, nil, fastAttempt{err: context.Canceled}
		}
		res, a := f.exchange(req, uc, head)
		if a.err == nil {
			return res, uc, a
		}
		uc.c.Close()
		// RFC 9112 §9.3.1: only an idempotent request is sent again
		// automatically, or one of which nothing was written.
		if reused && !a.sentBody && a.stale() && (a.unwritten || fastIdempotent(req)) {
			uc = nil
			req.ex.now = f.now()
			continue
		}
		return nil, nil, a
	}
}

// stale reports whether an attempt on a reused connection failed the way
// a connection the target had closed fails: reset or EOF before a byte of
// the response.
func (a fastAttempt) stale() bool {
	return errors.Is(a.err, io.EOF) || errors.Is(a.err, io.ErrUnexpectedEOF) || errors.Is(a.err, errStaleConn) ||
		errors.Is(a.err, net.ErrClosed) || isReset(a.err)
}

var errStaleConn = errors.New("connection closed by target before a response")

// exchange writes the request on uc and reads the response head.
func (f *Fast) exchange(req *FastRequest, uc *h1Conn, head []byte) (*h1.Response, fastAttempt) {
	var a fastAttempt
	bodyLeft := int64(0)
	if req.Head.ContentLength > 0 {
		bodyLeft = req.Head.ContentLength - int64(len(req.Buffered))
	}
	if bodyLeft == 0 && len(req.Buffered) == 0 && uc.br.Buffered() == 0 {
		// The common case, a request without a body: written, and the
		// response waited for, without a read(2) that cannot succeed yet.
		if a.err = f.awaitResponse(req, uc, req.ex.now); a.err != nil {
			return nil, a
		}
		if err := uc.s.WriteWait(head, nil); err != nil {
			a.err, a.unwritten = err, true
			return nil, a
		}
		return f.readResponse(req, uc, a)
	}
	// The head and the buffered body in one writev(2).
	if _, err := uc.s.Writev(head, req.Buffered, nil); err != nil {
		a.err, a.unwritten = err, true
		return nil, a
	}
	if bodyLeft > 0 {
		a.sentBody = true
		n, err := io.CopyN(uc.c, req.Body, bodyLeft)
		if err != nil {
			if n < bodyLeft && !isWriteErr(err) {
				err = &requestBodyError{err: err}
			}
			a.err = err
			return nil, a
		}
	}
	// From now: the body may have taken its time.
	if a.err = f.awaitResponse(req, uc, f.now()); a.err != nil {
		return nil, a
	}
	return f.readResponse(req, uc, a)
}

// awaitResponse starts the response header timeout at now, and fails
// with context.Canceled when the client of a request through ServeHTTP
// went away: nothing is waited for then.
func (f *Fast) awaitResponse(req *FastRequest, uc *h1Conn, now time.Time) error {
	if f.respTimeout > 0 {
		uc.armResponse(now, f.respTimeout)
	}
	if req.gone() {
		return context.Canceled
	}
	return nil
}

// readResponse reads the response head of an exchange whose request was
// written (the response header timeout stays armed: copyLength and
// copyStream clear it before they read a body from the socket).
func (f *Fast) readResponse(req *FastRequest, uc *h1Conn, a fastAttempt) (*h1.Response, fastAttempt) {
	res, err := readResponseHead(uc.br, req, func(b []byte) error {
		if req.rw != nil {
			informNet(req.rw, &req.Resp, b)
			return nil
		}
		_, err := req.Client.Write(b)
		return err
	})
	if err == nil && req.gone() {
		err = context.Canceled // the client left: the body is not read
	}
	if err != nil {
		a.err = err
		return nil, a
	}
	return res, a
}

// isWriteErr reports whether err came from writing to the target.
func isWriteErr(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "write"
}

func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// answer writes a short text response of the proxy's own and reports it.
// keepAlive false closes the client connection after it (the request's
// body may be unread).
func (f *Fast) answer(req *FastRequest, ex *exchange, code int, detail string, keepAlive bool) FastResult {
	if req.rw != nil {
		f.h.writeStatus(req.rw, ex, code, detail)
		return FastResult{Status: code, Scratch: req.Scratch}
	}
	msg := fmt.Sprintf("%d %s", code, http.StatusText(code))
	if detail != "" {
		msg += ": " + detail
	}
	msg += "\n"
	keepAlive = keepAlive && req.KeepAlive
	b := req.Scratch[:0]
	b = appendStatusLine(b, req.Head.Minor, code, nil)
	b = append(b, "Content-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nX-Request-Id: "...)
	b = append(b, ex.id...)
	b = append(b, "\r\nContent-Length: "...)
	b = fmt.Appendf(b, "%d\r\n", len(msg))
	b = f.date.appendTo(b, f.now())
	if !keepAlive && req.Head.Minor == 1 {
		b = append(b, "Connection: close\r\n"...)
	} else if keepAlive && req.Head.Minor == 0 {
		b = append(b, "Connection: keep-alive\r\n"...)
	}
	b = append(b, "\r\n"...)
	if !h1.BodyLess(isHead(req), code) {
		b = append(b, msg...)
	}
	_, err := req.Client.Write(b)
	res := FastResult{Status: code, Bytes: int64(len(msg)), Reusable: keepAlive && err == nil, Scratch: b}
	if err != nil {
		req.Info.ClientGone = true
		res.Status = StatusClientClosedRequest
	}
	return res
}

func isHead(req *FastRequest) bool { return req.Head.Method.String(req.Buf) == http.MethodHead }
