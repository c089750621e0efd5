package cache

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Handler returns the handler of a route: it answers from the cache what
// it can and forwards the rest to next (the forwarder), storing what may
// be stored. With route.Enabled false it returns next itself.
//
// Place it so that handlers adding per-request response fields (Via,
// X-Request-Id, access log, metrics) wrap it, and the forwarder is next:
// then hits get those fields too, and they are never stored.
func (c *Cache) Handler(route Route, next http.Handler) http.Handler {
	if !route.Enabled {
		return next
	}
	return &handler{c: c, route: route, policy: Policy{DefaultTTL: route.DefaultTTL}, next: next}
}

type handler struct {
	c      *Cache
	route  Route
	policy Policy
	next   http.Handler
}

func (h *handler) key(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return PrimaryKey(scheme, r.Host, r.URL.EscapedPath(), r.URL.RawQuery, r.Header, h.route.Key)
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Upgrade") != "" {
		h.next.ServeHTTP(w, r) // a tunnel, not a cacheable exchange
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions, http.MethodTrace:
		w.Header().Set("Cache-Status", h.c.o.Name+"; fwd=method")
		h.next.ServeHTTP(w, r)
		return
	default:
		h.serveUnsafe(w, r)
		return
	}
	ctx := r.Context()
	reqCC := RequestDirectives(r.Header)
	key := h.key(r)
	e, varies := h.c.lookup(ctx, key, r.Header)
	if e == nil {
		if reqCC.OnlyIfCached {
			h.gatewayTimeout(w)
			return
		}
		fwd := "uri-miss"
		if varies {
			fwd = "vary-miss"
		}
		h.forward(w, r, key, nil, reqCC, fwd)
		return
	}
	st := h.c.stored(e, h.policy)
	d := Decide(reqCC, st)
	switch d.Action {
	case Serve:
		h.c.stats.hits.Add(1)
		h.serveEntry(w, r, e, st, "hit")
	case ServeStale:
		h.c.stats.hits.Add(1)
		h.c.stats.stale.Add(1)
		h.serveEntry(w, r, e, st, "hit; detail=stale")
	case ServeStaleRefresh:
		h.c.stats.hits.Add(1)
		h.c.stats.stale.Add(1)
		h.refresh(r, key, e)
		h.serveEntry(w, r, e, st, "hit; detail=stale-while-revalidate")
	case GatewayTimeout:
		h.gatewayTimeout(w)
	default:
		h.forward(w, r, key, e, reqCC, d.Fwd)
	}
}

func (h *handler) gatewayTimeout(w http.ResponseWriter) {
	// RFC 9111 §5.2.1.7: only-if-cached and nothing usable stored.
	w.Header().Set("Cache-Status", h.c.o.Name+"; fwd=miss; detail=only-if-cached")
	http.Error(w, "not in cache", http.StatusGatewayTimeout)
}

// coalescable reports whether a request's answer can be shared with
// concurrent requests for the same key: a plain GET whose directives ask
// nothing special of the stored response.
func coalescable(r *http.Request, reqCC Directives) bool {
	if r.Method != http.MethodGet || r.Header.Get("Range") != "" || r.Header.Get("If-None-Match") != "" ||
		r.Header.Get("If-Modified-Since") != "" || r.Header.Get("Authorization") != "" {
		return false
	}
	return !reqCC.NoCache && !reqCC.NoStore && !reqCC.MaxAge.Set && !reqCC.MinFresh.Set
}

// forward sends the request on (revalidating e when not nil), with
// concurrent plain requests for the same key coalesced into one, in this
// process and, with a Locker, across processes.
func (h *handler) forward(w http.ResponseWriter, r *http.Request, key string, e *Entry, reqCC Directives, fwd string) {
	if !coalescable(r, reqCC) {
		h.fetch(w, r, key, e, reqCC, fwd)
		return
	}
	ctx := r.Context()
	fl, leader := h.c.flights.join(key)
	if !leader {
		if fl.wait(ctx, h.c.o.LockTTL) && h.serveAfterWait(w, r, key, reqCC) {
			return
		}
		h.fetch(w, r, key, e, reqCC, fwd) // the leader stored nothing usable
		return
	}
	defer h.c.flights.finish(key, fl)
	if l := h.c.o.Locker; l != nil {
		ok, err := l.TryLock(ctx, lockName(key), h.c.token, h.c.o.LockTTL)
		switch {
		case err == nil && ok:
			defer func() { _ = l.Unlock(context.WithoutCancel(ctx), lockName(key), h.c.token) }()
		case err == nil:
			// Another process is filling: wait for its result.
			if got := h.awaitRemote(ctx, key, r.Header); got != nil {
				st := h.c.stored(got, h.policy)
				if d := Decide(reqCC, st); d.Action <= ServeStaleRefresh {
					h.c.stats.coalesced.Add(1)
					h.c.stats.hits.Add(1)
					h.serveEntry(w, r, got, st, "hit; detail=coalesced")
					return
				}
			}
		}
	}
	h.fetch(w, r, key, e, reqCC, fwd)
}

// serveAfterWait answers a coalesced waiter from what the leader stored,
// and reports whether it could.
func (h *handler) serveAfterWait(w http.ResponseWriter, r *http.Request, key string, reqCC Directives) bool {
	e, _ := h.c.lookup(r.Context(), key, r.Header)
	if e == nil {
		return false
	}
	st := h.c.stored(e, h.policy)
	if d := Decide(reqCC, st); d.Action > ServeStaleRefresh {
		return false
	}
	h.c.stats.coalesced.Add(1)
	h.c.stats.hits.Add(1)
	h.serveEntry(w, r, e, st, "hit; detail=coalesced")
	return true
}

// isUnsafe reports whether a method is not safe (RFC 9110 §9.2.1).
func isUnsafe(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return true
}

// serveUnsafe forwards an unsafe request; a non-error answer invalidates
// the target URI and the same-origin Location and Content-Location
// (RFC 9111 §4.4) before the client sees the answer, so its next request
// (to any process) misses.
func (h *handler) serveUnsafe(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Status", h.c.o.Name+"; fwd=method")
	sw := &statusWriter{ResponseWriter: w, onStatus: func(status int) {
		if !isUnsafe(r.Method) || status < 200 || status >= 400 {
			return
		}
		keys := []string{h.key(r)}
		for _, f := range []string{"Location", "Content-Location"} {
			if k, ok := h.sameOriginKey(r, w.Header().Get(f)); ok {
				keys = append(keys, k)
			}
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), time.Second)
		defer cancel()
		h.c.invalidate(ctx, keys...)
	}}
	h.next.ServeHTTP(sw, r)
}

// sameOriginKey is the key of a Location-like reference, when it is on the
// request's origin (RFC 9111 §4.4: only then may it be invalidated).
func (h *handler) sameOriginKey(r *http.Request, ref string) (string, bool) {
	if ref == "" {
		return "", false
	}
	u, err := url.Parse(ref)
	if err != nil {
		return "", false
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	base := &url.URL{Scheme: scheme, Host: r.Host, Path: r.URL.Path, RawQuery: r.URL.RawQuery}
	t := base.ResolveReference(u)
	if t.Scheme != scheme || !strings.EqualFold(t.Host, r.Host) {
		return "", false
	}
	return PrimaryKey(t.Scheme, t.Host, t.EscapedPath(), t.RawQuery, r.Header, h.route.Key), true
}
