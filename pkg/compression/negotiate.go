// Package compression owns response compression (gzip, zstd, brotli): which
// coding a client accepts (Accept-Encoding with q-values, RFC 9110
// §12.5.3), which responses are worth compressing, and a ResponseWriter
// that compresses a response as it streams, flushing when asked (SSE).
//
// It must not know about routes or configuration files: the server hands
// it the codings and the minimum size for a route.
package compression

import (
	"strconv"
	"strings"
)

// Codings this package can produce, as Content-Encoding names them.
const (
	Gzip   = "gzip"
	Zstd   = "zstd"
	Brotli = "br" // RFC 7932
)

// Codings returns the supported codings in the server's order of
// preference, used to break ties between equal q-values: zstd (fastest
// for its ratio), then brotli (smaller than gzip, slower), then gzip
// (every client has it).
func Codings() []string { return []string{Zstd, Brotli, Gzip} }

// Negotiate returns the coding of offered (in the server's preference
// order) that the Accept-Encoding field values accept with the highest
// q-value, or "" for identity. A coding with q=0 is refused, "*" stands
// for every coding not named, and no field or an empty one means
// identity (RFC 9110 §12.5.3: then compressing is allowed but not
// expected; sending identity is always safe). "x-gzip" is gzip (RFC 9110
// §8.4.1.3).
func Negotiate(accept []string, offered []string) string {
	if len(accept) == 0 {
		return ""
	}
	best, bestQ := "", 0.0
	for _, c := range offered {
		q, ok := qOf(accept, c)
		if ok && q > bestQ {
			best, bestQ = c, q
		}
	}
	return best
}

// qOf returns the q-value accept gives coding, and whether it names it
// or "*".
func qOf(accept []string, coding string) (float64, bool) {
	star, haveStar := 0.0, false
	for _, line := range accept {
		for elem := range strings.SplitSeq(line, ",") {
			name, params, _ := strings.Cut(elem, ";")
			name = strings.ToLower(strings.TrimSpace(name))
			if name == "x-gzip" {
				name = Gzip
			}
			if name != coding && name != "*" {
				continue
			}
			q := parseQ(params)
			if name == coding {
				return q, true
			}
			star, haveStar = q, true
		}
	}
	return star, haveStar
}

// parseQ reads the weight from the parameters after a coding (RFC 9110
// §12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )).
// No weight means 1; a malformed one means 0, so that a garbled field
// never turns compression on.
func parseQ(params string) float64 {
	for p := range strings.SplitSeq(params, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) == 0 || len(v) > 5 || v[0] != '0' && v[0] != '1' {
			return 0
		}
		q, err := strconv.ParseFloat(v, 64)
		if err != nil || q < 0 || q > 1 {
			return 0
		}
		return q
	}
	return 1
}

// compressibleType reports whether media type mt (lower case, without
// parameters) is worth compressing besides text/*, +json and +xml.
func compressibleType(mt string) bool {
	switch mt {
	case "application/json", "application/javascript", "application/x-javascript",
		"application/xml", "application/wasm":
		return true
	}
	return false
}

// Compressible reports whether a response of Content-Type ct is worth
// compressing: text, JSON, JavaScript, XML, SVG and WebAssembly.
// Images, video, archives and an unknown type are not.
func Compressible(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return strings.HasPrefix(mt, "text/") || compressibleType(mt) ||
		strings.HasSuffix(mt, "+json") || strings.HasSuffix(mt, "+xml")
}
