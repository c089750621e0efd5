// Package proxy owns the HTTP forwarding of a request to one upstream pool:
// picking a target through a Selector, capping requests per target with
// a bounded wait queue, retrying connect failures, timeouts and 5xx
// answers within a retry budget, rewriting forwarding headers (X-Forwarded-*, RFC 7239
// Forwarded, Via, X-Request-Id), refusing h2c smuggling, streaming bodies,
// trailers and upgraded connections both ways, mapping failures to 502,
// 503 or 504, and the connection pools towards targets (Transports).
//
// It is built on net/http/httputil.ReverseProxy with a Rewrite func and a
// retrying RoundTripper.
//
// It must not know how a request was routed (package route), how a target
// is chosen (package balance, behind Selector), whether a target is
// healthy (package health, behind Health), how metrics are kept (behind
// Observer) or how the access log is written (it fills reqinfo.Info for
// that).
//
// Not supported: WebSocket over HTTP/2 from clients (RFC 8441 extended
// CONNECT; Go's server does not enable it by default, and CONNECT is
// answered 501), and upgrades towards h2c:// targets (HTTP/2 has no
// Upgrade; such requests get 502).
package proxy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/handoff-proxy/handoff/pkg/balance"
	"github.com/handoff-proxy/handoff/pkg/clientip"
	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/health"
	"github.com/handoff-proxy/handoff/pkg/reqinfo"
	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// Selector picks one target of the pool for a request, among those for
// which eligible returns true; nil when none is. k is the request's
// client address (from package clientip) and hash-key value (from
// balance.HashKey.FromRequest), extracted once per request. eligible
// skips unavailable targets and those already tried for this request; it
// does not call back into the Selector. Package balance implements it;
// each Selector is built for one pool.
type Selector interface {
	Select(k balance.Key, eligible func(*upstream.Target) bool) *upstream.Target
}

// Health decides whether a target may be tried and hears the outcome of
// every attempt. Both methods are called on request goroutines and must be
// safe for concurrent use and fast. A client that went away, a broken
// request body or the request's own timeout never produce a report.
// Package health implements it.
type Health interface {
	// Available reports whether t may be picked now.
	Available(t *upstream.Target) bool
	// Report records the outcome of one attempt at t.
	Report(t *upstream.Target, r health.Result)
}

// Observer is told about retries and upstream failures, for metrics. The
// methods are called on request goroutines and must be safe for concurrent
// use and fast. A client that went away never produces a call.
type Observer interface {
	// Retry reports that a request to upstream is sent again (see
	// config.Upstream.RetryOn).
	Retry(upstream string)
	// UpstreamError reports a failure of target (its configured address;
	// empty for KindNoTarget) of upstream; kind is one of the Kind
	// constants.
	UpstreamError(upstream, target, kind string)
}

type nopObserver struct{}

func (nopObserver) Retry(string)                         {}
func (nopObserver) UpstreamError(string, string, string) {}

// Options configure a Handler.
type Options struct {
	// Pool is the upstream pool requests are sent to. Required.
	Pool *upstream.Pool
	// Upstream is the pool's configuration: timeouts, TLS, retries,
	// retry_on, retry_budget, queue, fail timeout and, for the hash
	// strategy, the hash key (max_conns is in Pool's targets, see
	// PoolSpec). Zero values mean
	// the defaults config.ApplyDefaults gives.
	Upstream config.Upstream
	// Selector picks targets of Pool. Required.
	Selector Selector
	// Health decides which targets are available and hears the outcome
	// of every attempt. Nil means a health.Checker with the passive rule
	// and Upstream.FailTimeout, using Now.
	Health Health
	// Transports provides the connection pools; shared by all handlers and
	// owned by the caller, who closes it. Required.
	Transports *Transports
	// TrustedProxies are the peers whose X-Forwarded-* and Forwarded
	// chains are kept (when well-formed) and extended; from other peers
	// they are replaced. Via and X-Request-Id are end-to-end and kept from
	// anyone. Empty means trust nobody.
	TrustedProxies []netip.Prefix
	// Via is the pseudonym this proxy adds to Via (RFC 9110 §7.6.3); it
	// must be a token. Empty means "handoff".
	Via string
	// Logger receives upstream errors at warn. Nil discards.
	Logger *slog.Logger
	// Observer is told about retries and upstream errors. Nil means none.
	Observer Observer
	// Now returns the current time, for the default Health. Nil means
	// time.Now.
	Now func() time.Time
	// MaxRequestBody bounds request bodies in bytes; a larger body gets
	// 413, detected while streaming (the body is never buffered). Zero
	// means unlimited.
	MaxRequestBody int64
	// RequestTimeout bounds the whole request, response body included.
	// Zero means no limit, so streams and WebSockets are not cut.
	RequestTimeout time.Duration
	// BodyReadTimeout bounds the pause between two reads of a request
	// body (nginx client_body_timeout); the client then gets 408. Zero
	// means no limit.
	BodyReadTimeout time.Duration
}

