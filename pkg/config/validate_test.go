package config

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// validConfig is a small valid config built in Go, without defaults.
func validConfig() *Config {
	return &Config{
		Listeners: []Listener{{Name: "http", Address: "127.0.0.1:8080"}},
		Routes: []Route{
			{Name: "api", Match: Match{Host: "api.example.com", PathPrefix: "/v1"}, Upstream: "api"},
			{Upstream: "web"},
		},
		Upstreams: map[string]Upstream{
			"api": {Targets: []Target{{Address: "127.0.0.1:9001"}}},
			"web": {Strategy: StrategyHash, HashKey: "cookie:session", Targets: []Target{{Address: "https://web.example.com"}}},
		},
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir, "a.example.com")
	otherCert, _ := selfSigned(t, dir, "b.example.com")
	notPEM := writeFile(t, dir, "not.pem", "hello")
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name      string
		mutate    func(c *Config)
		activated []string
		key       string // "" means valid
		msg       string
	}{
		{name: "valid", mutate: func(c *Config) {}},
		{name: "valid after defaults", mutate: func(c *Config) { c.ApplyDefaults() }},
		{name: "every address form", mutate: func(c *Config) {
			for i, a := range []string{":80", "[::1]:443", "localhost:8080", "0.0.0.0:0", "unix:/run/handoff/http.sock", "unix:@handoff", "[fe80::1%eth0]:80"} {
				c.Listeners = append(c.Listeners, Listener{Name: fmt.Sprint("l", i), Address: a})
			}
		}},
		{name: "https with a certificate", mutate: func(c *Config) {
			c.Listeners = append(c.Listeners, Listener{Name: "https", Address: ":443", Protocol: ProtocolHTTPS,
				TLS: &ListenerTLS{MinVersion: "1.3", Certificates: []Certificate{{Cert: cert, Key: key}}}})
		}},
		{name: "https with http3", mutate: func(c *Config) {
			c.Listeners = append(c.Listeners, Listener{Name: "https", Address: ":443", Protocol: ProtocolHTTPS, HTTP3: true,
				TLS: &ListenerTLS{Certificates: []Certificate{{Cert: cert, Key: key}}}})
		}},
		{name: "http3 on http", key: "listeners[0].http3", msg: "needs protocol https", mutate: func(c *Config) {
			c.Listeners[0].HTTP3 = true
		}},
		{name: "http3 socket name taken", key: "listeners[1].name", msg: "UDP socket name of listeners[0]", mutate: func(c *Config) {
			c.Listeners = []Listener{
				{Name: "https", Address: ":443", Protocol: ProtocolHTTPS, HTTP3: true, TLS: &ListenerTLS{Certificates: []Certificate{{Cert: cert, Key: key}}}},
				{Name: "https-quic", Address: ":8443"},
			}
		}},
		{name: "upstream tls", mutate: func(c *Config) {
			c.Upstreams["web"] = Upstream{Targets: []Target{{Address: "https://x"}}, TLS: UpstreamTLS{CA: cert, Cert: cert, Key: key}}
		}},
		{name: "listener without address, passed", activated: []string{"web"}, mutate: func(c *Config) {
			c.Listeners = append(c.Listeners, Listener{Name: "web"})
		}},
		{name: "trusted proxies", mutate: func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/8", "127.0.0.1", "::1", "fd00::/8"} }},
		{name: "wildcard host", mutate: func(c *Config) { c.Routes[0].Match.Host = "*.example.com" }},
		{name: "header and method match", mutate: func(c *Config) {
			c.Routes[0].Match.Methods = []string{"GET", "PURGE"}
			c.Routes[0].Match.Headers = map[string]string{"X-Env": "prod", "Authorization": "Bearer a b"}
		}},

		{name: "no listeners", mutate: func(c *Config) { c.Listeners = nil }, key: "listeners", msg: "no listeners: give -l or configure listeners"},
		{name: "listener name missing", mutate: func(c *Config) { c.Listeners[0].Name = "" }, key: "listeners[0].name", msg: "required"},
		{name: "listener name chars", mutate: func(c *Config) { c.Listeners[0].Name = "a:b" }, key: "listeners[0].name", msg: `"a:b" is not a valid name`},
		{name: "listener name too long", mutate: func(c *Config) { c.Listeners[0].Name = strings.Repeat("a", 256) }, key: "listeners[0].name", msg: "longer than 255 bytes"},
		{name: "listener name 255 bytes", mutate: func(c *Config) { c.Listeners[0].Name = strings.Repeat("a", 255) }},
		{name: "listener name admin", mutate: func(c *Config) { c.Listeners[0].Name = "admin" }, key: "listeners[0].name", msg: "reserved"},
		{name: "duplicate listener", mutate: func(c *Config) {
			c.Listeners = append(c.Listeners, Listener{Name: "http", Address: ":81"})
		}, key: "listeners[1].name", msg: `duplicate listener name "http" (also listeners[0])`},
		{name: "duplicate address", mutate: func(c *Config) {
			c.Listeners = append(c.Listeners, Listener{Name: "b", Address: "127.0.0.1:8080"})
		}, key: "listeners[1].address", msg: "same address as listeners[0]"},
		{name: "port 0 twice is fine", mutate: func(c *Config) {
			c.Listeners[0].Address = "127.0.0.1:0"
			c.Listeners = append(c.Listeners, Listener{Name: "b", Address: "127.0.0.1:0"})
		}},
		{name: "listener without address", mutate: func(c *Config) { c.Listeners[0].Address = "" }, activated: []string{"admin"},
			key: "listeners[0].address", msg: `listener "http" has no address and systemd passed no socket of that name (passed: admin)`},
		{name: "address without port", mutate: func(c *Config) { c.Listeners[0].Address = "127.0.0.1" }, key: "listeners[0].address", msg: "is not host:port"},
		{name: "bad port", mutate: func(c *Config) { c.Listeners[0].Address = ":70000" }, key: "listeners[0].address", msg: "not a number from 0 to 65535"},
		{name: "named port", mutate: func(c *Config) { c.Listeners[0].Address = ":http" }, key: "listeners[0].address", msg: "not a number"},
		{name: "bad host", mutate: func(c *Config) { c.Listeners[0].Address = "bad host:80" }, key: "listeners[0].address", msg: "not allowed in a host name"},
		{name: "relative unix path", mutate: func(c *Config) { c.Listeners[0].Address = "unix:run/x.sock" }, key: "listeners[0].address", msg: "must be absolute"},
		{name: "long unix path", mutate: func(c *Config) { c.Listeners[0].Address = "unix:/" + strings.Repeat("x", 107) }, key: "listeners[0].address", msg: "longer than 107 bytes"},
		{name: "protocol", mutate: func(c *Config) { c.Listeners[0].Protocol = "ftp" }, key: "listeners[0].protocol", msg: `"ftp" is not allowed (allowed: http, https`},
		{name: "https without tls", mutate: func(c *Config) { c.Listeners[0].Protocol = ProtocolHTTPS }, key: "listeners[0].tls.certificates", msg: "required for protocol https"},
		{name: "tls on http", mutate: func(c *Config) {
			c.Listeners[0].TLS = &ListenerTLS{Certificates: []Certificate{{Cert: cert, Key: key}}}
		}, key: "listeners[0].tls", msg: "protocol is not https"},
		{name: "certificate files missing", mutate: func(c *Config) {
			c.Listeners[0].Protocol = ProtocolHTTPS
			c.Listeners[0].TLS = &ListenerTLS{Certificates: []Certificate{{Cert: missing, Key: key}}}
		}, key: "listeners[0].tls.certificates[0]", msg: "load certificate"},
		{name: "certificate and key do not match", mutate: func(c *Config) {
			c.Listeners[0].Protocol = ProtocolHTTPS
			c.Listeners[0].TLS = &ListenerTLS{Certificates: []Certificate{{Cert: otherCert, Key: key}}}
		}, key: "listeners[0].tls.certificates[0]", msg: "private key does not match public key"},
		{name: "certificate without key", mutate: func(c *Config) {
			c.Listeners[0].Protocol = ProtocolHTTPS
			c.Listeners[0].TLS = &ListenerTLS{Certificates: []Certificate{{Cert: cert}}}
		}, key: "listeners[0].tls.certificates[0].key", msg: "required"},
		{name: "tls min version", mutate: func(c *Config) {
			c.Listeners[0].Protocol = ProtocolHTTPS
			c.Listeners[0].TLS = &ListenerTLS{MinVersion: "1.1", Certificates: []Certificate{{Cert: cert, Key: key}}}
		}, key: "listeners[0].tls.min_version", msg: `"1.1" is not allowed (allowed: 1.2, 1.3)`},

		{name: "https with acme only", mutate: func(c *Config) {
			c.Listeners[0].Protocol = ProtocolHTTPS
			c.Listeners[0].TLS = &ListenerTLS{ACME: &ACME{Domains: []string{"a.example.com", "b.example.com."}, Email: "ops@example.com",
				DirectoryCA: cert, Challenges: []string{ChallengeTLSALPN01}}}
		}},
		{name: "acme without domains", mutate: func(c *Config) {
			c.Listeners[0].Protocol = ProtocolHTTPS
			c.Listeners[0].TLS = &ListenerTLS{ACME: &ACME{}}
		}, key: "listeners[0].tls.acme.domains", msg: "required"},
		{name: "acme wildcard", mutate: func(c *Config) {
			c.Listeners[0].Protocol = ProtocolHTTPS
			c.Listeners[0].TLS = &ListenerTLS{ACME: &ACME{Domains: []string{"a.example.com", "*.example.com"}}}
		}, key: "listeners[0].tls.acme.domains[1]", msg: "dns-01"},
		{name: "acme duplicate domain", mutate: func(c *Config) {
			c.Listeners[0].Protocol = ProtocolHTTPS
			c.Listeners[0].TLS = &ListenerTLS{ACME: &ACME{Domains: []string{"a.example.com", "A.example.com"}}}
		}, key: "listeners[0].tls.acme.domains[1]", msg: "listed twice"},
		{name: "acme bad domain", mutate: func(c *Config) {
			c.Listeners[0].Protocol = ProtocolHTTPS
			c.Listeners[0].TLS = &ListenerTLS{ACME: &ACME{Domains: []string{"bad name"}}}
		}, key: "listeners[0].tls.acme.domains[0]", msg: "bad name"},
		{name: "acme email", mutate: func(c *Config) {
			c.Listeners[0].Protocol = ProtocolHTTPS
			c.Listeners[0].TLS = &ListenerTLS{ACME: &ACME{Domains: []string{"a.example.com"}, Email: "ops"}}
		}, key: "listeners[0].tls.acme.email", msg: "not an email address"},
		{name: "acme directory", mutate: func(c *Config) {
			c.Listeners[0].Protocol = ProtocolHTTPS
			c.Listeners[0].TLS = &ListenerTLS{ACME: &ACME{Domains: []string{"a.example.com"}, Directory: "acme.example.com/dir"}}
		}, key: "listeners[0].tls.acme.directory", msg: "not an http(s):// URL"},
		{name: "acme directory_ca", mutate: func(c *Config) {
			c.Listeners[0].Protocol = ProtocolHTTPS
			c.Listeners[0].TLS = &ListenerTLS{ACME: &ACME{Domains: []string{"a.example.com"}, DirectoryCA: notPEM}}
		}, key: "listeners[0].tls.acme.directory_ca", msg: "holds no PEM certificates"},
		{name: "acme challenge", mutate: func(c *Config) {
			c.Listeners[0].Protocol = ProtocolHTTPS
			c.Listeners[0].TLS = &ListenerTLS{ACME: &ACME{Domains: []string{"a.example.com"}, Challenges: []string{"dns-01"}}}
		}, key: "listeners[0].tls.acme.challenges[0]", msg: `"dns-01" is not allowed (allowed: http-01, tls-alpn-01)`},

		{name: "admin off", mutate: func(c *Config) { c.Admin.Listen = AdminOff }},
		{name: "admin address", mutate: func(c *Config) { c.Admin.Listen = "localhost" }, key: "admin.listen", msg: `or "off" to disable`},
		{name: "admin on a listener's address", mutate: func(c *Config) { c.Admin.Listen = "127.0.0.1:8080" }, key: "admin.listen", msg: "same address as listeners[0]"},
		{name: "log level", mutate: func(c *Config) { c.Log.Level = "verbose" }, key: "log.level", msg: "allowed: debug, info, warn, error"},
		{name: "log format", mutate: func(c *Config) { c.Log.Format = "logfmt" }, key: "log.format", msg: "allowed: json, text"},
		{name: "trusted proxy", mutate: func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/8", "10.0.0.0/33"} }, key: "trusted_proxies[1]", msg: "not a CIDR"},
		{name: "trusted proxy name", mutate: func(c *Config) { c.TrustedProxies = []string{"proxy.local"} }, key: "trusted_proxies[0]", msg: "not an IP address or CIDR"},
		{name: "negative duration", mutate: func(c *Config) { c.ShutdownTimeout = -1e9 }, key: "shutdown_timeout", msg: "must not be negative (got -1s)"},
		{name: "negative limit", mutate: func(c *Config) { c.Limits.MaxRequestBody = -1 }, key: "limits.max_request_body", msg: "must not be negative"},

		{name: "unknown upstream", mutate: func(c *Config) { c.Routes[1].Upstream = "wbe" }, key: "routes[1].upstream", msg: `unknown upstream "wbe" (have: api, web)`},
		{name: "route without upstream", mutate: func(c *Config) { c.Routes[1].Upstream = "" }, key: "routes[1].upstream", msg: "required"},
		{name: "duplicate route name", mutate: func(c *Config) { c.Routes[1].Name = "api" }, key: "routes[1].name", msg: `duplicate route name "api"`},
		{name: "default name collides", mutate: func(c *Config) { c.Routes[0].Name = "route1" }, key: "routes[1].name", msg: `duplicate route name "route1"`},
		{name: "identical match", mutate: func(c *Config) {
			c.Routes[1].Match = Match{Host: "API.example.com.", PathPrefix: "/v1"}
		}, key: "routes[1].match", msg: `same conditions as routes[0] ("api")`},
		{name: "identical methods in another order", mutate: func(c *Config) {
			c.Routes[0].Match.Methods = []string{"GET", "post"}
			c.Routes[1].Match = Match{Host: "api.example.com", PathPrefix: "/v1", Methods: []string{"POST", "GET"}}
		}, key: "routes[1].match", msg: "same conditions"},
		{name: "different methods are fine", mutate: func(c *Config) {
			c.Routes[1].Match = Match{Host: "api.example.com", PathPrefix: "/v1", Methods: []string{"POST"}}
		}},
		{name: "two default routes", mutate: func(c *Config) {
			c.Routes = append(c.Routes, Route{Upstream: "api"})
		}, key: "routes[2].match", msg: `same conditions as routes[1] ("route1")`},
		{name: "host with port", mutate: func(c *Config) { c.Routes[0].Match.Host = "api.example.com:443" }, key: "routes[0].match.host", msg: "without the port"},
		{name: "host star", mutate: func(c *Config) { c.Routes[0].Match.Host = "*" }, key: "routes[0].match.host", msg: "leave host empty"},
		{name: "host inner wildcard", mutate: func(c *Config) { c.Routes[0].Match.Host = "api.*.com" }, key: "routes[0].match.host", msg: "whole first label"},
		{name: "host IP", mutate: func(c *Config) { c.Routes[0].Match.Host = "192.0.2.1" }},
		{name: "path prefix", mutate: func(c *Config) { c.Routes[0].Match.PathPrefix = "v1" }, key: "routes[0].match.path_prefix", msg: `must start with "/"`},
		{name: "path prefix query", mutate: func(c *Config) { c.Routes[0].Match.PathPrefix = "/v1?x" }, key: "routes[0].match.path_prefix", msg: "no query"},
		{name: "method", mutate: func(c *Config) { c.Routes[0].Match.Methods = []string{"GET", "GE T"} }, key: "routes[0].match.methods[1]", msg: `"GE T" is not a method name`},
		{name: "header name", mutate: func(c *Config) { c.Routes[0].Match.Headers = map[string]string{"X Env": "a"} }, key: "routes[0].match.headers.X Env", msg: "not a header name"},
		{name: "header value", mutate: func(c *Config) { c.Routes[0].Match.Headers = map[string]string{"X-Env": "a\nb"} }, key: "routes[0].match.headers.X-Env", msg: "not a valid header value"},
		{name: "header twice", mutate: func(c *Config) { c.Routes[0].Match.Headers = map[string]string{"X-Env": "a", "x-env": "b"} }, key: "routes[0].match.headers.x-env", msg: "case-insensitive"},

		{name: "upstream name", mutate: func(c *Config) { c.Upstreams["a b"] = Upstream{Targets: []Target{{Address: "x:1"}}} }, key: "upstreams.a b", msg: "not a valid upstream name"},
		{name: "strategy", mutate: func(c *Config) { setUpstream(c, "api", func(u *Upstream) { u.Strategy = "fastest" }) },
			key: "upstreams.api.strategy", msg: `"fastest" is not a strategy (allowed: round_robin, weighted_round_robin, least_conn, random, p2c, hash)`},
		{name: "hash key", mutate: func(c *Config) { setUpstream(c, "web", func(u *Upstream) { u.HashKey = "ip" }) },
			key: "upstreams.web.hash_key", msg: "allowed: client_ip, header:<Name>, cookie:<name>"},
		{name: "hash key header", mutate: func(c *Config) { setUpstream(c, "web", func(u *Upstream) { u.HashKey = "header:X-User" }) }},
		{name: "hash key bad header", mutate: func(c *Config) { setUpstream(c, "web", func(u *Upstream) { u.HashKey = "header:" }) },
			key: "upstreams.web.hash_key", msg: "not a header name"},
		{name: "hash key bad cookie", mutate: func(c *Config) { setUpstream(c, "web", func(u *Upstream) { u.HashKey = "cookie:a=b" }) },
			key: "upstreams.web.hash_key", msg: "not a cookie name"},
		{name: "no targets", mutate: func(c *Config) { setUpstream(c, "api", func(u *Upstream) { u.Targets = nil }) },
			key: "upstreams.api.targets", msg: "at least one target"},
		{name: "target scheme", mutate: func(c *Config) { setUpstream(c, "api", func(u *Upstream) { u.Targets[0].Address = "ftp://x:21" }) },
			key: "upstreams.api.targets[0].address", msg: `scheme "ftp" is not allowed (allowed: http, https, h2c)`},
		{name: "target path", mutate: func(c *Config) { setUpstream(c, "api", func(u *Upstream) { u.Targets[0].Address = "http://x:80/api" }) },
			key: "upstreams.api.targets[0].address", msg: "only scheme://host[:port]"},
		{name: "target port", mutate: func(c *Config) { setUpstream(c, "api", func(u *Upstream) { u.Targets[0].Address = "x:0" }) },
			key: "upstreams.api.targets[0].address", msg: "from 1 to 65535"},
		{name: "target empty", mutate: func(c *Config) { setUpstream(c, "api", func(u *Upstream) { u.Targets[0].Address = "" }) },
			key: "upstreams.api.targets[0].address", msg: "required"},
		{name: "duplicate target", mutate: func(c *Config) {
			setUpstream(c, "api", func(u *Upstream) { u.Targets = append(u.Targets, Target{Address: "http://127.0.0.1:9001"}) })
		}, key: "upstreams.api.targets[1].address", msg: "same target as targets[0] (http://127.0.0.1:9001)"},
		{name: "srv and address", mutate: func(c *Config) { setUpstream(c, "api", func(u *Upstream) { u.Targets[0].SRV = "_http._tcp.x" }) },
			key: "upstreams.api.targets[0].srv", msg: "either address or srv"},
		{name: "srv name", mutate: func(c *Config) {
			setUpstream(c, "api", func(u *Upstream) { u.Targets[0] = Target{SRV: "svc.example"} })
		}, key: "upstreams.api.targets[0].srv", msg: "_service._proto"},
		{name: "duplicate srv", mutate: func(c *Config) {
			setUpstream(c, "api", func(u *Upstream) { u.Targets = []Target{{SRV: "_http._tcp.x"}, {SRV: "_http._tcp.X."}} })
		}, key: "upstreams.api.targets[1].srv", msg: "same SRV name as targets[0]"},
		{name: "resolver", mutate: func(c *Config) { setUpstream(c, "api", func(u *Upstream) { u.Resolver = "dns.example" }) },
			key: "upstreams.api.resolver", msg: "not an IP address"},
		{name: "negative resolve_every", mutate: func(c *Config) { setUpstream(c, "api", func(u *Upstream) { u.ResolveEvery = -time.Second }) },
			key: "upstreams.api.resolve_every", msg: "must not be negative"},
		{name: "negative weight", mutate: func(c *Config) { setUpstream(c, "api", func(u *Upstream) { u.Targets[0].Weight = -1 }) },
			key: "upstreams.api.targets[0].weight", msg: "must not be negative"},
		{name: "retry and capacity settings", mutate: func(c *Config) {
			setUpstream(c, "api", func(u *Upstream) {
				u.RetryOn, u.RetryBudget, u.MaxConns = []string{"status_5xx", "connect_failure"}, "35%", 100
				u.Queue = UpstreamQueue{Size: 50, Timeout: time.Second}
				u.Targets[0].MaxConns = 10
			})
		}},
		{name: "unknown retry_on", mutate: func(c *Config) { setUpstream(c, "api", func(u *Upstream) { u.RetryOn = []string{"timeout", "reset"} }) },
			key: "upstreams.api.retry_on[1]", msg: `"reset" is not one of connect_failure, timeout, status_5xx`},
		{name: "duplicate retry_on", mutate: func(c *Config) {
			setUpstream(c, "api", func(u *Upstream) { u.RetryOn = []string{"timeout", "timeout"} })
		},
			key: "upstreams.api.retry_on[1]", msg: "listed twice"},
		{name: "bad retry_budget", mutate: func(c *Config) { setUpstream(c, "api", func(u *Upstream) { u.RetryBudget = "120%" }) },
			key: "upstreams.api.retry_budget", msg: "not a percentage"},
		{name: "negative max_conns", mutate: func(c *Config) { setUpstream(c, "api", func(u *Upstream) { u.Targets[0].MaxConns = -1 }) },
			key: "upstreams.api.targets[0].max_conns", msg: "must not be negative"},
		{name: "negative queue size", mutate: func(c *Config) { setUpstream(c, "api", func(u *Upstream) { u.Queue.Size = -1 }) },
			key: "upstreams.api.queue.size", msg: "must not be negative"},
		{name: "negative retries", mutate: func(c *Config) { setUpstream(c, "api", func(u *Upstream) { u.Retries = new(-2) }) },
			key: "upstreams.api.retries", msg: "must not be negative"},
		{name: "negative upstream timeout", mutate: func(c *Config) { setUpstream(c, "api", func(u *Upstream) { u.Timeouts.Dial = -1 }) },
			key: "upstreams.api.timeouts.dial", msg: "must not be negative"},
		{name: "CA missing", mutate: func(c *Config) { setUpstream(c, "api", func(u *Upstream) { u.TLS.CA = missing }) },
			key: "upstreams.api.tls.ca", msg: "read CA file"},
		{name: "CA not PEM", mutate: func(c *Config) { setUpstream(c, "api", func(u *Upstream) { u.TLS.CA = notPEM }) },
			key: "upstreams.api.tls.ca", msg: "holds no PEM certificates"},
		{name: "client cert without key", mutate: func(c *Config) { setUpstream(c, "api", func(u *Upstream) { u.TLS.Cert = cert }) },
			key: "upstreams.api.tls.key", msg: "required with cert (both or neither)"},
		{name: "client key without cert", mutate: func(c *Config) { setUpstream(c, "api", func(u *Upstream) { u.TLS.Key = key }) },
			key: "upstreams.api.tls.cert", msg: "required with key (both or neither)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(c)
			err := c.Validate(tt.activated)
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
			for _, e := range errs {
				t.Logf("problem: %v", e)
			}
			wantError(t, errs, "", tt.key, tt.msg)
			if len(errs) != 1 {
				t.Errorf("%d problems, want exactly 1", len(errs))
			}
		})
	}
}

