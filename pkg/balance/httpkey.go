package balance

import (
	"net/http"
	"net/textproto"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// FromRequest extracts the value of k from an HTTP request, for Key.Hash:
// the first value of the header (for "header:Host", r.Host, which Go keeps
// out of r.Header; for HTTP/2 it is :authority) or the value of the
// cookie. It returns "" when the request has no such key, and always for
// the client_ip key, whose value is Key.Client. It does not allocate.
func (k HashKey) FromRequest(r *http.Request) string {
	switch k.Source {
	case HashKeyHeader:
		if k.Name == "Host" {
			return r.Host
		}
		if v := r.Header[k.Name]; len(v) > 0 {
			return v[0]
		}
		return ""
	case HashKeyCookie:
		v, _ := cookieValue(r.Header, k.Name)
		return v
	default:
		return ""
	}
}

// cookieValue returns the value of the first valid cookie called name in
// the Cookie header lines of h, and whether there was one. It reads the
// header the way net/http's Request.Cookie does (RFC 6265 §5.4 cookie-string,
// pairs split on ";", names must be tokens, one pair of surrounding double
// quotes is dropped, values with bytes outside RFC 6265 §4.1.1's
// cookie-octet plus space and comma are skipped) but without allocating:
// Request.Cookie parses every cookie of the request into a new slice.
func cookieValue(h http.Header, name string) (string, bool) {
	for _, line := range h["Cookie"] {
		line = textproto.TrimString(line)
		for len(line) > 0 {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = textproto.TrimString(part)
			if part == "" {
				continue
			}
			n, v, _ := strings.Cut(part, "=")
			n = textproto.TrimString(n)
			if n != name || !httpguts.ValidHeaderFieldName(n) {
				continue
			}
			if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			if validCookieValue(v) {
				return v, true
			}
		}
	}
	return "", false
}

// validCookieValue reports whether every byte of v is a printable ASCII
// character other than '"', ';' and '\\' (net/http's lenient reading of
// RFC 6265 §4.1.1, which also admits space and comma).
func validCookieValue(v string) bool {
	for i := 0; i < len(v); i++ {
		b := v[i]
		if b < 0x20 || b >= 0x7f || b == '"' || b == ';' || b == '\\' {
			return false
		}
	}
	return true
}