// Handler forwards requests to one upstream pool. It is an http.Handler,
// safe for concurrent use, and holds no goroutines of its own: the
// connection pools belong to Transports.
type Handler struct {
	pool     *upstream.Pool
	sel      Selector
	health   Health
	hashKey  balance.HashKey // extracted per request for the Selector
	ut       *upstreamTransport
	fwd      forwarding
	log      *slog.Logger
	obs      Observer
	maxBody  int64
	timeout  time.Duration
	bodyIdle time.Duration
	policy   retryPolicy
	budget   *retryBudget
	queue    *waitQueue // nil when no target has max_conns
	rp       *httputil.ReverseProxy
	// fast forwards what ReverseProxy is not needed for (fastnet.go);
	// nil when the upstream needs it for everything (Fast).
	fast *Fast
}

// New returns a Handler for o.Pool, taking its transports from
// o.Transports (built on first use, see Transports.Update).
func New(o Options) (*Handler, error) {
	switch {
	case o.Pool == nil:
		return nil, errors.New("new proxy: no pool")
	case o.Selector == nil:
		return nil, fmt.Errorf("new proxy for %q: no selector", o.Pool.Name)
	case o.Transports == nil:
		return nil, fmt.Errorf("new proxy for %q: no transports", o.Pool.Name)
	}
	via := o.Via
	if via == "" {
		via = "handoff"
	}
	if !httpguts.ValidHeaderFieldName(via) {
		return nil, fmt.Errorf("new proxy for %q: via pseudonym %q is not a token", o.Pool.Name, via)
	}
	cfg := withDefaults(o.Upstream)
	ut, err := o.Transports.get(o.Pool.Name, cfg)
	if err != nil {
		return nil, fmt.Errorf("new proxy: %w", err)
	}
	h := &Handler{
		pool:     o.Pool,
		sel:      o.Selector,
		health:   o.Health,
		ut:       ut,
		fwd:      forwarding{trusted: clientip.NewTrusted(o.TrustedProxies), via: via},
		log:      o.Logger,
		obs:      o.Observer,
		maxBody:  o.MaxRequestBody,
		timeout:  o.RequestTimeout,
		bodyIdle: o.BodyReadTimeout,
		policy:   newRetryPolicy(cfg),
	}
	ratio, err := health.ParsePercent(cfg.RetryBudget)
	if err != nil {
		return nil, fmt.Errorf("new proxy for %q: retry_budget: %w", o.Pool.Name, err)
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	h.budget = newRetryBudget(ratio, now)
	for _, t := range o.Pool.Targets() {
		// A pool that looks its targets up may have none yet: the
		// configured caps say whether any will have one.
		if t.MaxConns > 0 || anyMaxConns(cfg) {
			h.queue = &waitQueue{size: int64(cfg.Queue.Size), timeout: cfg.Queue.Timeout, freed: make(chan struct{}, 1)}
			break
		}
	}
	if cfg.Strategy == balance.StrategyHash {
		// Other strategies ignore the hash key, and validation only
		// warns about one they ignore: parse it only when it is used.
		if h.hashKey, err = balance.ParseHashKey(cfg.HashKey); err != nil {
			return nil, fmt.Errorf("new proxy for %q: %w", o.Pool.Name, err)
		}
	}
	if h.health == nil {
		h.health = health.New(health.Options{Upstream: o.Pool.Name, Pool: o.Pool, FailTimeout: cfg.FailTimeout, Now: o.Now})
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.obs == nil {
		h.obs = nopObserver{}
	}
	h.rp = &httputil.ReverseProxy{
		Rewrite:        h.rewrite,
		Transport:      (*retryingTransport)(h),
		ModifyResponse: h.modifyResponse,
		ErrorHandler:   h.handleError,
		// What ReverseProxy logs itself (copy errors) is reported by
		// us with more context; keep its own lines at debug.
		ErrorLog:   slog.NewLogLogger(h.log.Handler(), slog.LevelDebug),
		BufferPool: newBufferPool(),
	}
	h.fast = h.newFast()
	return h, nil
}

// anyMaxConns reports whether u or one of its targets sets max_conns.
func anyMaxConns(u config.Upstream) bool {
	if u.MaxConns > 0 {
		return true
	}
	for _, t := range u.Targets {
		if t.MaxConns > 0 {
			return true
		}
	}
	return false
}

// PoolSpec returns what package upstream needs to build the pool of u:
// each target's address or SRV name, weight and max_conns (its own, else
// the upstream's), and how its host names are looked up.
func PoolSpec(u config.Upstream) upstream.PoolSpec {
	spec := upstream.PoolSpec{
		Strategy:      u.Strategy,
		Targets:       make([]upstream.TargetSpec, 0, len(u.Targets)),
		ResolveEvery:  u.ResolveEvery,
		Resolver:      u.Resolver,
		TLSServerName: u.TLS.ServerName,
	}
	for _, t := range u.Targets {
		spec.Targets = append(spec.Targets, upstream.TargetSpec{Address: t.Address, SRV: t.SRV, Weight: t.Weight, MaxConns: cmp.Or(t.MaxConns, u.MaxConns)})
	}
	return spec
}

// withDefaults returns u with every zero value that means a default
// replaced by it, from config.ApplyDefaults, the one place defaults live:
// a hand-built config behaves as a loaded one.
func withDefaults(u config.Upstream) config.Upstream {
	c := config.Config{Upstreams: map[string]config.Upstream{"": u}}
	c.ApplyDefaults()
	return c.Upstreams[""]
}

// exchange is the per-request state shared by ServeHTTP, the Rewrite
// func, the retrying transport, ModifyResponse and the error handler. It
// travels in the request context.
type exchange struct {
	key     balance.Key     // what the Selector picks by
	in      *http.Request   // as the router passed it
	client  context.Context // the client's context, before RequestTimeout
	info    *reqinfo.Info   // nil when the router set none
	id      string          // X-Request-Id forwarded
	tried   []*upstream.Target
	triedA  [4]*upstream.Target
	target  *upstream.Target // the target that answered
	release func()           // ends the in-flight count of target
	logged  bool             // the final error was already logged
	resBody *watchedBody     // nil for upgrades and errors
	now     time.Time        // when Fast began serving the request
}

type exchangeKey struct{}

func exchangeFrom(ctx context.Context) *exchange {
	ex, _ := ctx.Value(exchangeKey{}).(*exchange)
	return ex
}

func (ex *exchange) hasTried(t *upstream.Target) bool {
	for _, x := range ex.tried {
		if x == t {
			return true
		}
	}
	return false
}

// ServeHTTP forwards r to a target of the pool. When the response body
// breaks off mid-stream it panics with http.ErrAbortHandler (as
// ReverseProxy does, so the client sees a truncated response rather than a
// complete one); middleware that logs must do so in a defer.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.fast != nil && h.fast.ServeHTTP(w, r) {
		return
	}
	ex := &exchange{in: r, client: r.Context(), info: reqinfo.From(r.Context()), id: requestID(r.Header)}
	ex.key = balance.Key{
		Client: h.fwd.trusted.ClientIP(clientip.Peer(r.RemoteAddr), r.Header[hdrXForwardedFor]),
		Hash:   h.hashKey.FromRequest(r),
	}
	ex.tried = ex.triedA[:0]
	if ex.info != nil {
		ex.info.RequestID = ex.id
	}
	if r.Method == http.MethodConnect {
		// RFC 9110 §9.3.6: CONNECT asks for a tunnel, which a reverse
		// proxy does not offer (nor RFC 8441 extended CONNECT).
		h.writeStatus(w, ex, http.StatusNotImplemented, "")
		return
	}
	body := r.Body
	maxBody, timeout := h.maxBody, h.timeout
	if l := limitsFrom(r.Context()); l != (Limits{}) { // limits.go: per route
		maxBody, timeout = cmp.Or(l.MaxRequestBody, maxBody), cmp.Or(l.RequestTimeout, timeout)
	}
	if maxBody > 0 {
		if r.ContentLength > maxBody {
			h.writeError(w, ex, &http.MaxBytesError{Limit: maxBody})
			return
		}
		if body != nil && body != http.NoBody {
			body = http.MaxBytesReader(w, body, maxBody)
		}
	}
	if h.bodyIdle > 0 && body != nil && body != http.NoBody {
		body = &idleBody{ReadCloser: body, rc: http.NewResponseController(w), idle: h.bodyIdle}
	}
	ctx := context.WithValue(r.Context(), exchangeKey{}, ex)
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	out := r.WithContext(ctx)
	out.Body = body
	defer h.finish(ex)
	h.rp.ServeHTTP(w, out)
}

