package cache

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// outcome is what the cache made of a forwarded response at WriteHeader.
type outcome struct {
	store bool
	keep  time.Duration
}

// conditionalRequest prepares the request that revalidates e: the stored
// validators replace the client's (RFC 9111 §4.3.1), and a range is not
// asked for, so that a 200 can be stored whole.
func conditionalRequest(out *http.Request, e *Entry) {
	for _, f := range []string{"If-None-Match", "If-Modified-Since", "If-Range", "Range", "If-Match", "If-Unmodified-Since"} {
		out.Header.Del(f)
	}
	if et := e.Header.Get("ETag"); et != "" {
		out.Header.Set("If-None-Match", et)
	}
	if lm := e.Header.Get("Last-Modified"); lm != "" {
		out.Header.Set("If-Modified-Since", lm)
	}
}

// judge decides whether a forwarded response is stored, and for how long.
func (h *handler) judge(r *http.Request, reqCC Directives, status int, hdr http.Header, reqTime time.Time) (outcome, Stored) {
	res := Response{Status: status, Header: hdr}
	resCC := ResponseDirectives(hdr)
	now := h.c.o.Now()
	life, _ := Freshness(res, resCC, h.policy)
	st := Stored{Lifetime: life, Age: Age(hdr, reqTime, now, now), CC: resCC}
	ok, _ := Storable(Request{Method: r.Method, Header: r.Header}, reqCC, res, resCC)
	if !ok {
		return outcome{}, st
	}
	keep := KeepFor(st, hasValidator(hdr), h.c.o.ValidatorGrace)
	return outcome{store: keep > 0, keep: keep}, st
}

// fetch forwards r, revalidating e when it is not nil, answers the client
// (from the response, or from e after a 304 or under stale-if-error) and
// stores what may be stored.
func (h *handler) fetch(w http.ResponseWriter, r *http.Request, key string, e *Entry, reqCC Directives, fwd string) {
	out := r.Clone(r.Context())
	revalidating := e != nil && r.Method == http.MethodGet
	var old Stored
	if revalidating {
		h.c.stats.revalidations.Add(1)
		conditionalRequest(out, e)
		old = h.c.stored(e, h.policy)
	} else {
		h.c.stats.misses.Add(1)
	}
	reqTime := h.c.o.Now()
	var oc outcome
	cw := newCapture(w, h.c.o.MaxObject, func(status int, hdr http.Header) mode {
		if revalidating && (status == http.StatusNotModified || (status >= 500 && StaleIfError(reqCC, old))) {
			return absorb
		}
		var st Stored
		oc, st = h.judge(r, reqCC, status, hdr, reqTime)
		cs := h.c.o.Name + "; fwd=" + fwd + "; fwd-status=" + strconv.Itoa(status)
		if oc.store && !h.overrunHint(hdr) {
			cs += "; stored; ttl=" + strconv.FormatInt(int64((st.Lifetime-st.Age)/time.Second), 10)
		}
		hdr.Add("Cache-Status", cs)
		hdr.Del("Surrogate-Control") // addressed to this cache, not beyond it
		return passThrough
	})
	h.next.ServeHTTP(cw, out)
	if !cw.wrote {
		cw.WriteHeader(http.StatusOK)
	}
	respTime := h.c.o.Now()
	ctx := context.WithoutCancel(r.Context())
	switch {
	case cw.mode == absorb && cw.status == http.StatusNotModified:
		updated := h.freshen(e, cw.header, reqTime, respTime)
		st := h.c.stored(updated, h.policy)
		oc, _ := h.judge(r, reqCC, updated.Status, updated.Header, reqTime)
		if oc.store {
			h.c.save(ctx, key, r.Header, updated, oc.keep)
		}
		h.serveEntry(w, r, updated, st, "fwd="+fwd+"; fwd-status=304")
	case cw.mode == absorb:
		// RFC 5861 §4: the origin failed; the stale response may answer.
		h.c.stats.stale.Add(1)
		h.serveEntry(w, r, e, old, "fwd="+fwd+"; fwd-status="+strconv.Itoa(cw.status)+"; detail=stale-if-error")
	case oc.store && cw.complete():
		h.c.save(ctx, key, r.Header, h.entry(cw, reqTime, respTime), oc.keep)
	}
}

