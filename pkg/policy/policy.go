// Package policy is the HTTP face of access control, rate limits and
// authentication: middleware that asks packages access, ratelimit and
// auth for a decision about a request and answers it (403; 429 with
// Retry-After and the RateLimit headers; 401/407 with a challenge). The
// client address is package clientip's answer, so a forwarding header
// from an untrusted peer never changes it.
//
// It must not know routes, listeners or config files: the server builds
// the middleware from the config and places it.
package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/handoff-proxy/handoff/pkg/access"
	"github.com/handoff-proxy/handoff/pkg/auth"
	"github.com/handoff-proxy/handoff/pkg/clientip"
	"github.com/handoff-proxy/handoff/pkg/ratelimit"
)

// Observer is told about denials; nil methods are not allowed, use
// Discard.
type Observer interface {
	// Denied counts a request refused by an access list ("access") or
	// another policy named by reason.
	Denied(reason string)
	// RateLimited counts a request refused by route's rate limit.
	RateLimited(route string)
	// AuthFailed counts a failed authentication on route, by reason
	// ("missing", "invalid", "locked").
	AuthFailed(route, reason string)
}

// Discard is an Observer that ignores everything.
type Discard struct{}

func (Discard) Denied(string)             {}
func (Discard) RateLimited(string)        {}
func (Discard) AuthFailed(string, string) {}

// ClientIP is the request's client address under trusted.
func ClientIP(r *http.Request, trusted clientip.Trusted) netip.Addr {
	return trusted.ClientIP(clientip.Peer(r.RemoteAddr), r.Header.Values("X-Forwarded-For"))
}

