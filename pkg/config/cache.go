package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/handoff-proxy/handoff/pkg/route"
)

// Defaults of the cache section (the memory tier's budget and the largest
// stored body); zero in the config means these.
const (
	DefaultCacheMaxMemory = 64 << 20
	DefaultCacheMaxObject = 8 << 20
)

// Cache configures the process's HTTP cache (RFC 9111); which routes use
// it is said per route (Route.Cache). Static: the memory tier and the
// Redis tier live as long as the process, so that a reload keeps what is
// stored.
type Cache struct {
	// MaxMemory bounds the memory tier in bytes: an integer, or a number
	// with a unit ("512KiB", "64MiB", "1GB"; KB/MB/GB are powers of 1000,
	// K/M/G and KiB/MiB/GiB powers of 1024). Empty or zero means 64MiB.
	MaxMemory string `koanf:"max_memory" json:"max_memory,omitempty" yaml:"max_memory,omitempty"`
	// MaxObject is the largest body stored, in the units of MaxMemory;
	// larger responses stream through and are not stored. Empty or zero
	// means 8MiB.
	MaxObject string `koanf:"max_object" json:"max_object,omitempty" yaml:"max_object,omitempty"`
	// Shared reports whether the Redis tier (state.redis) is added behind
	// the memory tier, so that every process shares one cache that
	// survives restarts. Requires state.redis. False means memory only.
	Shared bool `koanf:"shared" json:"shared,omitempty" yaml:"shared,omitempty"`
}

// RouteCache is the cache setting of one route. Dynamic: a reload may
// turn it on or off and change the TTL and key.
type RouteCache struct {
	// Enabled reports whether responses of this route are cached.
	Enabled bool `koanf:"enabled" json:"enabled" yaml:"enabled"`
	// DefaultTTL is the freshness given to responses without explicit
	// freshness (no Cache-Control max-age/s-maxage, no Expires). Zero
	// means the RFC 9111 §4.2.2 heuristic only (10% of the time since
	// Last-Modified, for heuristically cacheable statuses).
	DefaultTTL time.Duration `koanf:"default_ttl" json:"default_ttl,omitempty" yaml:"default_ttl,omitempty"`
	// Key says what identifies a stored response besides scheme, host and
	// path.
	Key CacheKey `koanf:"key" json:"key,omitzero" yaml:"key,omitempty"`
}

// CacheKey says what, besides scheme, host and path, is in a cache key.
type CacheKey struct {
	// IncludeQuery reports whether the query string is part of the key.
	// Nil means true.
	IncludeQuery *bool `koanf:"include_query" json:"include_query,omitempty" yaml:"include_query,omitempty"`
	// Headers are request header names whose values are part of the key.
	// Empty means none (Vary still applies).
	Headers []string `koanf:"headers" json:"headers,omitempty" yaml:"headers,omitempty"`
}

// MaxMemoryBytes is MaxMemory in bytes, its default when unset. Call it
// on a validated config (it returns the default on a malformed value).
func (c Cache) MaxMemoryBytes() int64 { return bytesOr(c.MaxMemory, DefaultCacheMaxMemory) }

// MaxObjectBytes is MaxObject in bytes, its default when unset.
func (c Cache) MaxObjectBytes() int64 { return bytesOr(c.MaxObject, DefaultCacheMaxObject) }

// QueryInKey reports whether the query string is part of the key (nil
// IncludeQuery means true).
func (k CacheKey) QueryInKey() bool { return k.IncludeQuery == nil || *k.IncludeQuery }

func bytesOr(s string, def int64) int64 {
	n, err := ParseBytes(s)
	if err != nil || n == 0 {
		return def
	}
	return n
}

// ErrBadSize is wrapped by every ParseBytes error.
var ErrBadSize = errors.New("bad size")

// byteUnits maps a unit, lower-cased, to its multiplier.
var byteUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
	"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
	"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
	"t": 1 << 40, "tib": 1 << 40, "tb": 1e12,
}

// ParseBytes parses a size in bytes: a non-negative integer, optionally
// followed (with or without a space) by a unit, case-insensitive: B; K,
// KiB, M, MiB, G, GiB, T, TiB (powers of 1024, as nginx reads "64m");
// KB, MB, GB, TB (powers of 1000, as the SI prefixes say). Empty is 0.
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, nil
	}
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("%w: %q does not start with a number of bytes", ErrBadSize, s)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q is out of range", ErrBadSize, s)
	}
	unit := strings.ToLower(strings.TrimSpace(t[i:]))
	mul, ok := byteUnits[unit]
	if !ok {
		return 0, fmt.Errorf("%w: unknown unit %q in %q (use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)", ErrBadSize, t[i:], s)
	}
	if n > math.MaxInt64/mul {
		return 0, fmt.Errorf("%w: %q is out of range", ErrBadSize, s)
	}
	return n * mul, nil
}

// cache validates the cache section and every route's cache setting.
func (v *validator) cache(c *Config) {
	for _, k := range []struct{ key, val string }{{"cache.max_memory", c.Cache.MaxMemory}, {"cache.max_object", c.Cache.MaxObject}} {
		if _, err := ParseBytes(k.val); err != nil {
			v.errs.add(k.key, "%v", err)
		}
	}
	if c.Cache.Shared && c.State.Redis == nil {
		v.errs.add("cache.shared", "needs state.redis: the shared tier is kept in Redis")
	}
	for i, r := range c.Routes {
		if r.Cache == nil {
			continue
		}
		for j, h := range r.Cache.Key.Headers {
			if _, err := route.ParseHeaderName(h); err != nil {
				v.errs.add(indexKey(joinKey(indexKey("routes", i), "cache.key.headers"), j), "%v", err)
			}
		}
	}
}
