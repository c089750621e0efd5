package server

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/dnstest"
	"github.com/handoff-proxy/handoff/pkg/handofftest"
)

// namedBackend answers with its name, listening on addr ("ip:port").
func namedBackend(t *testing.T, addr, name string) (*httptest.Server, error) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, name)
	}))
	s.Listener.Close()
	s.Listener = ln
	s.Start()
	t.Cleanup(s.Close)
	return s, nil
}

// samePortBackends starts one backend per ip, all on the same port, as
// the addresses of one host name are.
func samePortBackends(t *testing.T, ips ...string) (port int) {
	t.Helper()
	for range 20 {
		first, err := namedBackend(t, ips[0]+":0", ips[0])
		if err != nil {
			t.Fatal(err)
		}
		port = first.Listener.Addr().(*net.TCPAddr).Port
		ok := true
		for _, ip := range ips[1:] {
			if _, err := namedBackend(t, net.JoinHostPort(ip, strconv.Itoa(port)), ip); err != nil {
				ok = false // the port is taken on that address: try another
				break
			}
		}
		if ok {
			return port
		}
	}
	t.Fatal("no port free on every address")
	return 0
}

// serveLogged is serve with the server's log also kept in buf.
func serveLogged(t *testing.T, cfg *config.Config, buf *syncBuffer) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(buf, handofftest.Writer(t)), nil))
	srv, err := New(Options{Config: cfg, Listeners: map[string]net.Listener{"http": ln}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	runServer(t, srv)
	return "http://" + ln.Addr().String() + "/"
}

// waitBody requests url until the body is want.
func waitBody(t *testing.T, url, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		last = tryGet(url)
		if last == want {
			return
		}
		time.Sleep(10 * time.Millisecond) // polls the effect of a real DNS answer
	}
	t.Fatalf("body %q, want %q", last, want)
}

// waitUntil polls cond, which depends on real sockets, for up to 5s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func tryGet(url string) string {
	res, err := http.Get(url)
	if err != nil {
		return err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// TestTargetsFollowDNS: requests reach the address DNS names now; when
// DNS fails (SERVFAIL, or no answer) the last good targets keep serving
// and the failure is logged once.
func TestTargetsFollowDNS(t *testing.T) {
	tests := []struct {
		name string
		// setup starts the backends and DNS answers; it returns the
		// target, the first and second backend names and the change.
		setup func(t *testing.T, dns *dnstest.Server) (target config.Target, first, second string, change func())
		fail  dnstest.Mode
	}{
		{
			name: "A records",
			fail: dnstest.ServFail,
			setup: func(t *testing.T, dns *dnstest.Server) (config.Target, string, string, func()) {
				port := samePortBackends(t, "127.0.0.2", "127.0.0.3")
				dns.SetAddrs("app.test", "127.0.0.2")
				return config.Target{Address: "app.test:" + strconv.Itoa(port)}, "127.0.0.2", "127.0.0.3",
					func() { dns.SetAddrs("app.test", "127.0.0.3") }
			},
		},
		{
			name: "SRV records",
			fail: dnstest.Drop,
			setup: func(t *testing.T, dns *dnstest.Server) (config.Target, string, string, func()) {
				b1, err := namedBackend(t, "127.0.0.1:0", "b1")
				if err != nil {
					t.Fatal(err)
				}
				b2, err := namedBackend(t, "127.0.0.1:0", "b2")
				if err != nil {
					t.Fatal(err)
				}
				port := func(s *httptest.Server) uint16 { return uint16(s.Listener.Addr().(*net.TCPAddr).Port) }
				dns.SetAddrs("node.svc.test", "127.0.0.1")
				dns.SetSRV("_http._tcp.svc.test", dnstest.SRV{Priority: 1, Weight: 1, Port: port(b1), Target: "node.svc.test"})
				return config.Target{SRV: "_http._tcp.svc.test"}, "b1", "b2", func() {
					dns.SetSRV("_http._tcp.svc.test", dnstest.SRV{Priority: 1, Weight: 1, Port: port(b2), Target: "node.svc.test"})
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dns := dnstest.New(t)
			target, first, second, change := tt.setup(t, dns)
			cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}})
			cfg.Upstreams["web"] = config.Upstream{
				Targets:      []config.Target{target},
				ResolveEvery: 50 * time.Millisecond,
				Resolver:     dns.Addr,
				Timeouts:     config.UpstreamTimeouts{Dial: time.Second},
			}
			var logs syncBuffer
			url := serveLogged(t, cfg, &logs)
			// The first lookup happens before serving.
			if got := tryGet(url); got != first {
				t.Fatalf("first request: %q, want %q", got, first)
			}
			change()
			waitBody(t, url, second)

			dns.SetMode(tt.fail)
			q := dns.Queries()
			waitUntil(t, "several failed lookup rounds", func() bool { return dns.Queries() >= q+6 })
			for range 5 {
				if got := tryGet(url); got != second {
					t.Fatalf("while DNS fails: %q, want the last good %q", got, second)
				}
			}
			if n := strings.Count(logs.String(), "upstream DNS lookup failed"); n != 1 {
				t.Errorf("failure logged %d times, want once:\n%s", n, grepLines(logs.String(), "DNS"))
			}
			dns.SetMode(dnstest.Answer)
			waitUntil(t, "the recovery to be logged", func() bool {
				return strings.Contains(logs.String(), "upstream DNS lookup recovered")
			})
		})
	}
}
