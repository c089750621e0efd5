package rewrite

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Variables a Template may name. Every one of them is computed by the
// caller (pkg/server) from the request.
const (
	VarClientIP  = "client_ip"  // the client's address, after trusted proxies
	VarHost      = "host"       // the request's host, without a port
	VarHostname  = "hostname"   // the same as host (the name nginx and Caddy users look for)
	VarHostPort  = "hostport"   // the request's Host as sent, port included
	VarRequestID = "request_id" // the X-Request-Id the proxy forwards
	VarScheme    = "scheme"     // "http" or "https"
	VarURI       = "uri"        // escaped path and query, as requested
	VarPath      = "path"       // escaped path
	VarQuery     = "query"      // raw query, without "?"

	// The client certificate verified on a listener with
	// tls.client_auth (package clientcert); empty without one.
	VarClientCertSubject     = "client_cert_subject"     // RFC 2253 subject
	VarClientCertSAN         = "client_cert_san"         // subject alternative names, comma-separated
	VarClientCertFingerprint = "client_cert_fingerprint" // SHA-256 of the DER, hex
)

// HeaderVars are the variables of header templates; redirect targets may
// also use the URL variables (URLVars).
var (
	HeaderVars = []string{VarClientIP, VarHost, VarHostname, VarHostPort, VarRequestID, VarScheme,
		VarClientCertSubject, VarClientCertSAN, VarClientCertFingerprint}
	URLVars = append(slices.Clip(HeaderVars), VarURI, VarPath, VarQuery)
)

// ErrTemplate is wrapped by every template parse error.
var ErrTemplate = errors.New("invalid template")

// Vars returns the value of a variable for one request.
type Vars func(name string) string

// Template is a string with {variable} placeholders, parsed once. "{{"
// and "}}" stand for literal braces. The zero Template expands to "".
type Template struct {
	parts []part
}

type part struct {
	lit  string
	name string // variable name; empty for a literal
}

// ParseTemplate parses s, allowing only the variables in allowed. Literal
// text must be valid in a header field value (RFC 9110 §5.5): no CR, LF,
// NUL or other control characters except horizontal tab.
func ParseTemplate(s string, allowed []string) (Template, error) {
	var t Template
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.parts = append(t.parts, part{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case !fieldByte(c):
			return Template{}, fmt.Errorf("%w: byte %#02x at offset %d is not allowed in a header value", ErrTemplate, c, i)
		case c == '{' && i+1 < len(s) && s[i+1] == '{', c == '}' && i+1 < len(s) && s[i+1] == '}':
			lit.WriteByte(c)
			i++
		case c == '}':
			return Template{}, fmt.Errorf("%w: unmatched %q at offset %d (write %q for a literal brace)", ErrTemplate, "}", i, "}}")
		case c == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return Template{}, fmt.Errorf("%w: unclosed %q at offset %d", ErrTemplate, "{", i)
			}
			name := s[i+1 : i+end]
			if !slices.Contains(allowed, name) {
				return Template{}, fmt.Errorf("%w: unknown variable {%s} (have: %s)", ErrTemplate, name, strings.Join(allowed, ", "))
			}
			flush()
			t.parts = append(t.parts, part{name: name})
			i += end
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return t, nil
}

// Uses reports whether the template names variable name.
func (t Template) Uses(name string) bool {
	return slices.ContainsFunc(t.parts, func(p part) bool { return p.name == name })
}

// Expand returns the template with each variable replaced by its value.
// Bytes of a value that may not appear in a header field value (CR, LF,
// NUL and the other controls) are dropped, so no value, however it was
// obtained, can end a header line or start a new one (response
// splitting, CWE-113).
func (t Template) Expand(vars Vars) string {
	if len(t.parts) == 1 && t.parts[0].name == "" {
		return t.parts[0].lit
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.name == "" {
			b.WriteString(p.lit)
			continue
		}
		v := ""
		if vars != nil {
			v = vars(p.name)
		}
		for i := range len(v) {
			if fieldByte(v[i]) {
				b.WriteByte(v[i])
			}
		}
	}
	return b.String()
}

// fieldByte reports whether c may appear in a header field value (RFC
// 9110 §5.5: VCHAR, obs-text, SP and HTAB).
func fieldByte(c byte) bool {
	return c == '\t' || c >= ' ' && c != 0x7f
}
