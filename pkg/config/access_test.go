package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestValidateAccess(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	_ = os.WriteFile(users, []byte("alice:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=\n"), 0o600)
	plain := filepath.Join(dir, "plain")
	_ = os.WriteFile(plain, []byte("alice:secret\n"), 0o600)
	tokens := filepath.Join(dir, "tokens")
	_ = os.WriteFile(tokens, []byte("ci sha256:"+string(make([]byte, 0))+"\n"), 0o600)
	tests := []struct {
		name     string
		mutate   func(c *Config)
		key, msg string
	}{
		{name: "route access", mutate: func(c *Config) {
			c.Routes[0].Access = &Access{Allow: []string{"10.0.0.0/8", "fd00::/8", "192.0.2.1"}, Deny: []string{"10.1.0.0/16"}}
		}},
		{name: "bad cidr", mutate: func(c *Config) { c.Routes[0].Access = &Access{Allow: []string{"10.0.0.0/33"}} },
			key: "routes[0].access", msg: "allow: [0]"},
		{name: "rate limit", mutate: func(c *Config) {
			c.Routes[0].RateLimit = &RateLimit{Requests: 100, Per: time.Second, Burst: 50, Key: "header:X-Api-Key"}
		}},
		{name: "rate limit without requests", mutate: func(c *Config) { c.Routes[0].RateLimit = &RateLimit{Per: time.Second} },
			key: "routes[0].rate_limit.requests", msg: "required"},
		{name: "rate limit bad key", mutate: func(c *Config) { c.Routes[0].RateLimit = &RateLimit{Requests: 1, Key: "cookie:x"} },
			key: "routes[0].rate_limit.key", msg: "want client_ip"},
		{name: "basic auth", mutate: func(c *Config) { c.Routes[0].Auth = &Auth{Basic: &BasicAuth{Htpasswd: users}} }},
		{name: "htpasswd in plain text", mutate: func(c *Config) { c.Routes[0].Auth = &Auth{Basic: &BasicAuth{Htpasswd: plain}} },
			key: "routes[0].auth.basic.htpasswd", msg: "unsupported password hash"},
		{name: "missing htpasswd", mutate: func(c *Config) { c.Routes[0].Auth = &Auth{Basic: &BasicAuth{Htpasswd: filepath.Join(dir, "none")}} },
			key: "routes[0].auth.basic.htpasswd", msg: "no such file"},
		{name: "bad tokens", mutate: func(c *Config) { c.Routes[0].Auth = &Auth{Bearer: &BearerAuth{TokensFile: tokens}} },
			key: "routes[0].auth.bearer.tokens_file", msg: "sha256"},
		{name: "empty auth", mutate: func(c *Config) { c.Routes[0].Auth = &Auth{} }, key: "routes[0].auth", msg: "set basic"},
		{name: "forward proxy", mutate: func(c *Config) {
			c.Listeners = append(c.Listeners, Listener{Name: "fwd", Address: ":3128", Protocol: ProtocolForwardProxy,
				Auth: &Auth{Basic: &BasicAuth{Htpasswd: users}}, ConnectPorts: []int{443, 8443},
				Destinations: &Destinations{Allow: []string{"127.0.0.1"}}, Access: &Access{Allow: []string{"10.0.0.0/8"}}})
		}},
		{name: "connect_ports on http", mutate: func(c *Config) { c.Listeners[0].ConnectPorts = []int{443} },
			key: "listeners[0]", msg: "only for protocol forward_proxy"},
		{name: "auth on an http listener", mutate: func(c *Config) { c.Listeners[0].Auth = &Auth{Basic: &BasicAuth{Htpasswd: users}} },
			key: "listeners[0].auth", msg: "only for protocol forward_proxy"},
		{name: "bad connect port", mutate: func(c *Config) {
			c.Listeners = append(c.Listeners, Listener{Name: "fwd", Address: ":3128", Protocol: ProtocolForwardProxy, ConnectPorts: []int{0}})
		}, key: "listeners[1].connect_ports[0]", msg: "not a TCP port"},
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
		})
	}
}
