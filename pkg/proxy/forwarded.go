package proxy

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// ErrMalformedForwarded is returned (wrapped) by ParseForwarded for a
// field value that does not follow its grammar. (X-Forwarded-For is parsed
// by package clientip.)
var ErrMalformedForwarded = errors.New("malformed forwarding header")

// ForwardedPair is one name=value pair of a Forwarded element.
type ForwardedPair struct {
	// Name is the parameter name, lower-cased (RFC 7239 §4: parameter
	// names are case-insensitive).
	Name string
	// Value is the unquoted value.
	Value string
}

// ForwardedElement is one forwarded-element: the pairs one proxy added,
// in the order they were written.
type ForwardedElement []ForwardedPair

// Get returns the value of the parameter name (lower-case) and reports
// whether it is present.
func (e ForwardedElement) Get(name string) (string, bool) {
	for _, p := range e {
		if p.Name == name {
			return p.Value, true
		}
	}
	return "", false
}

// ParseForwarded parses the field values of a Forwarded header (RFC 7239
// §4):
//
//	Forwarded         = 1#forwarded-element
//	forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] )
//	forwarded-pair    = token "=" value
//	value             = token / quoted-string
//
// Empty list elements and empty pairs are skipped (RFC 9110 §5.6.1 asks
// recipients to accept them); optional whitespace is accepted around ","
// and ";". A parameter may appear once per element (RFC 7239 §4), and the
// values of for/by (§6 node), host (RFC 9110 §7.2 Host) and proto (RFC 3986
// §3.1 scheme) are validated. Any violation returns an error wrapping
// ErrMalformedForwarded. No values (or only empty elements) yields an empty
// result and no error.
func ParseForwarded(values []string) ([]ForwardedElement, error) {
	var out []ForwardedElement
	for _, v := range values {
		var err error
		out, err = parseForwardedValue(out, v)
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func parseForwardedValue(out []ForwardedElement, s string) ([]ForwardedElement, error) {
	i := 0
	for {
		i = skipOWS(s, i)
		if i == len(s) {
			return out, nil
		}
		if s[i] == ',' {
			i++
			continue
		}
		var elem ForwardedElement
		for {
			i = skipOWS(s, i)
			if i == len(s) || s[i] == ',' {
				break
			}
			if s[i] == ';' {
				i++
				continue
			}
			start := i
			for i < len(s) && httpguts.IsTokenRune(rune(s[i])) {
				i++
			}
			if i == start {
				return nil, fmt.Errorf("forwarded: %w: expected parameter name at offset %d", ErrMalformedForwarded, start)
			}
			name := strings.ToLower(s[start:i])
			if i == len(s) || s[i] != '=' {
				return nil, fmt.Errorf("forwarded: %w: expected '=' after %q", ErrMalformedForwarded, name)
			}
			i++
			var value string
			var err error
			value, i, err = parseForwardedValueToken(s, i)
			if err != nil {
				return nil, fmt.Errorf("forwarded parameter %q: %w", name, err)
			}
			if _, dup := elem.Get(name); dup {
				return nil, fmt.Errorf("forwarded: %w: parameter %q repeated in one element", ErrMalformedForwarded, name)
			}
			if err := validateForwardedParam(name, value); err != nil {
				return nil, err
			}
			elem = append(elem, ForwardedPair{Name: name, Value: value})
			i = skipOWS(s, i)
			if i < len(s) && s[i] != ';' && s[i] != ',' {
				return nil, fmt.Errorf("forwarded: %w: unexpected %q at offset %d", ErrMalformedForwarded, s[i], i)
			}
		}
		if len(elem) > 0 {
			out = append(out, elem)
		}
	}
}

// parseForwardedValueToken reads a token or a quoted-string (RFC 9110
// §5.6.4) starting at i and returns the unquoted value and the offset after
// it.
func parseForwardedValueToken(s string, i int) (string, int, error) {
	if i < len(s) && s[i] == '"' {
		i++
		var b strings.Builder
		for i < len(s) {
			c := s[i]
			switch {
			case c == '"':
				return b.String(), i + 1, nil
			case c == '\\':
				if i+1 == len(s) || !isQuotedPairChar(s[i+1]) {
					return "", i, fmt.Errorf("%w: bad quoted-pair", ErrMalformedForwarded)
				}
				b.WriteByte(s[i+1])
				i += 2
			case isQDText(c):
				b.WriteByte(c)
				i++
			default:
				return "", i, fmt.Errorf("%w: invalid byte 0x%02x in quoted-string", ErrMalformedForwarded, c)
			}
		}
		return "", i, fmt.Errorf("%w: unterminated quoted-string", ErrMalformedForwarded)
	}
	start := i
	for i < len(s) && httpguts.IsTokenRune(rune(s[i])) {
		i++
	}
	if i == start {
		return "", i, fmt.Errorf("%w: empty value", ErrMalformedForwarded)
	}
	return s[start:i], i, nil
}

func validateForwardedParam(name, value string) error {
	var ok bool
	switch name {
	case "for", "by":
		ok = validForwardedNode(value)
	case "host":
		ok = validHost(value)
	case "proto":
		ok = validScheme(value)
	default:
		// RFC 7239 §5.5: extensions carry any value.
		ok = true
	}
	if !ok {
		return fmt.Errorf("forwarded: %w: invalid %s value %q", ErrMalformedForwarded, name, value)
	}
	return nil
}

// validForwardedNode checks RFC 7239 §6:
//
//	node     = nodename [ ":" node-port ]
//	nodename = IPv4address / "[" IPv6address "]" / "unknown" / obfnode
//	obfnode  = "_" 1*( ALPHA / DIGIT / "." / "_" / "-")
//	node-port = port / obfport
func validForwardedNode(v string) bool {
	name, port := v, ""
	if strings.HasPrefix(v, "[") {
		end := strings.IndexByte(v, ']')
		if end < 0 {
			return false
		}
		ip, err := netip.ParseAddr(v[1:end])
		if err != nil || !ip.Is6() || ip.Zone() != "" {
			return false
		}
		rest := v[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return false
			}
			port = rest[1:]
			if port == "" {
				return false
			}
		}
		return port == "" || validNodePort(port)
	}
	if i := strings.IndexByte(v, ':'); i >= 0 {
		name, port = v[:i], v[i+1:]
		if !validNodePort(port) {
			return false
		}
	}
	switch {
	case name == "unknown":
		return true
	case strings.HasPrefix(name, "_"):
		return validObf(name)
	default:
		ip, err := netip.ParseAddr(name)
		return err == nil && ip.Is4()
	}
}

func validNodePort(p string) bool {
	if strings.HasPrefix(p, "_") {
		return validObf(p)
	}
	if p == "" || len(p) > 5 {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	return true
}

// validObf checks "_" 1*( ALPHA / DIGIT / "." / "_" / "-").
func validObf(s string) bool {
	if len(s) < 2 || s[0] != '_' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(isAlpha(c) || isDigit(c) || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// validScheme checks RFC 3986 §3.1: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
func validScheme(s string) bool {
	if s == "" || !isAlpha(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(isAlpha(c) || isDigit(c) || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// AppendForwarded appends the elements in their canonical serialisation
// (pairs joined by ";", elements by ", ", values quoted only when they are
// not tokens) to b. Values must not contain control characters other than
// HTAB; ParseForwarded never returns such values.
func AppendForwarded(b []byte, elems []ForwardedElement) []byte {
	first := true
	for _, e := range elems {
		if len(e) == 0 {
			continue
		}
		if !first {
			b = append(b, ", "...)
		}
		first = false
		for j, p := range e {
			if j > 0 {
				b = append(b, ';')
			}
			b = append(b, p.Name...)
			b = append(b, '=')
			b = appendForwardedValue(b, p.Value)
		}
	}
	return b
}

// appendForwardedValue writes v as a token when it is one and as a
// quoted-string otherwise (RFC 7239 §4: IPv6 addresses and ports need
// quoting because ":" and "[" are not token characters).
func appendForwardedValue(b []byte, v string) []byte {
	if httpguts.ValidHeaderFieldName(v) {
		return append(b, v...)
	}
	b = append(b, '"')
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '"' || c == '\\' {
			b = append(b, '\\')
		}
		b = append(b, c)
	}
	return append(b, '"')
}

// forwardedNode formats an address as an RFC 7239 §6 node: IPv4 as is,
// IPv6 in brackets (quoted by appendForwardedValue), "unknown" when the
// address is not known (a Unix socket peer).
func forwardedNode(ip netip.Addr) string {
	if !ip.IsValid() {
		return "unknown"
	}
	ip = ip.WithZone("")
	if ip.Is4() {
		return ip.String()
	}
	return "[" + ip.String() + "]"
}

func skipOWS(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

// validHost reports whether h is a plausible Host field value (RFC 9110
// §7.2: uri-host [ ":" port ]), checked like net/http does: non-empty and
// made only of bytes that may appear in a reg-name, an IP literal or a
// port.
func validHost(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !isAlpha(c) && !isDigit(c) && (c >= 0x80 || strings.IndexByte("!$%&'()*+,-.:;=[]_~", c) < 0) {
			return false
		}
	}
	return true
}

// headerContainsToken reports whether any of the comma-separated list
// elements of values equals token, ASCII case-insensitively.
func headerContainsToken(values []string, token string) bool {
	for _, v := range values {
		for elem := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.Trim(elem, " \t"), token) {
				return true
			}
		}
	}
	return false
}

// isQDText reports whether c is qdtext (RFC 9110 §5.6.4): HTAB, SP, VCHAR
// except DQUOTE and backslash, or obs-text.
func isQDText(c byte) bool {
	return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e) || c >= 0x80
}

// isQuotedPairChar reports whether c may follow a backslash in a
// quoted-pair: HTAB, SP, VCHAR or obs-text.
func isQuotedPairChar(c byte) bool {
	return c == '\t' || (c >= 0x20 && c <= 0x7e) || c >= 0x80
}

func isAlpha(c byte) bool { return (c|0x20) >= 'a' && (c|0x20) <= 'z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
