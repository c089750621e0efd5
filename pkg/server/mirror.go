package server

// HTTP request mirroring (routes[].mirror) as the server wires it: per
// route, between the policies and the cache (route table → access →
// rate_limit → auth → mirror → cache → proxy), so that only requests the
// policies let through are copied. A copy goes to the shadow upstream's
// own forwarder (its pool, strategy, health and transports) on a
// goroutine the generation owns; its response is read and discarded, and
// the client's request never waits for it (Envoy's
// request_mirror_policies, nginx's mirror).

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/route"
)

// Results of a mirror decision, as counted by mirrorObserver.
const (
	mirrorSent     = "mirrored"  // a copy went out
	mirrorDropped  = "dropped"   // max_in_flight copies were under way
	mirrorTooLarge = "too_large" // the body was over max_body
	mirrorFailed   = "failed"    // the shadow answered 5xx or broke off
)

// mirrorObserver counts mirror decisions (metrics.L4).
type mirrorObserver interface {
	Mirrored(route, result string)
}

type nopMirrorObserver struct{}

func (nopMirrorObserver) Mirrored(string, string) {}

// genMirrors owns the copies in flight of one generation's mirrored
// routes: Close cancels them and waits.
type genMirrors struct {
	log    *slog.Logger
	obs    mirrorObserver
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
}

// wrapMirrors puts a mirror in front of each route of cfg that has one
// (specs[i].Handler when the cache set it, else the upstream's handler).
// The shadow is handlers[mirror.upstream]. obs may be nil.
func wrapMirrors(cfg *config.Config, specs []route.Spec, handlers map[string]http.Handler,
	log *slog.Logger, obs mirrorObserver) *genMirrors {
	m := &genMirrors{log: log, obs: obs}
	if m.obs == nil {
		m.obs = nopMirrorObserver{}
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	for i, rc := range cfg.Routes {
		mc := rc.Mirror
		if mc == nil {
			continue
		}
		h := specs[i].Handler
		if h == nil {
			h = handlers[rc.Upstream]
		}
		shadow := handlers[mc.Upstream]
		if h == nil || shadow == nil {
			continue // validated; route.New reports an unknown upstream
		}
		name := rc.Name
		if name == "" {
			name = fmt.Sprintf("route%d", i)
		}
		specs[i].Handler = &mirrorHandler{
			m: m, next: h, shadow: shadow, route: name,
			ppm:     uint64(mc.Share()*1e6 + 0.5),
			maxBody: mc.MaxBodyBytes(),
			slots:   make(chan struct{}, mc.InFlight()),
		}
	}
	return m
}

// Close cancels the copies in flight and waits for them. Safe on nil.
func (m *genMirrors) Close() {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
}

// goCopy runs f on a goroutine m owns, unless m is closed.
func (m *genMirrors) goCopy(f func()) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer func() {
			// The forwarder panics with http.ErrAbortHandler when a
			// response breaks off mid-body; for a copy that is only a
			// failed copy.
			if v := recover(); v != nil && v != http.ErrAbortHandler {
				m.log.Error("mirror copy panicked", "panic", v, "stack", string(debug.Stack()))
			}
		}()
		f()
	}()
	return true
}

// mirrorHandler copies a share of the requests of one route.
type mirrorHandler struct {
	m            *genMirrors
	next, shadow http.Handler
	route        string
	ppm          uint64 // share of requests copied, per million
	maxBody      int64
	slots        chan struct{} // one per copy in flight
	n            atomic.Uint64
}

func (h *mirrorHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.sample() {
		h.mirror(r)
	}
	h.next.ServeHTTP(w, r)
}

// sample reports whether the request numbered n is copied: exactly
// ppm per million of any run of requests, spread evenly (every 10th at
// 10%), so that a small share is not bursty.
func (h *mirrorHandler) sample() bool {
	n := h.n.Add(1)
	return n*h.ppm/1e6 != (n-1)*h.ppm/1e6
}

// mirror sends a copy of r to the shadow, unless too many copies are
// under way or the body is over max_body. It may replace r.Body with
// one that replays what was buffered.
func (h *mirrorHandler) mirror(r *http.Request) {
	select {
	case h.slots <- struct{}{}:
	default:
		h.m.obs.Mirrored(h.route, mirrorDropped)
		return
	}
	body, ok := h.bufferBody(r)
	if !ok {
		<-h.slots
		h.m.obs.Mirrored(h.route, mirrorTooLarge)
		return
	}
	cp := r.Clone(h.m.ctx) // a context of its own: the client's end does not end the copy
	cp.Body = http.NoBody
	if body != nil {
		cp.Body = io.NopCloser(bytes.NewReader(body))
	}
	if !h.m.goCopy(func() { h.send(cp) }) {
		<-h.slots
		return
	}
	h.m.obs.Mirrored(h.route, mirrorSent)
}

func (h *mirrorHandler) send(cp *http.Request) {
	defer func() { <-h.slots }()
	w := &discardWriter{header: make(http.Header)}
	defer func() {
		p := recover()
		if p != nil || w.status >= 500 {
			h.m.obs.Mirrored(h.route, mirrorFailed)
		}
		if p != nil && p != http.ErrAbortHandler {
			panic(p) // goCopy logs it
		}
	}()
	h.shadow.ServeHTTP(w, cp)
}

// bufferBody reads r's body for the copy when it is at most maxBody,
// and gives r a body that replays it. It reports false when the body is
// larger (or could not be read); r's body then still yields every byte,
// or the read error, to the primary.
func (h *mirrorHandler) bufferBody(r *http.Request) ([]byte, bool) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil, true
	}
	if r.ContentLength > h.maxBody {
		return nil, false
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, h.maxBody+1))
	orig := r.Body
	rest := io.Reader(orig)
	if err != nil {
		rest = errReader{err}
	}
	if err != nil || int64(len(buf)) > h.maxBody {
		r.Body = readCloser{io.MultiReader(bytes.NewReader(buf), rest), orig}
		return nil, false
	}
	r.Body = readCloser{bytes.NewReader(buf), orig}
	return buf, true
}

type readCloser struct {
	io.Reader
	io.Closer
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// discardWriter is the copy's ResponseWriter: it keeps the status and
// drops the rest.
type discardWriter struct {
	header http.Header
	status int
}

func (d *discardWriter) Header() http.Header { return d.header }

func (d *discardWriter) WriteHeader(code int) {
	if d.status == 0 || d.status < 200 {
		d.status = code
	}
}

func (d *discardWriter) Write(b []byte) (int, error) {
	if d.status == 0 {
		d.status = http.StatusOK
	}
	return len(b), nil
}

// Flush lets the forwarder flush streamed responses.
func (d *discardWriter) Flush() {}

// mirrorObs is d's mirror observer, or nil.
func (d buildDeps) mirrorObs() mirrorObserver {
	if d.l4m == nil {
		return nil
	}
	return d.l4m
}
