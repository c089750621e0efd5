package cache

import (
	"net"
	"slices"
	"strings"
)

// KeyOptions say what, besides scheme, host and path, identifies a cached
// response (config routes[].cache.key).
type KeyOptions struct {
	// IncludeQuery reports whether the query string is part of the key.
	IncludeQuery bool
	// Headers are request header names whose values are part of the key.
	// Empty means none.
	Headers []string
}

// keyHost is the host of a key: lower-cased and without the port. Routes
// match the host without its port, so requests that differ only in the
// port the client connected to reach the same upstream, and share entries
// (two processes of one deployment often listen on different ports).
func keyHost(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		if strings.Contains(h, ":") {
			h = "[" + h + "]"
		}
		host = h
	}
	return strings.ToLower(host)
}

// PrimaryKey is the cache key of a request (RFC 9111 §2): the target URI,
// as "scheme://host/path?query" with the host lower-cased and without its
// port (see keyHost), then each configured header as
// "\x00name=value". It starts with the URI so that purging by URL prefix
// is a key prefix match.
func PrimaryKey(scheme, host, path, rawQuery string, h Header, o KeyOptions) string {
	var b strings.Builder
	b.Grow(len(scheme) + 3 + len(host) + len(path) + len(rawQuery) + 1)
	b.WriteString(strings.ToLower(scheme))
	b.WriteString("://")
	b.WriteString(keyHost(host))
	if path == "" {
		path = "/"
	}
	b.WriteString(path)
	if o.IncludeQuery && rawQuery != "" {
		b.WriteByte('?')
		b.WriteString(rawQuery)
	}
	for _, name := range o.Headers {
		b.WriteByte(0)
		b.WriteString(strings.ToLower(name))
		b.WriteByte('=')
		b.WriteString(normaliseValue(name, h.Values(name)))
	}
	return b.String()
}

// VaryNames returns the sorted, lower-case, distinct field names of a
// response's Vary, and whether it contains "*" (RFC 9110 §12.5.5).
func VaryNames(h Header) (names []string, star bool) {
	for _, line := range h.Values("Vary") {
		for _, f := range strings.Split(line, ",") {
			f = strings.ToLower(strings.TrimSpace(f))
			switch f {
			case "":
			case "*":
				star = true
			default:
				names = append(names, f)
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names), star
}

// SecondaryKey is the part of a key that selects one variant (RFC 9111
// §4.1): for each Vary name, the request's normalised value. Two requests
// with the same SecondaryKey match the same stored variant.
func SecondaryKey(names []string, h Header) string {
	var b strings.Builder
	for _, n := range names {
		b.WriteString(n)
		b.WriteByte(':')
		vs := h.Values(n)
		if len(vs) == 0 {
			b.WriteByte(1) // absent differs from empty (§4.1)
		}
		b.WriteString(normaliseValue(n, vs))
		b.WriteByte(0)
	}
	return b.String()
}

// caseInsensitiveValues are fields whose values compare case-insensitively
// (tokens: RFC 9110 §12.5.3, §12.5.4, §8.4.1, RFC 4647 language ranges).
var caseInsensitiveValues = map[string]bool{"accept-encoding": true, "accept-language": true,
	"accept-charset": true, "accept": true}

// normaliseValue joins the field lines of a list field and removes the
// optional whitespace around its commas (RFC 9110 §5.3, §5.6.1: both are
// semantically equivalent), folding case where values are tokens.
func normaliseValue(name string, vs []string) string {
	if len(vs) == 1 && !strings.ContainsAny(vs[0], ", \t") && !caseInsensitiveValues[strings.ToLower(name)] {
		return vs[0]
	}
	var parts []string
	for _, v := range vs {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
	}
	s := strings.Join(parts, ",")
	if caseInsensitiveValues[strings.ToLower(name)] {
		s = strings.ToLower(s)
	}
	return s
}
