package cache

import (
	"net/http"
	"strings"
	"time"
)

// Header is the header lookup the core needs; http.Header satisfies it.
type Header interface {
	Get(name string) string
	Values(name string) []string
}

// Request is the protocol-free view of a request.
type Request struct {
	Method string
	Header Header
}

// Response is the protocol-free view of a response.
type Response struct {
	Status int
	Header Header
}

// Policy holds the per-route settings the core's decisions depend on.
type Policy struct {
	// DefaultTTL is the freshness lifetime of a storable response without
	// explicit freshness information (no s-maxage, max-age or Expires),
	// used instead of the heuristic. Zero means the heuristic (RFC 9111
	// §4.2.2) alone.
	DefaultTTL time.Duration
	// HeuristicCap caps heuristic freshness. Zero means 24h.
	HeuristicCap time.Duration
}

// heuristicStatuses are the status codes RFC 9110 §15.1 defines as
// heuristically cacheable.
var heuristicStatuses = map[int]bool{200: true, 203: true, 204: true, 206: true, 300: true,
	301: true, 308: true, 404: true, 405: true, 410: true, 414: true, 501: true}

// understoodStatus reports whether the cache implements the semantics of a
// status code, for must-understand (RFC 9111 §5.2.2.3).
func understoodStatus(s int) bool {
	switch s {
	case 200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// RequestDirectives parses a request's Cache-Control; a request with no
// Cache-Control and "Pragma: no-cache" counts as no-cache (RFC 9111 §5.4).
func RequestDirectives(h Header) Directives {
	cc := h.Values("Cache-Control")
	d := ParseCacheControl(cc)
	if len(cc) == 0 {
		for _, p := range h.Values("Pragma") {
			if strings.Contains(strings.ToLower(p), "no-cache") {
				d.NoCache = true
			}
		}
	}
	return d
}

// ResponseDirectives parses a response's Cache-Control, with the
// Surrogate-Control a reverse proxy obeys first (W3C Edge Architecture
// Specification 1.0): its no-store forbids storing, its max-age is the
// lifetime and overrides Cache-Control's no-store, private and max-age.
func ResponseDirectives(h Header) Directives {
	d := ParseCacheControl(h.Values("Cache-Control"))
	sc := h.Values("Surrogate-Control")
	if len(sc) == 0 {
		return d
	}
	s := ParseCacheControl(sc)
	switch {
	case s.NoStore:
		d.NoStore, d.MustUnderstand = true, false
	case s.MaxAge.Set:
		d.NoStore, d.Private, d.NoCache = false, false, false
		d.MaxAge, d.SMaxAge = s.MaxAge, Delta{}
	}
	return d
}

// Storable reports whether a shared cache may store res, the answer to
// req, and why not (RFC 9111 §3).
func Storable(req Request, reqCC Directives, res Response, resCC Directives) (bool, string) {
	switch {
	case req.Method != http.MethodGet:
		return false, "method" // §3: only GET is stored here
	case res.Status < 200 || res.Status == http.StatusPartialContent || res.Status == http.StatusNotModified:
		return false, "status" // §3: final, and 206/304 are not stored whole
	case reqCC.NoStore:
		return false, "request no-store" // §5.2.1.5
	case resCC.MustUnderstand && !understoodStatus(res.Status):
		return false, "must-understand" // §5.2.2.3
	case resCC.NoStore && !(resCC.MustUnderstand && understoodStatus(res.Status)):
		return false, "no-store" // §5.2.2.5, overridden by must-understand §5.2.2.3
	case resCC.Private && len(resCC.PrivateFields) == 0:
		return false, "private" // §5.2.2.7: shared caches must not store it
	case req.Header.Get("Authorization") != "" && !resCC.Public && !resCC.MustRevalidate && !resCC.SMaxAge.Set:
		return false, "authorization" // §3.5
	}
	for _, v := range res.Header.Values("Vary") {
		if strings.Contains(v, "*") {
			return false, "vary *" // §4.1: never matches, no use storing
		}
	}
	// §3: explicit freshness, public, or a heuristically cacheable status.
	if resCC.Public || resCC.SMaxAge.Set || resCC.MaxAge.Set || len(res.Header.Values("Expires")) > 0 ||
		heuristicStatuses[res.Status] {
		return true, ""
	}
	return false, "not cacheable"
}

// Freshness computes a response's freshness lifetime (RFC 9111 §4.2.1):
// s-maxage, then max-age, then Expires minus Date; without any of them the
// route's DefaultTTL, or the heuristic of §4.2.2 (10% of the time since
// Last-Modified, capped) for heuristically cacheable statuses or public
// responses. heuristic reports that no explicit lifetime was given.
func Freshness(res Response, cc Directives, p Policy) (lifetime time.Duration, heuristic bool) {
	switch {
	case cc.SMaxAge.Set:
		return seconds(cc.SMaxAge.Seconds), false
	case cc.MaxAge.Set:
		return seconds(cc.MaxAge.Seconds), false
	}
	if exp := res.Header.Values("Expires"); len(exp) > 0 {
		// §5.3: an invalid Expires (e.g. "0") means already expired.
		e, err := http.ParseTime(exp[0])
		if err != nil {
			return 0, false
		}
		date, err := http.ParseTime(res.Header.Get("Date"))
		if err != nil {
			return 0, false
		}
		if d := e.Sub(date); d > 0 {
			return d, false
		}
		return 0, false
	}
	if !heuristicStatuses[res.Status] && !cc.Public {
		return 0, true
	}
	if p.DefaultTTL > 0 {
		return p.DefaultTTL, true
	}
	lm, err := http.ParseTime(res.Header.Get("Last-Modified"))
	if err != nil {
		return 0, true
	}
	date, err := http.ParseTime(res.Header.Get("Date"))
	if err != nil {
		return 0, true
	}
	life := date.Sub(lm) / 10
	capd := p.HeuristicCap
	if capd == 0 {
		capd = 24 * time.Hour
	}
	if life < 0 {
		life = 0
	}
	return min(life, capd), true
}

func seconds(s int64) time.Duration { return time.Duration(s) * time.Second }

// Age computes the current age of a stored response (RFC 9111 §4.2.3)
// from its headers (Date, Age), the times the request was sent and the
// response received, and now.
func Age(h Header, requestTime, responseTime, now time.Time) time.Duration {
	var ageValue time.Duration
	if as := h.Values("Age"); len(as) > 0 {
		// An Age that is not one delta-seconds (negative, a fraction, a
		// list, a suffix) cannot be trusted: treat the response as stale
		// by giving it the largest age (RFC 9111 §1.2.2, §5.1).
		ageValue = seconds(MaxDelta)
		if d := parseDelta(strings.TrimSpace(as[0]), false, true); len(as) == 1 && (d.Seconds > 0 || as[0] == "0") {
			ageValue = seconds(d.Seconds)
		}
	}
	apparent := time.Duration(0)
	if date, err := http.ParseTime(h.Get("Date")); err == nil {
		apparent = max(0, responseTime.Sub(date))
	}
	correctedAge := ageValue + responseTime.Sub(requestTime)
	initial := max(apparent, correctedAge)
	return initial + max(0, now.Sub(responseTime))
}