func setUpstream(c *Config, name string, f func(u *Upstream)) {
	u := c.Upstreams[name]
	f(&u)
	c.Upstreams[name] = u
}

func TestValidateCollectsEveryProblem(t *testing.T) {
	c := validConfig()
	c.Listeners = append(c.Listeners, Listener{Name: "http", Address: "nowhere", Protocol: "gopher"})
	c.Routes[0].Upstream = "nope"
	c.Routes[1].Match.PathPrefix = "x"
	c.Log.Level = "loud"
	c.TrustedProxies = []string{"x"}
	setUpstream(c, "api", func(u *Upstream) { u.Strategy = "best"; u.Targets[0].Address = "ftp://x" })
	c.Timeouts.Idle = -1
	err := c.Validate(nil)
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Validate = %v, want Errors", err)
	}
	want := []string{
		"listeners[1].address", "listeners[1].name", "listeners[1].protocol", "log.level",
		"routes[0].upstream", "routes[1].match.path_prefix", "timeouts.idle", "trusted_proxies[0]",
		"upstreams.api.strategy", "upstreams.api.targets[0].address",
	}
	var got []string
	for _, e := range errs {
		got = append(got, e.Key)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("keys =\n%q, want (sorted)\n%q", got, want)
	}
	if lines := strings.Split(err.Error(), "\n"); len(lines) != len(want) {
		t.Errorf("Error() has %d lines, want one per problem:\n%s", len(lines), err)
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		name string
		err  *Error
		want string
	}{
		{name: "all parts", err: &Error{Source: "conf.d/10-api.yaml", Line: 3, Key: "upstreams.api.stratgy", Msg: "unknown key"}, want: "conf.d/10-api.yaml:3: upstreams.api.stratgy: unknown key"},
		{name: "no line", err: &Error{Source: "env HANDOFF_X", Key: "x", Msg: "unknown key"}, want: "env HANDOFF_X: x: unknown key"},
		{name: "no key", err: &Error{Source: "a.toml", Line: 2, Msg: "syntax error: x"}, want: "a.toml:2: syntax error: x"},
		{name: "no source", err: &Error{Key: "listeners", Msg: "no listeners"}, want: "listeners: no listeners"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
	es := Errors{{Source: "b", Key: "a", Msg: "1"}, {Source: "a", Key: "z", Msg: "2"}, {Source: "a", Key: "b", Msg: "3", Err: fs.ErrPermission}, {Source: "a", Key: "b", Msg: "4"}}
	sortErrors(es)
	if got, want := es.Error(), "a: b: 3\na: b: 4\na: z: 2\nb: a: 1"; got != want {
		t.Errorf("sorted = %q, want %q", got, want)
	}
	var err error = es
	if !errors.Is(err, fs.ErrPermission) {
		t.Error("errors.Is does not see a problem's underlying error")
	}
	var one *Error
	if !errors.As(err, &one) || one.Msg != "3" {
		t.Errorf("errors.As(*Error) = %v", one)
	}
}
