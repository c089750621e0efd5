package proxy

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
	"syscall"

	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// attempt is how one try at a target went.
type attempt struct {
	res *http.Response
	err error
	// connectFailed reports whether no connection to the target could
	// be set up for the request (dial or TLS handshake failed): nothing
	// of it reached the target. It holds even when a pooled keep-alive
	// connection was handed out first and died, and the transport's own
	// re-dial then failed (http.Transport retries a replayable request
	// on a reused connection that the server had closed).
	connectFailed bool
	// refused reports whether the dial itself failed other than by
	// timing out (refused, reset, unreachable): a target that is still
	// starting, for which trying the same one again soon may work.
	refused bool
	// wroteAll reports whether the whole request, body included, was
	// written to the target (httptrace WroteRequest without error).
	wroteAll bool
}

// send makes one attempt at t; the caller holds t's slot.
func (h *Handler) send(out *http.Request, t *upstream.Target, body *bodyGuard) attempt {
	tr, scheme := h.ut.forScheme(t.URL.Scheme)
	var st attemptState
	ctx := httptrace.WithClientTrace(out.Context(), &httptrace.ClientTrace{
		TLSHandshakeDone: st.tlsHandshakeDone,
		WroteRequest:     st.wroteRequest,
	})
	req := out.WithContext(ctx)
	u := *out.URL
	u.Scheme, u.Host = scheme, t.URL.Host
	req.URL = &u
	if body != nil {
		req.Body = body
	}
	var (
		res *http.Response
		err error
	)
	if d := limitsFrom(out.Context()).ResponseHeader; d > 0 { // limits.go: per route
		res, err = roundTripWithin(tr, req, d)
	} else {
		res, err = tr.RoundTrip(req)
	}
	a := attempt{res: res, err: err, wroteAll: st.wrote.Load()}
	if err != nil {
		// A dial error can only come from a new connection, so it is
		// a connect failure whatever connection was tried before it.
		dial := isDialError(err)
		a.connectFailed = dial || st.tlsFailed.Load()
		var ne net.Error
		a.refused = dial && !(errors.As(err, &ne) && ne.Timeout())
	}
	return a
}

// attemptState records, from httptrace hooks that may run on the
// transport's goroutines, how far one attempt got.
type attemptState struct {
	tlsFailed atomic.Bool
	wrote     atomic.Bool
}

func (s *attemptState) tlsHandshakeDone(_ tls.ConnectionState, err error) {
	if err != nil {
		s.tlsFailed.Store(true)
	}
}

func (s *attemptState) wroteRequest(i httptrace.WroteRequestInfo) {
	s.wrote.Store(i.Err == nil)
}

// isLocalError reports whether err is a shortage of this machine's
// resources rather than a fault of the target: out of file descriptors
// (EMFILE, ENFILE: socket(2)), of buffer space or memory (ENOBUFS,
// ENOMEM), or of ephemeral ports (EADDRNOTAVAIL, EADDRINUSE: connect(2)).
// Such a failure must never eject a target: every target would fail the
// same way.
func isLocalError(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.EADDRNOTAVAIL, syscall.EADDRINUSE} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// idempotent reports whether r's method is idempotent (RFC 9110 §9.2.2),
// or the client declared it so with an Idempotency-Key
// (draft-ietf-httpapi-idempotency-key-header; X-Idempotency-Key is its
// older spelling).
func idempotent(r *http.Request) bool {
	if idempotentMethod(r.Method) {
		return true
	}
	_, ok := r.Header["Idempotency-Key"]
	_, xok := r.Header["X-Idempotency-Key"]
	return ok || xok
}

// idempotentMethod reports whether method is idempotent (RFC 9110
// §9.2.2); both the net/http path and the fast path ask it.
func idempotentMethod(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// canResendUnsent reports whether a request that never reached the target
// (a connect failure) may be sent elsewhere: whatever its method, as
// HAProxy's retry-on conn-failure, as long as its body was not read or
// can be had again.
func canResendUnsent(r *http.Request, body *bodyGuard) bool {
	return body == nil || body.n.Load() == 0 || r.GetBody != nil
}

// canResendSent reports whether a request the target may have acted on
// (it timed out or answered 5xx) may be sent again: only an idempotent
// one, and never one whose body was partly sent; a body that was sent
// whole needs GetBody to be sent again.
func canResendSent(r *http.Request, body *bodyGuard, a attempt) bool {
	if !idempotent(r) {
		return false
	}
	if body == nil || body.n.Load() == 0 {
		return true
	}
	return r.GetBody != nil && body.eof.Load() && a.wroteAll
}

// bodyGuard is the request body as the transport sees it: it counts what
// was read (a retry needs an unread body), marks read failures as the
// client's, and ignores Close, which the transport calls on failure but
// which must not end the body before a retry (ReverseProxy closes the real
// body when the request is done).
type bodyGuard struct {
	rc  io.ReadCloser
	n   atomic.Int64
	eof atomic.Bool
}

func (g *bodyGuard) Read(p []byte) (int, error) {
	n, err := g.rc.Read(p)
	g.n.Add(int64(n))
	switch {
	case err == io.EOF:
		g.eof.Store(true)
	case err != nil:
		err = &requestBodyError{err: err}
	}
	return n, err
}

func (g *bodyGuard) Close() error { return nil }
