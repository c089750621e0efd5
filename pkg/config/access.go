package config

import (
	"net/textproto"
	"strings"
	"time"

	"github.com/handoff-proxy/handoff/pkg/access"
	"github.com/handoff-proxy/handoff/pkg/auth"
)

// ProtocolForwardProxy serves a forward (client-configured) HTTP proxy:
// absolute-form requests are sent to their origin and CONNECT opens
// tunnels (RFC 9110 §9.3.6), to the destinations the listener allows.
const ProtocolForwardProxy = "forward_proxy"

// Access is an IP access list on the client address (package clientip:
// trusted proxies respected). Deny wins; a non-empty Allow denies every
// address it does not list (403). Entries are CIDRs or bare IPs, IPv4 or
// IPv6. Empty lists allow everyone.
type Access struct {
	Allow []string `koanf:"allow" json:"allow,omitempty" yaml:"allow,omitempty"`
	Deny  []string `koanf:"deny" json:"deny,omitempty" yaml:"deny,omitempty"`
}

// Rate-limit keys.
const (
	RateKeyClientIP = "client_ip"
	RateKeyRoute    = "route"
	RateKeyHeader   = "header:"
)

// RateLimit limits the requests of a route per key, with a GCRA shared
// by every process through state.redis when it is set (local otherwise).
// Over the limit: 429 with Retry-After.
type RateLimit struct {
	// Requests allowed per Per. Required.
	Requests int `koanf:"requests" json:"requests" yaml:"requests"`
	// Per is the period of Requests. Zero means 1s.
	Per time.Duration `koanf:"per" json:"per,omitempty" yaml:"per,omitempty"`
	// Burst is how many requests may come at once. Zero means Requests.
	Burst int `koanf:"burst" json:"burst,omitempty" yaml:"burst,omitempty"`
	// Key is what is limited: "client_ip" (default), "header:<Name>"
	// (requests without the header share the key "") or "route" (one
	// limit for everyone).
	Key string `koanf:"key" json:"key,omitempty" yaml:"key,omitempty"`
	// FailClosed reports whether requests are refused (429) while Redis
	// cannot be reached. False means fail open: each process limits on
	// its own meanwhile.
	FailClosed bool `koanf:"fail_closed" json:"fail_closed,omitempty" yaml:"fail_closed,omitempty"`
}

// Auth requires credentials: Basic checked against an htpasswd file,
// and/or Bearer tokens from a token file. Files are read at load and on
// every reload. On a route: 401 with WWW-Authenticate; on a forward
// proxy listener: 407 with Proxy-Authenticate.
type Auth struct {
	Basic  *BasicAuth  `koanf:"basic" json:"basic,omitempty" yaml:"basic,omitempty"`
	Bearer *BearerAuth `koanf:"bearer" json:"bearer,omitempty" yaml:"bearer,omitempty"`
}

// BasicAuth is HTTP Basic authentication (RFC 7617).
type BasicAuth struct {
	// Htpasswd is the path of an htpasswd file (bcrypt, {SHA} or apr1
	// entries). Required.
	Htpasswd string `koanf:"htpasswd" json:"htpasswd" yaml:"htpasswd"`
	// Realm shown to the user. Empty means "handoff".
	Realm string `koanf:"realm" json:"realm,omitempty" yaml:"realm,omitempty"`
}

// BearerAuth is Bearer token authentication (RFC 6750).
type BearerAuth struct {
	// TokensFile lists tokens as "name sha256:<hex>" lines. Required.
	TokensFile string `koanf:"tokens_file" json:"tokens_file" yaml:"tokens_file"`
}

// Destinations limits where a forward proxy connects, on the resolved
// address. Loopback, link-local (169.254.169.254 included), unspecified,
// multicast and the proxy's own addresses are refused unless Allow lists
// them; Deny refuses more.
type Destinations struct {
	Allow []string `koanf:"allow" json:"allow,omitempty" yaml:"allow,omitempty"`
	Deny  []string `koanf:"deny" json:"deny,omitempty" yaml:"deny,omitempty"`
}