// overrunHint reports a declared body larger than MaxObject.
func (h *handler) overrunHint(hdr http.Header) bool {
	n, err := strconv.ParseInt(hdr.Get("Content-Length"), 10, 64)
	return err == nil && n > h.c.o.MaxObject
}

func (h *handler) entry(cw *captureWriter, reqTime, respTime time.Time) *Entry {
	cc := ResponseDirectives(cw.header)
	return &Entry{Status: cw.status, Header: h.c.storedHeader(cw.header, cc), Body: cw.body,
		RequestTime: reqTime, ResponseTime: respTime}
}

// freshen applies a 304 to a stored response (RFC 9111 §4.3.4, §3.2): its
// header fields replace the stored ones, except those describing the body
// and those never stored.
func (h *handler) freshen(e *Entry, hdr http.Header, reqTime, respTime time.Time) *Entry {
	n := &Entry{Status: e.Status, Header: e.Header.Clone(), Body: e.Body, RequestTime: reqTime, ResponseTime: respTime}
	cc := ResponseDirectives(hdr)
	for k, vs := range h.c.storedHeader(hdr, cc) {
		switch k {
		case "Content-Length", "Content-Range", "Content-Encoding", "Content-Md5", "Etag":
			continue // §3.2: these describe the stored body and its validator, not the 304
		}
		n.Header[k] = vs
	}
	// A 304 without Age of its own does not inherit the stored one.
	if hdr.Get("Age") == "" {
		n.Header.Del("Age")
	}
	return n
}

// refresh revalidates e once in the background (RFC 5861 §3): other
// requests meanwhile keep getting the stale response; another process
// refreshing the same key (holding its lock) makes this one skip.
func (h *handler) refresh(r *http.Request, key string, e *Entry) {
	fkey := key + "\x02refresh"
	fl, leader := h.c.flights.join(fkey)
	if !leader {
		return
	}
	req := r.Clone(context.WithoutCancel(r.Context()))
	req.Method, req.Body, req.ContentLength = http.MethodGet, http.NoBody, 0
	conditionalRequest(req, e)
	h.c.goBackground(func(ctx context.Context) {
		defer h.c.flights.finish(fkey, fl)
		rctx, cancel := context.WithTimeout(req.Context(), h.c.o.RefreshTimeout)
		defer cancel()
		defer context.AfterFunc(ctx, cancel)()
		if l := h.c.o.Locker; l != nil {
			if ok, err := l.TryLock(rctx, lockName(key), h.c.token, h.c.o.LockTTL); err == nil {
				if !ok {
					return
				}
				defer func() { _ = l.Unlock(context.WithoutCancel(rctx), lockName(key), h.c.token) }()
			}
		}
		h.c.stats.revalidations.Add(1)
		reqCC := RequestDirectives(req.Header)
		reqTime := h.c.o.Now()
		cw := newCapture(nil, h.c.o.MaxObject, func(int, http.Header) mode { return absorb })
		h.next.ServeHTTP(cw, req.WithContext(rctx))
		respTime := h.c.o.Now()
		var n *Entry
		switch {
		case cw.status == http.StatusNotModified:
			n = h.freshen(e, cw.header, reqTime, respTime)
		case cw.status >= 200 && cw.complete():
			n = h.entry(cw, reqTime, respTime)
		default:
			h.c.o.Logger.Debug("cache background refresh not stored", "key", strings.ToValidUTF8(key, "?"), "status", cw.status)
			return
		}
		if oc, _ := h.judge(req, reqCC, n.Status, n.Header, reqTime); oc.store {
			h.c.save(rctx, key, req.Header, n, oc.keep)
		}
	})
}
