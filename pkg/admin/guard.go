package admin

import (
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// Guard protects the state-changing endpoints of the admin API (every
// method but GET, HEAD and OPTIONS: reload, upgrade) from a web page open
// in a browser on the same host, as Caddy's admin endpoint does:
//
//   - DNS rebinding: a page on attacker.example whose name later resolves
//     to 127.0.0.1 sends requests with "Host: attacker.example". Only an IP
//     literal or "localhost" is accepted as Host (RFC 9110 §7.2), which no
//     rebinding attack can produce.
//   - Cross-site requests: a browser sends Origin with every POST
//     (RFC 6454 §7.3, Fetch); an Origin whose host is not the request's
//     Host is refused.
//   - Simple requests: a form or fetch() without preflight can only send
//     application/x-www-form-urlencoded, multipart/form-data or text/plain.
//     Requiring application/json (what `handoff reload` sends) forces a
//     CORS preflight, which this API never grants.
//
// Reads stay open to any Host so that Prometheus and health checkers
// that address the host by name keep working.
func Guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			next.ServeHTTP(w, r)
			return
		}
		if reason := refuse(r); reason != "" {
			http.Error(w, "forbidden: "+reason, http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// refuse says why r may not change state, or "" when it may.
func refuse(r *http.Request) string {
	if !localHost(r.Host) {
		return "Host must be an IP address or localhost"
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			return "cross-origin request"
		}
	}
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return "cross-site request"
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return "Content-Type must be application/json"
	}
	return ""
}

// localHost reports whether the Host header names an IP literal or
// localhost, with or without a port. An empty Host (HTTP/1.0, Unix
// socket clients) is not a browser's.
func localHost(host string) bool {
	if host == "" {
		return true
	}
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	_, err := netip.ParseAddr(h)
	return err == nil
}
