package balance

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"net/textproto"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// Hash key sources, the part of Upstream.HashKey before the colon.
const (
	// HashKeyClientIP hashes the client IP (Options.TrustedClientIP, or
	// the host of r.RemoteAddr). The default.
	HashKeyClientIP = "client_ip"
	// HashKeyHeader hashes the first value of a request header
	// ("header:X-User"). "header:Host" hashes r.Host, which Go keeps out
	// of r.Header (for HTTP/2 it is :authority).
	HashKeyHeader = "header"
	// HashKeyCookie hashes the value of a cookie ("cookie:session").
	HashKeyCookie = "cookie"
)

// HashKey says what the hash strategy hashes. A request without the key (no
// such header or cookie, an empty value, no client IP, as on a Unix socket)
// is balanced round robin instead, so that keyless clients are spread
// rather than all hashed onto one target.
type HashKey struct {
	// Source is HashKeyClientIP, HashKeyHeader or HashKeyCookie.
	Source string
	// Name is the header name in canonical form, or the cookie name;
	// empty for HashKeyClientIP.
	Name string
}

// String returns the key in config form.
func (k HashKey) String() string {
	if k.Source == HashKeyClientIP {
		return k.Source
	}
	return k.Source + ":" + k.Name
}

// ParseHashKey parses Upstream.HashKey: "client_ip" (also the meaning of
// ""), "header:<Name>" or "cookie:<name>", where the name is an RFC 9110
// §5.6.2 token (the grammar of both field names and, per RFC 6265 §4.1.1,
// cookie names). Errors wrap ErrInvalidHashKey.
func ParseHashKey(s string) (HashKey, error) {
	if s == "" || s == HashKeyClientIP {
		return HashKey{Source: HashKeyClientIP}, nil
	}
	source, name, found := strings.Cut(s, ":")
	if !found {
		return HashKey{}, fmt.Errorf("parse hash key %q: %w: want client_ip, header:<name> or cookie:<name>", s, ErrInvalidHashKey)
	}
	if !httpguts.ValidHeaderFieldName(name) {
		return HashKey{}, fmt.Errorf("parse hash key %q: %w: name %q is not a token", s, ErrInvalidHashKey, name)
	}
	switch source {
	case HashKeyHeader:
		return HashKey{Source: HashKeyHeader, Name: http.CanonicalHeaderKey(name)}, nil
	case HashKeyCookie:
		return HashKey{Source: HashKeyCookie, Name: name}, nil
	default:
		return HashKey{}, fmt.Errorf("parse hash key %q: %w: source %q not one of header, cookie", s, ErrInvalidHashKey, source)
	}
}

// hash is consistent hashing by weighted rendezvous (highest random weight)
// hashing: every target scores the key, the best score wins. Adding one of
// N targets moves only the keys the newcomer now wins (about 1/N of them),
// removing or ejecting one moves only its own keys, and each target wins in
// proportion to its weight (Schindelhauer and Schomaker, "Weighted
// Distributed Hash Tables", 2005: score = -w/ln(u), u uniform in (0,1)).
//
// The hash is FNV-1a 64 and a fixed mixer, never a per-process seed
// (hash/maphash), so that every worker, a restarted process and an upgraded
// one all send a key to the same target.
type hash struct {
	targets []*upstream.Target
	// ids[i] is the hash of targets[i]'s normalized URL, its identity on
	// the ring: the same address always scores the same, whatever its
	// position in the pool.
	ids      []uint64
	key      HashKey
	clientIP func(*http.Request) string
	fallback *roundRobin
}

func newHash(targets []*upstream.Target, key HashKey, clientIP func(*http.Request) string) *hash {
	s := &hash{
		targets:  targets,
		ids:      make([]uint64, len(targets)),
		key:      key,
		clientIP: clientIP,
		fallback: newRoundRobin(targets),
	}
	for i, t := range targets {
		s.ids[i] = mix64(fnv1a(t.URL.String()))
	}
	return s
}

// Select hashes the request's key; without one it falls back to round
// robin.
func (s *hash) Select(r *http.Request, eligible func(*upstream.Target) bool) *upstream.Target {
	key := s.keyOf(r)
	if key == "" {
		return s.fallback.Select(r, eligible)
	}
	return s.pick(fnv1a(key), eligible)
}

// pick returns the eligible target with the best score for key hash kh:
// the smallest -ln(u)/w, which is the largest -w/ln(u).
func (s *hash) pick(kh uint64, eligible func(*upstream.Target) bool) *upstream.Target {
	var best *upstream.Target
	bestScore := math.Inf(1)
	for i, t := range s.targets {
		if !ok(eligible, t) {
			continue
		}
		h := mix64(kh ^ s.ids[i])
		// 53 random bits centred in their interval: u is in (0,1), never
		// 0 or 1, so ln(u) is finite and negative.
		u := (float64(h>>11) + 0.5) * 0x1p-53
		score := -math.Log(u) / float64(weightOf(t))
		if score < bestScore {
			best, bestScore = t, score
		}
	}
	return best
}

// keyOf returns the request's hash key, empty when it has none.
func (s *hash) keyOf(r *http.Request) string {
	switch s.key.Source {
	case HashKeyHeader:
		if s.key.Name == "Host" {
			return r.Host
		}
		if v := r.Header[s.key.Name]; len(v) > 0 {
			return v[0]
		}
		return ""
	case HashKeyCookie:
		v, _ := cookieValue(r.Header, s.key.Name)
		return v
	default:
		if s.clientIP != nil {
			return s.clientIP(r)
		}
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			return ""
		}
		return host
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

// FNV-1a 64-bit parameters (draft-eastlake-fnv, "The FNV Non-Cryptographic
// Hash Algorithm").
const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// fnv1a is FNV-1a 64 of s, written out so that hashing a string does not
// allocate (hash/fnv needs a []byte and an interface).
func fnv1a(s string) uint64 {
	h := uint64(fnvOffset64)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime64
	}
	return h
}

// mix64 is the 64-bit finalizer of MurmurHash3 (fmix64): a bijection with
// full avalanche, so that a key and a target that differ in one bit score
// independently.
func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
