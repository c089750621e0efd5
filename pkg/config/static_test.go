package config

import (
	"reflect"
	"slices"
	"testing"
	"time"
)

func TestStaticChanges(t *testing.T) {
	base := func() *Config {
		c := validConfig()
		c.Listeners = append(c.Listeners, Listener{Name: "web", Address: ":443", Protocol: ProtocolHTTPS,
			TLS: &ListenerTLS{Certificates: []Certificate{{Cert: "/a.crt", Key: "/a.key"}}}})
		c.ApplyDefaults()
		return c
	}
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   []string
	}{
		{name: "nothing", mutate: func(c *Config) {}},
		{name: "dynamic only", mutate: func(c *Config) {
			c.Routes = c.Routes[:1]
			c.TrustedProxies = []string{"10.0.0.0/8"}
			setUpstream(c, "api", func(u *Upstream) { u.Targets[0].Weight = 9 })
		}},
		{name: "listeners reordered", mutate: func(c *Config) { slices.Reverse(c.Listeners) }},
		{name: "admin", mutate: func(c *Config) { c.Admin.Listen = "off" }, want: []string{"admin.listen"}},
		{name: "process-wide", mutate: func(c *Config) {
			c.Log.Level = "debug"
			c.Log.Access = new(false)
			c.Timeouts.Request = time.Minute
			c.Limits.MaxHeaderBytes = 1
			c.ShutdownTimeout = time.Second
		}, want: []string{"limits.max_header_bytes", "log.access", "log.level", "shutdown_timeout", "timeouts.request"}},
		{name: "listener address", mutate: func(c *Config) { c.Listeners[0].Address = ":81" }, want: []string{`listeners["http"].address`}},
		// Certificates are dynamic: a reload loads them in place.
		{name: "listener certificate", mutate: func(c *Config) { c.Listeners[1].TLS.Certificates[0].Cert = "/b.crt" }},
		{name: "listener certificate added", mutate: func(c *Config) {
			c.Listeners[1].TLS.Certificates = append(c.Listeners[1].TLS.Certificates, Certificate{Cert: "/c.crt", Key: "/c.key"})
		}},
		// client_auth too: the CA is read again like the certificates.
		{name: "listener client_auth", mutate: func(c *Config) {
			c.Listeners[1].TLS.ClientAuth = &ClientAuth{CA: "/ca.pem", Mode: ClientAuthVerifyIfGiven}
		}},
		{name: "access sample and tracing are dynamic", mutate: func(c *Config) {
			c.Log.AccessSample = 0.5
			c.Tracing.OTLPEndpoint = "http://127.0.0.1:4318"
		}},
		{name: "access file and format are static", mutate: func(c *Config) {
			c.Log.AccessFile, c.Log.AccessFormat = "/var/log/a.log", "combined"
		}, want: []string{"log.access_file", "log.access_format"}},
		{name: "listener TLS version", mutate: func(c *Config) { c.Listeners[1].TLS.MinVersion = "1.3" },
			want: []string{`listeners["web"].tls.min_version`}},
		{name: "listener becomes https", mutate: func(c *Config) {
			c.Listeners[0].Protocol = ProtocolHTTPS
			c.Listeners[0].TLS = &ListenerTLS{Certificates: []Certificate{{Cert: "/a.crt", Key: "/a.key"}}, MinVersion: "1.2"}
		}, want: []string{`listeners["http"].protocol`, `listeners["http"].tls.min_version`}},
		{name: "listener added", mutate: func(c *Config) {
			c.Listeners = append(c.Listeners, Listener{Name: "new", Address: ":82", Protocol: "http"})
		},
			want: []string{`listeners["new"]`, `listeners["new"].address`, `listeners["new"].name`, `listeners["new"].protocol`}},
		{name: "listener removed", mutate: func(c *Config) { c.Listeners = c.Listeners[1:] },
			want: []string{`listeners["http"]`, `listeners["http"].address`, `listeners["http"].name`, `listeners["http"].protocol`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old, cur := base(), base()
			tt.mutate(cur)
			if got := StaticChanges(old, cur); !slices.Equal(got, tt.want) {
				t.Errorf("StaticChanges = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStatic(t *testing.T) {
	c := loadFull(t).Config
	s := c.Static()
	want := Static{Listeners: c.Listeners, Admin: c.Admin, Log: c.Log, Timeouts: c.Timeouts, Limits: c.Limits, ShutdownTimeout: c.ShutdownTimeout}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("Static() = %+v, want %+v", s, want)
	}
	s.Listeners[0].Name = "changed"
	*s.Log.Access = true
	if c.Listeners[0].Name == "changed" || *c.Log.Access {
		t.Error("Static shares memory with the config")
	}
}