// finish releases the target and, when ReverseProxy aborted a response
// mid-body, records whose fault it was before letting the panic go on.
func (h *Handler) finish(ex *exchange) {
	if ex.release != nil {
		ex.release()
	}
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler && ex.info != nil {
		// The copy failed either reading from the target or writing
		// to the client; a clean upstream read means the client went
		// away.
		upstreamFailed := ex.resBody != nil && ex.resBody.err != nil
		if ex.client.Err() != nil || !upstreamFailed {
			ex.info.ClientGone = true
		}
	}
	panic(v)
}

// rewrite is the ReverseProxy Rewrite func. ReverseProxy has already
// removed hop-by-hop headers (RFC 9110 §7.6.1) and the incoming
// forwarding headers from pr.Out; the target URL is set per attempt by the
// retrying transport. pr.Out keeps the client's Host (like Caddy and
// HAProxy).
func (h *Handler) rewrite(pr *httputil.ProxyRequest) {
	ex := exchangeFrom(pr.In.Context())
	stripH2CUpgrade(pr.In.Header, pr.Out.Header)
	h.fwd.apply(pr.Out.Header, pr.In, ex.id)
	// Share the inbound trailer map: the server fills its values when the
	// body reaches EOF, which is when the transport writes them, whereas
	// ReverseProxy's clone only has the declared names.
	if pr.In.Trailer != nil {
		pr.Out.Trailer = pr.In.Trailer
	}
}