// RateLimitPer is Per with its default.
func (r RateLimit) RateLimitPer() time.Duration {
	if r.Per <= 0 {
		return time.Second
	}
	return r.Per
}

// access validates the access, rate_limit and auth settings of routes and
// listeners, and the forward proxy settings of listeners.
func (v *validator) access(c *Config) {
	for i, r := range c.Routes {
		key := indexKey("routes", i)
		v.accessList(joinKey(key, "access"), r.Access)
		v.rateLimit(joinKey(key, "rate_limit"), r.RateLimit)
		v.auth(joinKey(key, "auth"), r.Auth)
	}
	for i, l := range c.Listeners {
		key := indexKey("listeners", i)
		v.accessList(joinKey(key, "access"), l.Access)
		v.auth(joinKey(key, "auth"), l.Auth)
		fwd := l.Protocol == ProtocolForwardProxy
		if l.Auth != nil && !fwd {
			v.errs.add(joinKey(key, "auth"), "only for protocol forward_proxy: put auth on routes")
		}
		if !fwd && (len(l.ConnectPorts) > 0 || l.Destinations != nil) {
			v.errs.add(key, "connect_ports and destinations are only for protocol forward_proxy")
		}
		for j, p := range l.ConnectPorts {
			if p < 1 || p > 65535 {
				v.errs.add(indexKey(joinKey(key, "connect_ports"), j), "%d is not a TCP port", p)
			}
		}
		if d := l.Destinations; d != nil {
			if _, err := access.Parse(d.Allow, d.Deny); err != nil {
				v.errs.add(joinKey(key, "destinations"), "%v", err)
			}
		}
		if l.MaxConnsPerClient < 0 || l.MaxConns < 0 {
			v.errs.add(key, "max_conns and max_conns_per_client must not be negative")
		}
	}
}

func (v *validator) accessList(key string, a *Access) {
	if a == nil {
		return
	}
	if _, err := access.Parse(a.Allow, a.Deny); err != nil {
		v.errs.add(key, "%v", err)
	}
}

func (v *validator) rateLimit(key string, r *RateLimit) {
	if r == nil {
		return
	}
	if r.Requests <= 0 {
		v.errs.add(joinKey(key, "requests"), "required: a positive number of requests per period")
	} else if r.RateLimitPer()/time.Duration(r.Requests) <= 0 {
		v.errs.add(key, "more than one request per nanosecond")
	}
	switch {
	case r.Key == "" || r.Key == RateKeyClientIP || r.Key == RateKeyRoute:
	case strings.HasPrefix(r.Key, RateKeyHeader):
		name := r.Key[len(RateKeyHeader):]
		if name == "" || textproto.CanonicalMIMEHeaderKey(name) == "" || strings.ContainsAny(name, " :\t") {
			v.errs.add(joinKey(key, "key"), "%q: want header:<Name>", r.Key)
		}
	default:
		v.errs.add(joinKey(key, "key"), "%q: want client_ip, route or header:<Name>", r.Key)
	}
}

func (v *validator) auth(key string, a *Auth) {
	if a == nil {
		return
	}
	if a.Basic == nil && a.Bearer == nil {
		v.errs.add(key, "set basic and/or bearer")
	}
	if a.Basic != nil && a.Basic.Htpasswd == "" {
		v.errs.add(joinKey(key, "basic.htpasswd"), "required")
	} else if a.Basic != nil {
		if _, err := auth.LoadHtpasswd(a.Basic.Htpasswd); err != nil {
			v.errs.add(joinKey(key, "basic.htpasswd"), "%v", err)
		}
	}
	if a.Basic != nil && strings.ContainsAny(a.Basic.Realm, "\"\\\r\n") {
		v.errs.add(joinKey(key, "basic.realm"), "must not contain quotes, backslashes or line breaks")
	}
	if a.Bearer != nil && a.Bearer.TokensFile == "" {
		v.errs.add(joinKey(key, "bearer.tokens_file"), "required")
	} else if a.Bearer != nil {
		if _, err := auth.LoadTokens(a.Bearer.TokensFile); err != nil {
			v.errs.add(joinKey(key, "bearer.tokens_file"), "%v", err)
		}
	}
}
