package config

import (
	"errors"
	"testing"
)

func TestValidateMirrorAndSendProxy(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		key    string // "" means valid
		msg    string
	}{
		{name: "mirror", mutate: func(c *Config) {
			c.Routes[0].Mirror = &RouteMirror{Upstream: "web", Percent: 10, MaxBody: "1MiB"}
		}},
		{name: "mirror defaults", mutate: func(c *Config) { c.Routes[0].Mirror = &RouteMirror{Upstream: "web"} }},
		{name: "mirror without upstream", mutate: func(c *Config) { c.Routes[0].Mirror = &RouteMirror{} },
			key: "routes[0].mirror.upstream", msg: "required"},
		{name: "mirror to unknown upstream", mutate: func(c *Config) { c.Routes[1].Mirror = &RouteMirror{Upstream: "nope"} },
			key: "routes[1].mirror.upstream", msg: `no upstream named "nope"`},
		{name: "mirror percent over 100", mutate: func(c *Config) { c.Routes[0].Mirror = &RouteMirror{Upstream: "web", Percent: 101} },
			key: "routes[0].mirror.percent", msg: "must be in (0, 100]"},
		{name: "mirror bad max_body", mutate: func(c *Config) { c.Routes[0].Mirror = &RouteMirror{Upstream: "web", MaxBody: "lots"} },
			key: "routes[0].mirror.max_body"},
		{name: "send proxy v2", mutate: func(c *Config) {
			setUpstream(c, "api", func(u *Upstream) { u.ProxyProtocol = &UpstreamProxyProtocol{Send: "v2"} })
		}},
		{name: "send proxy v3", mutate: func(c *Config) {
			setUpstream(c, "api", func(u *Upstream) { u.ProxyProtocol = &UpstreamProxyProtocol{Send: "v3"} })
		}, key: "upstreams.api.proxy_protocol.send", msg: "not a PROXY protocol version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(c)
			err := c.Validate(nil)
			if tt.key == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Validate = %v, want Errors", err)
			}
			wantError(t, errs, "", tt.key, tt.msg)
			if len(errs) != 1 {
				t.Errorf("%d problems, want exactly 1: %v", len(errs), errs)
			}
		})
	}
}

func TestRouteMirrorDefaults(t *testing.T) {
	var m RouteMirror
	if m.Share() != 1 || m.MaxBodyBytes() != 1<<20 || m.InFlight() != 64 {
		t.Errorf("defaults: share %v, max body %d, in flight %d", m.Share(), m.MaxBodyBytes(), m.InFlight())
	}
	m = RouteMirror{Percent: 10, MaxBody: "0", MaxInFlight: 3}
	if m.Share() != 0.1 || m.MaxBodyBytes() != 0 || m.InFlight() != 3 {
		t.Errorf("set: share %v, max body %d, in flight %d", m.Share(), m.MaxBodyBytes(), m.InFlight())
	}
}
