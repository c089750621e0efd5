package cache

import "time"

// Action is what to do with a stored response for a request.
type Action int

const (
	// Serve answers from the stored response, which is fresh enough.
	Serve Action = iota
	// ServeStale answers from the stale stored response, which the request
	// accepts (max-stale, RFC 9111 §5.2.1.2).
	ServeStale
	// ServeStaleRefresh answers from the stale stored response and
	// refreshes it once in the background (RFC 5861 §3).
	ServeStaleRefresh
	// Revalidate forwards the request, conditional when the stored response
	// has validators (RFC 9111 §4.3.1); a 304 refreshes the stored response.
	Revalidate
	// GatewayTimeout answers 504: only-if-cached and nothing usable
	// (RFC 9111 §5.2.1.7).
	GatewayTimeout
)

// Stored is what the decision needs to know of a stored response.
type Stored struct {
	// Lifetime is its freshness lifetime (Freshness).
	Lifetime time.Duration
	// Age is its current age (Age).
	Age time.Duration
	// CC are its Cache-Control directives.
	CC Directives
}

// Stale reports how long past its lifetime s is; zero or less is fresh.
func (s Stored) Stale() time.Duration { return s.Age - s.Lifetime }

// Decision is the outcome of Decide.
type Decision struct {
	Action Action
	// Fwd is the RFC 9211 fwd= reason when the request goes forward:
	// "request" (the request's directives demanded it) or "stale".
	Fwd string
}

// Decide chooses between serving a stored response and going forward
// (RFC 9111 §4, §4.2.4, §5.2; RFC 5861).
func Decide(req Directives, s Stored) Decision {
	d := decide(req, s)
	if req.OnlyIfCached && d.Action == Revalidate {
		return Decision{Action: GatewayTimeout} // §5.2.1.7
	}
	return d
}

func decide(req Directives, s Stored) Decision {
	// §5.2.1.4: request no-cache: never serve without validating.
	if req.NoCache {
		return Decision{Action: Revalidate, Fwd: "request"}
	}
	// §5.2.2.4: response no-cache: always validate before reuse.
	if s.CC.NoCache && len(s.CC.NoCacheFields) == 0 {
		return Decision{Action: Revalidate, Fwd: "stale"}
	}
	// §5.2.1.1: the client will not accept a response older than max-age.
	if req.MaxAge.Set && s.Age > seconds(req.MaxAge.Seconds) {
		return Decision{Action: Revalidate, Fwd: "request"}
	}
	stale := s.Stale()
	if stale < 0 {
		// §5.2.1.3: min-fresh asks for at least that much freshness left.
		if req.MinFresh.Set && -stale < seconds(req.MinFresh.Seconds) {
			return Decision{Action: Revalidate, Fwd: "request"}
		}
		return Decision{Action: Serve}
	}
	// §4.2.4, §5.2.2.2, §5.2.2.8, §5.2.2.10: must-revalidate,
	// proxy-revalidate and s-maxage forbid serving stale in a shared cache.
	if s.CC.MustRevalidate || s.CC.ProxyRevalidate || s.CC.SMaxAge.Set {
		return Decision{Action: Revalidate, Fwd: "stale"}
	}
	if req.MaxStaleAny || (req.MaxStale.Set && stale <= seconds(req.MaxStale.Seconds)) {
		return Decision{Action: ServeStale}
	}
	if s.CC.StaleWhileRevalidate.Set && stale <= seconds(s.CC.StaleWhileRevalidate.Seconds) {
		return Decision{Action: ServeStaleRefresh}
	}
	return Decision{Action: Revalidate, Fwd: "stale"}
}

// StaleIfError reports whether a stale response may answer a request whose
// forwarding failed (an error or a 5xx), by the stale-if-error of the
// response or of the request (RFC 5861 §4), unless revalidation is
// mandatory.
func StaleIfError(req Directives, s Stored) bool {
	if s.CC.MustRevalidate || s.CC.ProxyRevalidate || s.CC.SMaxAge.Set {
		return false
	}
	stale := s.Stale()
	for _, d := range []Delta{req.StaleIfError, s.CC.StaleIfError} {
		if d.Set && stale <= seconds(d.Seconds) {
			return true
		}
	}
	return false
}

// KeepFor is how long a store should keep a response: its lifetime plus
// the stale windows it may be served in (RFC 5861), plus grace when it has
// a validator so it can still be revalidated with a 304 (RFC 9111 §4.3).
// Zero means not worth storing.
func KeepFor(s Stored, hasValidator bool, grace time.Duration) time.Duration {
	keep := s.Lifetime - s.Age
	if keep < 0 {
		keep = 0
	}
	keep += seconds(max(s.CC.StaleWhileRevalidate.Seconds, s.CC.StaleIfError.Seconds))
	if hasValidator {
		keep += grace
	}
	return keep
}
