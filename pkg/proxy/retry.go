package proxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"

	"github.com/handoff-proxy/handoff/pkg/health"
	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// retryingTransport is the Handler in its role as ReverseProxy's
// RoundTripper: it picks a target per attempt, sets the outgoing URL to
// it, and sends the request to another target after a connection failure.
type retryingTransport Handler

// RoundTrip sends out to a target of the pool. A failure to connect (dial
// or TLS handshake; no byte of the request was sent) is reported to Health
// (which ejects the target for FailTimeout) and, when the request may be
// repeated, is retried on a target not yet tried, up to the pool's
// Retries times.
func (rt *retryingTransport) RoundTrip(out *http.Request) (*http.Response, error) {
	h := (*Handler)(rt)
	ex := exchangeFrom(out.Context())
	var body *bodyGuard
	if out.Body != nil {
		body = &bodyGuard{rc: out.Body}
	}
	t := h.pick(ex)
	if t == nil {
		ex.logged = true
		h.log.Warn("no healthy upstream", "upstream", h.pool.Name)
		h.obs.UpstreamError(h.pool.Name, "", KindNoTarget)
		return nil, errNoTarget
	}
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			h.obs.Retry(h.pool.Name)
			if ex.info != nil {
				ex.info.Retries++
			}
		}
		ex.tried = append(ex.tried, t)
		if ex.info != nil {
			ex.info.Target = t.Address
		}

		res, connectFailed, err := h.send(out, t, body, ex)
		if err == nil {
			h.health.Report(t, health.Result{Outcome: health.Success, Status: res.StatusCode})
			return res, nil
		}
		if ex.client.Err() != nil {
			// The client went away: not the target's fault, and
			// nobody is waiting for a retry.
			return nil, fmt.Errorf("%w: %w", errClientGone, err)
		}
		var bodyErr *requestBodyError
		if errors.As(err, &bodyErr) || out.Context().Err() != nil {
			// A broken request body or our own RequestTimeout: the
			// target is not to blame either.
			return nil, err
		}
		kind := kindOf(err, connectFailed)
		h.health.Report(t, health.Result{Outcome: outcomeOf(kind, connectFailed)})
		// Pick the next target before logging, so that the log says
		// retry:true only when a retry really happens (with a single
		// target, or all tried, there is none: the access log's
		// retries must agree).
		var next *upstream.Target
		if connectFailed && attempt < h.retries && canRetry(out, body) {
			next = h.pick(ex)
		}
		ex.logged = true
		h.log.Warn("upstream request failed", "upstream", h.pool.Name, "target", t.Address, "error", err, "retry", next != nil)
		h.obs.UpstreamError(h.pool.Name, t.Address, kind)
		if next == nil {
			return nil, err
		}
		if body != nil && body.n.Load() > 0 {
			// Unreachable after a connect failure in practice; if
			// the transport read the body anyway, start over from
			// GetBody (canRetry checked it is set).
			rc, gerr := out.GetBody()
			if gerr != nil {
				return nil, err
			}
			body = &bodyGuard{rc: rc}
		}
		t = next
	}
}

// pick asks the Selector for a target that Health finds available and
// that this request has not tried yet; nil when there is none.
func (h *Handler) pick(ex *exchange) *upstream.Target {
	return h.sel.Select(ex.key, func(t *upstream.Target) bool {
		return !ex.hasTried(t) && h.health.Available(t)
	})
}

// outcomeOf maps a failure (see kindOf) to what Health hears. A connect
// failure is one even when it was a dial timeout.
func outcomeOf(kind string, connectFailed bool) health.Outcome {
	switch {
	case connectFailed:
		return health.ConnectFailed
	case kind == KindTimeout:
		return health.Timeout
	}
	return health.Failed
}

// send makes one attempt at t. connectFailed reports whether it failed
// before a connection to t was obtained (dial error or TLS handshake
// failure), which guarantees that no byte of the request was sent.
func (h *Handler) send(out *http.Request, t *upstream.Target, body *bodyGuard, ex *exchange) (res *http.Response, connectFailed bool, err error) {
	tr, scheme := h.ut.forScheme(t.URL.Scheme)
	var st attemptState
	ctx := httptrace.WithClientTrace(out.Context(), &httptrace.ClientTrace{
		GotConn:          st.gotConn,
		TLSHandshakeDone: st.tlsHandshakeDone,
	})
	req := out.WithContext(ctx)
	u := *out.URL
	u.Scheme, u.Host = scheme, t.URL.Host
	req.URL = &u
	if body != nil {
		req.Body = body
	}
	release := t.Acquire()
	res, err = tr.RoundTrip(req)
	if err != nil {
		release()
		connectFailed = !st.connected.Load() && (isDialError(err) || st.tlsFailed.Load())
		return nil, connectFailed, err
	}
	// ServeHTTP releases when it returns: after the body was copied, or
	// after the tunnel of an upgraded connection closed.
	ex.target, ex.release = t, release
	return res, false, nil
}

// attemptState records, from httptrace hooks that may run on the
// transport's goroutines, how far one attempt got.
type attemptState struct {
	connected atomic.Bool
	tlsFailed atomic.Bool
}

func (s *attemptState) gotConn(httptrace.GotConnInfo) { s.connected.Store(true) }

func (s *attemptState) tlsHandshakeDone(_ tls.ConnectionState, err error) {
	if err != nil {
		s.tlsFailed.Store(true)
	}
}

// canRetry reports whether r may be sent again: it has no body, or its
// method is idempotent (RFC 9110 §9.2.2), or it carries an Idempotency-Key
// (draft-ietf-httpapi-idempotency-key-header; X-Idempotency-Key is its
// older spelling); and its body was not consumed, or can be had again.
func canRetry(r *http.Request, body *bodyGuard) bool {
	if body == nil {
		return true
	}
	if body.n.Load() > 0 && r.GetBody == nil {
		return false
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	_, ok := r.Header["Idempotency-Key"]
	_, xok := r.Header["X-Idempotency-Key"]
	return ok || xok
}

// bodyGuard is the request body as the transport sees it: it counts what
// was read (a retry needs an unread body), marks read failures as the
// client's, and ignores Close, which the transport calls on failure but
// which must not end the body before a retry (ReverseProxy closes the real
// body when the request is done).
type bodyGuard struct {
	rc io.ReadCloser
	n  atomic.Int64
}

func (g *bodyGuard) Read(p []byte) (int, error) {
	n, err := g.rc.Read(p)
	g.n.Add(int64(n))
	if err != nil && err != io.EOF {
		err = &requestBodyError{err: err}
	}
	return n, err
}

func (g *bodyGuard) Close() error { return nil }