// modifyResponse adds this proxy to the response's Via (RFC 9110 §7.6.3),
// sets the X-Request-Id the request was forwarded with, keeps declared
// trailers deliverable, and watches the body for upstream failures.
func (h *Handler) modifyResponse(res *http.Response) error {
	ex := exchangeFrom(res.Request.Context())
	via := viaEntry(res.ProtoMajor, res.ProtoMinor, h.fwd.via)
	if prior := res.Header[hdrVia]; len(prior) > 0 {
		via = joinListElements(prior) + ", " + via
	}
	res.Header[hdrVia] = []string{via}
	res.Header[hdrRequestID] = []string{ex.id}
	if len(res.Trailer) > 0 {
		// An HTTP/2 target may send a Content-Length together with
		// trailers; to an HTTP/1.1 client trailers need chunked framing
		// (RFC 9112 §7.1.2), which a Content-Length would prevent.
		delete(res.Header, "Content-Length")
		res.ContentLength = -1
	}
	if res.StatusCode != http.StatusSwitchingProtocols && res.Body != nil && res.Body != http.NoBody {
		// A 101's body is the upgraded connection, which ReverseProxy
		// needs as an io.ReadWriteCloser: leave it alone.
		ex.resBody = &watchedBody{ReadCloser: res.Body, h: h, ex: ex}
		res.Body = ex.resBody
	}
	return nil
}

