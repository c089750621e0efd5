package config_test

import (
	"testing"

	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// config validates target addresses with upstream.ParseAddress. These
// tests hold the two together: every address that validates must be one
// upstream can build a pool from.

func configWithTarget(addr string) *config.Config {
	return &config.Config{
		Listeners: []config.Listener{{Name: "http", Address: "127.0.0.1:0"}},
		Routes:    []config.Route{{Upstream: "u"}},
		Upstreams: map[string]config.Upstream{"u": {Targets: []config.Target{{Address: addr}}}},
	}
}

func TestTargetAddressesAgreeWithUpstream(t *testing.T) {
	tests := []struct {
		name  string
		addr  string
		valid bool
	}{
		{name: "host:port", addr: "127.0.0.1:8080", valid: true},
		{name: "name", addr: "backend.internal:80", valid: true},
		{name: "http", addr: "http://backend", valid: true},
		{name: "https default port", addr: "https://backend", valid: true},
		{name: "h2c", addr: "h2c://[::1]:9000", valid: true},
		{name: "trailing slash", addr: "http://backend:80/", valid: true},
		{name: "path", addr: "http://backend/api", valid: false},
		{name: "query", addr: "http://backend?x", valid: false},
		{name: "user", addr: "http://u@backend", valid: false},
		{name: "scheme", addr: "ws://backend", valid: false},
		{name: "no host", addr: "http://:80", valid: false},
		{name: "empty", addr: "", valid: false},
		{name: "port range", addr: "backend:65536", valid: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := configWithTarget(tt.addr).Validate(nil)
			if (err == nil) != tt.valid {
				t.Fatalf("Validate(%q) = %v, want valid %v", tt.addr, err, tt.valid)
			}
			if tt.valid {
				if _, err := upstream.ParseAddress(tt.addr); err != nil {
					t.Errorf("config accepts %q, upstream.ParseAddress does not: %v", tt.addr, err)
				}
			}
		})
	}
}

func FuzzTargetAddress(f *testing.F) {
	for _, seed := range []string{"127.0.0.1:80", "https://x", "h2c://[::1]:1", "http://x/", "x", "http://x:", "ftp://x", "http://[::1%25eth0]:80", "HTTP://X:1"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		c := configWithTarget(addr)
		if err := c.Validate(nil); err != nil {
			return
		}
		c.ApplyDefaults()
		spec := upstream.PoolSpec{Targets: []upstream.TargetSpec{{Address: c.Upstreams["u"].Targets[0].Address}}}
		if _, err := upstream.NewRegistry().NewPool("u", spec); err != nil {
			t.Fatalf("config accepts %q, upstream does not: %v", addr, err)
		}
	})
}
