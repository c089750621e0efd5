package balance

import (
	"math"
	"net/textproto"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// Hash key sources, the part of Upstream.HashKey before the colon.
const (
	// HashKeyClientIP hashes the client IP, Key.Client. The default.
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
// cookie names). Errors wrap ErrInvalidHashKey; their message is written
// for users (config validation shows it as it is).
func ParseHashKey(s string) (HashKey, error) {
	if s == "" || s == HashKeyClientIP {
		return HashKey{Source: HashKeyClientIP}, nil
	}
	source, name, _ := strings.Cut(s, ":")
	switch source {
	case HashKeyHeader:
		if !httpguts.ValidHeaderFieldName(name) {
			return HashKey{}, invalid(ErrInvalidHashKey, "%q: %q is not a header name", s, name)
		}
		return HashKey{Source: HashKeyHeader, Name: textproto.CanonicalMIMEHeaderKey(name)}, nil
	case HashKeyCookie:
		if !httpguts.ValidHeaderFieldName(name) {
			return HashKey{}, invalid(ErrInvalidHashKey, "%q: %q is not a cookie name", s, name)
		}
		return HashKey{Source: HashKeyCookie, Name: name}, nil
	}
	return HashKey{}, invalid(ErrInvalidHashKey, "%q is not a hash key (allowed: client_ip, header:<Name>, cookie:<name>)", s)
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
	fallback *roundRobin
}

func newHash(targets []*upstream.Target, key HashKey) *hash {
	s := &hash{
		targets:  targets,
		ids:      make([]uint64, len(targets)),
		key:      key,
		fallback: newRoundRobin(targets),
	}
	for i, t := range targets {
		s.ids[i] = mix64(fnv1a(t.URL.String()))
	}
	return s
}

// Select hashes the key's client address (key client_ip) or its Hash
// value (header and cookie keys); without one it falls back to round
// robin.
func (s *hash) Select(k Key, eligible func(*upstream.Target) bool) *upstream.Target {
	if s.key.Source == HashKeyHeader || s.key.Source == HashKeyCookie {
		if k.Hash == "" {
			return s.fallback.Select(k, eligible)
		}
		return s.pick(fnv1a(k.Hash), eligible)
	}
	if !k.Client.IsValid() {
		return s.fallback.Select(k, eligible)
	}
	// The address is hashed in its text form (what earlier versions
	// hashed), formatted on the stack: a worker running an older
	// version during an upgrade sends the client to the same target.
	var buf [64]byte
	return s.pick(fnv1aBytes(k.Client.AppendTo(buf[:0])), eligible)
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

// fnv1aBytes is fnv1a of b.
func fnv1aBytes(b []byte) uint64 {
	h := uint64(fnvOffset64)
	for _, c := range b {
		h ^= uint64(c)
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