// handleError is the ReverseProxy ErrorHandler: every failure before the
// response headers were written ends here.
func (h *Handler) handleError(w http.ResponseWriter, r *http.Request, err error) {
	ex := exchangeFrom(r.Context())
	if ex.client.Err() != nil && !errors.Is(err, errClientGone) {
		err = fmt.Errorf("%w: %w", errClientGone, err)
	}
	if !ex.logged && statusFor(err) >= http.StatusInternalServerError {
		target := ""
		if ex.target != nil {
			target = ex.target.Address
		} else if n := len(ex.tried); n > 0 {
			target = ex.tried[n-1].Address
		}
		h.log.Warn("upstream request failed", "upstream", h.pool.Name, "target", target, "error", err)
		h.obs.UpstreamError(h.pool.Name, target, kindOf(err, false))
	}
	h.writeError(w, ex, err)
}

// writeError answers with the status statusFor(err) gives, except when the
// client went away: then nothing is written and reqinfo records it.
func (h *Handler) writeError(w http.ResponseWriter, ex *exchange, err error) {
	code := statusFor(err)
	if code == StatusClientClosedRequest {
		if ex.info != nil {
			ex.info.ClientGone = true
		}
		return
	}
	detail := ""
	switch {
	case errors.Is(err, errNoTarget):
		detail = errNoTarget.Error()
	case errors.Is(err, errCapacity):
		detail = errCapacity.Error()
	}
	h.writeStatus(w, ex, code, detail)
}

// writeStatus writes a short text response: "502 Bad Gateway\n", or with
// a detail "503 Service Unavailable: no healthy upstream\n".
func (h *Handler) writeStatus(w http.ResponseWriter, ex *exchange, code int, detail string) {
	hd := w.Header()
	hd.Set("Content-Type", "text/plain; charset=utf-8")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set(hdrRequestID, ex.id)
	hd.Del("Content-Length")
	msg := fmt.Sprintf("%d %s", code, http.StatusText(code))
	if detail != "" {
		msg += ": " + detail
	}
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg+"\n")
}

// watchedBody notices a response body that breaks off, to log it and to
// tell an upstream failure from a client that went away.
type watchedBody struct {
	io.ReadCloser
	h   *Handler
	ex  *exchange
	err error // first read error other than io.EOF
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
		if b.ex.client.Err() == nil {
			target := ""
			if b.ex.target != nil {
				target = b.ex.target.Address
			}
			b.h.log.Warn("upstream response body failed", "upstream", b.h.pool.Name, "target", target, "error", err)
			kind := KindBody
			if kindOf(err, false) == KindTimeout {
				kind = KindTimeout
			}
			b.h.obs.UpstreamError(b.h.pool.Name, target, kind)
		}
	}
	return n, err
}

// idleBody is a request body read with a deadline renewed before each
// read: a client that pauses longer than idle fails the read (a timeout,
// answered 408) instead of holding the target's connection.
type idleBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration
}

func (b *idleBody) Read(p []byte) (int, error) {
	_ = b.rc.SetReadDeadline(time.Now().Add(b.idle))
	return b.ReadCloser.Read(p)
}

// bufferPool recycles ReverseProxy's copy buffers.
type bufferPool struct{ p sync.Pool }

const copyBufferSize = 32 << 10

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}}
}

func (b *bufferPool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b *bufferPool) Put(x []byte) { b.p.Put(&x) }
