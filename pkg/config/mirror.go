package config

import "math"

// RouteMirror sends a copy of a share of a route's requests to a shadow
// upstream (traffic shadowing, as Envoy's request_mirror_policies and
// nginx's mirror): the shadow's responses are discarded and the client
// never waits for it.
type RouteMirror struct {
	// Upstream names the shadow upstream in Config.Upstreams (its own
	// pool, strategy and health checks). Required.
	Upstream string `koanf:"upstream" json:"upstream" yaml:"upstream"`
	// Percent of the route's requests copied, in (0, 100]; the share
	// is exact over any run of requests (every k-th, not random).
	// Zero means 100.
	Percent float64 `koanf:"percent" json:"percent,omitempty" yaml:"percent,omitempty"`
	// MaxBody is the largest request body that is copied (units as
	// cache.max_memory); it is buffered in memory for the copy, and a
	// request with a larger body is not mirrored. Empty means 1MiB;
	// "0" mirrors only requests without a body.
	MaxBody string `koanf:"max_body" json:"max_body,omitempty" yaml:"max_body,omitempty"`
	// MaxInFlight bounds the copies under way for this route; past it a
	// copy is dropped (and counted) rather than queued. Zero means 64.
	MaxInFlight int `koanf:"max_in_flight" json:"max_in_flight,omitempty" yaml:"max_in_flight,omitempty"`
}

// Mirror defaults.
const (
	defaultMirrorMaxBody     = 1 << 20
	defaultMirrorMaxInFlight = 64
)

// MaxBodyBytes is MaxBody in bytes, with its default.
func (m RouteMirror) MaxBodyBytes() int64 {
	if m.MaxBody == "" {
		return defaultMirrorMaxBody
	}
	n, _ := ParseBytes(m.MaxBody) // validated
	return n
}

// Share is Percent as a fraction in (0, 1], with its default.
func (m RouteMirror) Share() float64 {
	if m.Percent == 0 {
		return 1
	}
	return m.Percent / 100
}

// InFlight is MaxInFlight with its default.
func (m RouteMirror) InFlight() int {
	if m.MaxInFlight <= 0 {
		return defaultMirrorMaxInFlight
	}
	return m.MaxInFlight
}

// routeMirrors checks routes[].mirror.
func (v *validator) routeMirrors(c *Config) {
	for i, r := range c.Routes {
		m := r.Mirror
		if m == nil {
			continue
		}
		key := joinKey(indexKey("routes", i), "mirror")
		if m.Upstream == "" {
			v.errs.add(joinKey(key, "upstream"), "required")
		} else if _, ok := c.Upstreams[m.Upstream]; !ok {
			v.errs.add(joinKey(key, "upstream"), "no upstream named %q", m.Upstream)
		}
		if math.IsNaN(m.Percent) || m.Percent < 0 || m.Percent > 100 {
			v.errs.add(joinKey(key, "percent"), "must be in (0, 100]")
		}
		if m.MaxInFlight < 0 {
			v.errs.add(joinKey(key, "max_in_flight"), "must not be negative")
		}
		v.size(joinKey(key, "max_body"), m.MaxBody)
	}
}