// Access refuses requests whose client address List does not allow: 403.
func Access(list access.List, trusted clientip.Trusted, obs Observer, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !list.Allowed(ClientIP(r, trusted)) {
			obs.Denied("access")
			http.Error(w, "Forbidden", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// RateLimit is a route's limit and what it is keyed on.
type RateLimit struct {
	Limiter ratelimit.Limiter
	Limit   ratelimit.Limit
	// Key is "client_ip", "route" or "header:<Name>" (config.RateLimit).
	Key string
	// Route names the limit in keys, metrics and RateLimit-Policy.
	Route   string
	Trusted clientip.Trusted
	Obs     Observer
	// Top records the keys denied, for the dashboard. Nil means they are
	// not recorded.
	Top *ratelimit.Top
}

// Handler answers 429 past the limit and adds the RateLimit headers of
// draft-ietf-httpapi-ratelimit-headers to every response.
func (rl *RateLimit) Handler(next http.Handler) http.Handler {
	name := policyName(rl.Route)
	policy := name + ";q=" + strconv.Itoa(rl.Limit.Requests) + ";w=" + strconv.Itoa(ceilSeconds(rl.Limit.Per))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res, err := rl.Limiter.Allow(r.Context(), rl.key(r), rl.Limit)
		if err != nil {
			// A limiter that cannot decide lets the request through
			// (Fallback already fails open or closed as configured).
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("RateLimit-Policy", policy)
		h.Set("RateLimit", name+";r="+strconv.Itoa(res.Remaining)+";t="+strconv.Itoa(ceilSeconds(res.ResetAfter)))
		if !res.Allowed {
			rl.Obs.RateLimited(rl.Route)
			if rl.Top != nil {
				rl.Top.Record(rl.Route, rl.shownKey(r))
			}
			// RFC 9110 §10.2.3: Retry-After in whole seconds, at least 1.
			h.Set("Retry-After", strconv.Itoa(max(1, ceilSeconds(res.RetryAfter))))
			http.Error(w, "Too Many Requests", http.StatusTooManyRequests)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (rl *RateLimit) key(r *http.Request) string {
	switch {
	case rl.Key == "route":
		return rl.Route
	case strings.HasPrefix(rl.Key, "header:"):
		return rl.Route + "|h|" + r.Header.Get(rl.Key[len("header:"):])
	default:
		return rl.Route + "|ip|" + ClientIP(r, rl.Trusted).String()
	}
}

// shownKey is the key as the dashboard shows it. A header value may be a
// credential (an API key): only a short digest of it is shown, enough to
// tell clients apart.
func (rl *RateLimit) shownKey(r *http.Request) string {
	switch {
	case rl.Key == "route":
		return "(whole route)"
	case strings.HasPrefix(rl.Key, "header:"):
		name := rl.Key[len("header:"):]
		sum := sha256.Sum256([]byte(r.Header.Get(name)))
		return name + " #" + hex.EncodeToString(sum[:4])
	default:
		return ClientIP(r, rl.Trusted).String()
	}
}

// policyName is the route name as an sf-string for the RateLimit fields
// (RFC 8941 §3.3.3: printable ASCII, '"' and '\' escaped; others dropped).
func policyName(route string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range []byte(route) {
		if c < 0x20 || c > 0x7e {
			continue
		}
		if c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	b.WriteByte('"')
	return b.String()
}

func ceilSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}

// Auth requires Basic or Bearer credentials.
type Auth struct {
	Htpasswd *auth.Htpasswd // nil: no Basic
	Tokens   *auth.Tokens   // nil: no Bearer
	// Realm of the challenges. Empty means "handoff".
	Realm string
	// Proxy reports whether this is a forward proxy: 407 with
	// Proxy-Authenticate, credentials in Proxy-Authorization (RFC 9110
	// §11.7); otherwise 401 with WWW-Authenticate and Authorization.
	Proxy   bool
	Lockout auth.Lockout
	Route   string
	Trusted clientip.Trusted
	Obs     Observer
}

// Handler answers 401/407 without valid credentials and 429 while the
// client address or the user is locked out after failed attempts. The
// credentials it checked are removed from the request: they are meant for
// handoff, never for the upstream.
func (a *Auth) Handler(next http.Handler) http.Handler {
	field, status, challenge := "Authorization", http.StatusUnauthorized, "WWW-Authenticate"
	if a.Proxy {
		field, status, challenge = "Proxy-Authorization", http.StatusProxyAuthRequired, "Proxy-Authenticate"
	}
	realm := a.Realm
	if realm == "" {
		realm = "handoff"
	}
	var challenges []string
	if a.Htpasswd != nil {
		challenges = append(challenges, `Basic realm="`+realm+`", charset="UTF-8"`)
	}
	if a.Tokens != nil {
		challenges = append(challenges, `Bearer realm="`+realm+`"`)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		clientKey := "c|" + ClientIP(r, a.Trusted).String()
		if a.locked(ctx, w, clientKey) {
			return
		}
		user, ok, present, answered := a.verify(ctx, w, r.Header.Get(field))
		if answered {
			return // locked-out user
		}
		if !ok {
			reason := "missing"
			if present {
				reason = "invalid"
				_, _ = a.Lockout.Failed(ctx, clientKey)
				if user != "" {
					_, _ = a.Lockout.Failed(ctx, "u|"+user)
				}
			}
			a.Obs.AuthFailed(a.Route, reason)
			for _, c := range challenges {
				w.Header().Add(challenge, c)
			}
			http.Error(w, http.StatusText(status), status)
			return
		}
		_ = a.Lockout.Succeeded(ctx, clientKey)
		r.Header.Del(field)
		next.ServeHTTP(w, r)
	})
}

// verify checks the credentials v. user is the user name a Basic attempt
// named ("" for Bearer or when absent); present reports whether any
// credentials were sent. When the user is locked out it answers 429 and
// reports answered.
func (a *Auth) verify(ctx context.Context, w http.ResponseWriter, v string) (user string, ok, present, answered bool) {
	if v == "" {
		return "", false, false, false
	}
	if u, pw, isBasic := auth.ParseBasic(v); isBasic && a.Htpasswd != nil {
		if a.locked(ctx, w, "u|"+u) {
			return u, false, true, true
		}
		if a.Htpasswd.Verify(u, pw) {
			_ = a.Lockout.Succeeded(ctx, "u|"+u)
			return u, true, true, false
		}
		return u, false, true, false
	}
	if tok, isBearer := auth.ParseBearer(v); isBearer && a.Tokens != nil {
		name, ok := a.Tokens.Verify(tok)
		if !ok {
			name = ""
		}
		return name, ok, true, false
	}
	return "", false, true, false
}

// locked answers 429 with Retry-After when key is locked out.
func (a *Auth) locked(ctx context.Context, w http.ResponseWriter, key string) bool {
	d, err := a.Lockout.Locked(ctx, key)
	if err != nil || d <= 0 {
		return false
	}
	a.Obs.AuthFailed(a.Route, "locked")
	w.Header().Set("Retry-After", strconv.Itoa(max(1, ceilSeconds(d))))
	http.Error(w, "Too Many Requests", http.StatusTooManyRequests)
	return true
}
