package route

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/handoff-proxy/handoff/pkg/hostname"
)

// invalidError is a Parse function's error: its message is written for
// users (config validation shows it as it is) and it wraps
// ErrInvalidRoute.
type invalidError struct{ msg string }

func (e *invalidError) Error() string { return e.msg }
func (e *invalidError) Unwrap() error { return ErrInvalidRoute }

func invalid(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}

// ParseHostPattern parses a route's host condition: empty (any host), an
// exact host name, an IP literal (IPv6 with or without brackets), or
// "*." followed by a host name, which matches one or more labels in
// front of it. Names follow RFC 1123 §2.1 ('_' accepted); the port is never
// part of it. It returns the normalized host (lower case, no trailing dot,
// IPv6 without brackets), or for a wildcard its suffix ".example.com".
// Errors wrap ErrInvalidRoute; config validation reports them.
func ParseHostPattern(h string) (host string, wildcard bool, err error) {
	if h == "" {
		return "", false, nil
	}
	bad := func(format string, args ...any) (string, bool, error) {
		return "", false, invalid(format, args...)
	}
	if h == "*" {
		return bad(`"*": leave host empty to match any host`)
	}
	name, wildcard := strings.CutPrefix(h, "*.")
	if strings.Contains(name, "*") {
		return bad("%q: a wildcard must be the whole first label (*.example.com)", h)
	}
	literal := name
	if strings.HasPrefix(literal, "[") && strings.HasSuffix(literal, "]") {
		literal = literal[1 : len(literal)-1]
	}
	if a, err := netip.ParseAddr(literal); err == nil {
		switch {
		case wildcard:
			return bad("%q: a wildcard needs a host name, not an IP address", h)
		case a.Zone() != "":
			// A zone names an interface of the client's own host: it
			// means nothing in a route, and Match ignores request zones.
			return bad("%q: IPv6 zone not allowed", h)
		case a.Is6():
			return a.String(), false, nil
		}
	}
	if _, _, err := net.SplitHostPort(name); err == nil {
		return bad("%q: the host is matched without the port: leave the port out", h)
	}
	if strings.Contains(name, ":") {
		return bad("%q: a host has no port and only IPv6 literals contain ':'", h)
	}
	if err := hostname.Check(name); err != nil {
		return "", false, &invalidError{msg: err.Error()}
	}
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if wildcard {
		return "." + name, true, nil
	}
	return name, false, nil
}

// ParsePathPrefix parses a route's path prefix: empty (any path) or a
// clean absolute path (no ".", ".." or empty segments, since requests are
// matched on their cleaned path) without query, fragment, spaces or
// control characters. Errors wrap ErrInvalidRoute.
func ParsePathPrefix(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	if !strings.HasPrefix(p, "/") {
		return "", invalid("%q must start with \"/\"", p)
	}
	for _, r := range p {
		if r <= ' ' || r == 0x7f || r == '?' || r == '#' {
			return "", invalid("%q: %q is not allowed in a path prefix (no query, fragment, spaces or control characters)", p, r)
		}
	}
	if c := cleanPath(p); c != p {
		return "", invalid("%q is not clean (requests are matched on %q)", p, c)
	}
	return p, nil
}

// ParseMethod parses a method condition: a token (RFC 9110 §9.1), upper
// cased, since methods are case-sensitive and the standard ones are upper
// case ("get" in a config means GET). Errors wrap ErrInvalidRoute.
func ParseMethod(m string) (string, error) {
	if !httpguts.ValidHeaderFieldName(m) {
		return "", invalid("%q is not a method name", m)
	}
	return strings.ToUpper(m), nil
}

// ParseHeaderName parses the name of a header condition: a token (RFC 9110
// §5.1), returned in canonical form. Errors wrap ErrInvalidRoute.
func ParseHeaderName(name string) (string, error) {
	if !httpguts.ValidHeaderFieldName(name) {
		return "", invalid("%q is not a header name", name)
	}
	return http.CanonicalHeaderKey(name), nil
}
