package server

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/state/statetest"
)

// sawBackend answers 200 and tells which credentials reached it.
func sawBackend(t *testing.T) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Saw-Authorization", r.Header.Get("Authorization"))
		w.Header().Set("X-Saw-Proxy-Authorization", r.Header.Get("Proxy-Authorization"))
		io.WriteString(w, "ok "+r.URL.Path)
	}))
	t.Cleanup(s.Close)
	return s
}

func pget(t *testing.T, url string, hdr ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestAccessSpoofedForwardingHeaders(t *testing.T) {
	be := sawBackend(t)
	mk := func(trusted []string) *config.Config {
		cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, hostOf(be))
		cfg.TrustedProxies = trusted
		cfg.Routes = []config.Route{
			{Name: "internal", Match: config.Match{PathPrefix: "/internal"}, Upstream: "web",
				Access: &config.Access{Allow: []string{"10.0.0.0/8", "fd00::/8"}, Deny: []string{"10.66.0.0/16"}}},
			{Name: "default", Upstream: "web"},
		}
		return cfg
	}
	untrusted := "http://" + serve(t, mk(nil), nil).addrs["http"]
	trusted := "http://" + serve(t, mk([]string{"127.0.0.1"}), nil).addrs["http"]
	tests := []struct {
		name, base, xff string
		want            int
	}{
		{"untrusted peer, no header", untrusted, "", 403},
		{"untrusted peer spoofs an allowed address", untrusted, "10.1.2.3", 403},
		{"untrusted peer spoofs a chain", untrusted, "10.1.2.3, 10.4.5.6", 403},
		{"trusted peer forwards an allowed client", trusted, "10.1.2.3", 200},
		{"trusted peer forwards an allowed v6 client", trusted, "fd00::1", 200},
		{"trusted peer forwards a denied client", trusted, "10.66.1.1", 403},
		{"trusted peer forwards an outside client", trusted, "192.0.2.7", 403},
		{"client prepends an allowed address behind a trusted proxy", trusted, "10.1.2.3, 192.0.2.7", 403},
		{"trusted peer, no header: the peer itself", trusted, "", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.xff != "" {
				hdr = []string{"X-Forwarded-For", tt.xff}
			}
			if got := pget(t, tt.base+"/internal/x", hdr...).StatusCode; got != tt.want {
				t.Fatalf("status %d, want %d", got, tt.want)
			}
		})
	}
	if got := pget(t, untrusted+"/other").StatusCode; got != 200 {
		t.Fatalf("route without access: %d", got)
	}
}

func TestListenerAccess(t *testing.T) {
	be := sawBackend(t)
	cfg := baseConfig([]config.Listener{
		{Name: "open", Protocol: config.ProtocolHTTP},
		{Name: "closed", Protocol: config.ProtocolHTTP, Access: &config.Access{Deny: []string{"127.0.0.0/8"}}},
	}, hostOf(be))
	r := serve(t, cfg, nil)
	if got := pget(t, "http://"+r.addrs["open"]+"/").StatusCode; got != 200 {
		t.Fatalf("open listener: %d", got)
	}
	if got := pget(t, "http://"+r.addrs["closed"]+"/").StatusCode; got != 403 {
		t.Fatalf("listener denying 127.0.0.0/8: %d, want 403", got)
	}
}

func htpasswdFile(t *testing.T, user, pw string) string {
	t.Helper()
	if _, err := exec.LookPath("htpasswd"); err != nil {
		t.Skip("htpasswd not installed (make deps installs apache2-utils)")
	}
	path := filepath.Join(t.TempDir(), "users")
	if out, err := exec.Command("htpasswd", "-cbB", path, user, pw).CombinedOutput(); err != nil {
		t.Fatalf("htpasswd: %v %s", err, out)
	}
	return path
}

func TestRouteBasicAuth(t *testing.T) {
	be := sawBackend(t)
	users := htpasswdFile(t, "alice", "s3cret")
	cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, hostOf(be))
	cfg.Routes = []config.Route{
		{Name: "private", Match: config.Match{PathPrefix: "/private"}, Upstream: "web",
			Auth: &config.Auth{Basic: &config.BasicAuth{Htpasswd: users, Realm: "staff"}}},
		{Name: "default", Upstream: "web"},
	}
	base := "http://" + serve(t, cfg, nil).addrs["http"] + "/private"
	resp := pget(t, base)
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `Basic realm="staff"`) {
		t.Fatalf("no credentials: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	basic := func(u, p string) string {
		req, _ := http.NewRequest("GET", "/", nil)
		req.SetBasicAuth(u, p)
		return req.Header.Get("Authorization")
	}
	resp = pget(t, base, "Authorization", basic("alice", "s3cret"))
	if resp.StatusCode != 200 || resp.Header.Get("X-Saw-Authorization") != "" {
		t.Fatalf("right password: %d, upstream saw Authorization %q", resp.StatusCode, resp.Header.Get("X-Saw-Authorization"))
	}
	// Failed attempts: five pass as 401, the sixth locks the user and the
	// address out with exponential backoff.
	for i := range 6 {
		if got := pget(t, base, "Authorization", basic("alice", "wrong")).StatusCode; got != 401 {
			t.Fatalf("wrong password %d: %d", i, got)
		}
	}
	resp = pget(t, base, "Authorization", basic("alice", "s3cret"))
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("locked out: %d Retry-After %q, want 429", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

// TestRateLimitSharedThroughRedis: two servers (two processes' worth)
// share one limit through one Redis; then Redis dies and no request fails
// because of it.
func TestRateLimitSharedThroughRedis(t *testing.T) {
	// go-redis's pool retries a failed dial on a goroutine that sleeps
	// 1s between attempts and only then sees the client closed
	// (internal/pool tryDial): let it end before goleak looks.
	t.Cleanup(func() { time.Sleep(1100 * time.Millisecond) })
	rd := statetest.StartRedis(t)
	be := sawBackend(t)
	mk := func() *config.Config {
		cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, hostOf(be))
		cfg.State.Redis = &config.Redis{URL: "redis://" + rd.Addr + "/0"}
		cfg.Routes = []config.Route{
			{Name: "limited", Match: config.Match{PathPrefix: "/limited"}, Upstream: "web",
				RateLimit: &config.RateLimit{Requests: 10, Per: time.Hour, Key: config.RateKeyRoute}},
			{Name: "roomy", Match: config.Match{PathPrefix: "/roomy"}, Upstream: "web",
				RateLimit: &config.RateLimit{Requests: 100000, Per: time.Second}},
			{Name: "default", Upstream: "web"},
		}
		return cfg
	}
	a := "http://" + serve(t, mk(), nil).addrs["http"]
	b := "http://" + serve(t, mk(), nil).addrs["http"]
	allowed := 0
	var last *http.Response
	for range 15 {
		for _, base := range []string{a, b} {
			last = pget(t, base+"/limited")
			if last.StatusCode == 200 {
				allowed++
			}
		}
	}
	t.Logf("2 servers: %d of 30 allowed, limit 10", allowed)
	if allowed != 10 {
		t.Fatalf("%d allowed, want 10", allowed)
	}
	if last.StatusCode != 429 || last.Header.Get("Retry-After") == "" || !strings.Contains(last.Header.Get("RateLimit-Policy"), "q=10;w=3600") {
		t.Fatalf("over the limit: %d, headers %v", last.StatusCode, last.Header)
	}
	rd.Stop()
	start := time.Now()
	defer func() { t.Logf("100 requests with redis down took %v", time.Since(start)) }()
	for i := range 50 {
		for _, base := range []string{a, b} {
			if got := pget(t, base+"/roomy").StatusCode; got != 200 {
				t.Fatalf("request %d with redis down: %d", i, got)
			}
		}
	}
}

func curl(t *testing.T, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	out, _ := exec.Command("curl", append([]string{"-s", "-o", "/dev/null", "-w", "%{http_code} %{http_connect}", "-m", "5"}, args...)...).Output()
	return string(out)
}

func TestForwardProxy(t *testing.T) {
	be := sawBackend(t)
	_, port, _ := strings.Cut(hostOf(be), ":")
	p, _ := strconv.Atoi(port)
	users := htpasswdFile(t, "alice", "s3cret")
	open := config.Listener{Name: "fwd", Protocol: config.ProtocolForwardProxy, ConnectPorts: []int{p},
		Auth:         &config.Auth{Basic: &config.BasicAuth{Htpasswd: users}},
		Destinations: &config.Destinations{Allow: []string{"127.0.0.0/8"}}}
	strict := config.Listener{Name: "strict", Protocol: config.ProtocolForwardProxy, ConnectPorts: []int{p}}
	cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}, open, strict}, hostOf(be))
	r := serve(t, cfg, nil)
	fwd, st := "http://"+r.addrs["fwd"], "http://"+r.addrs["strict"]
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no credentials", []string{"-x", fwd, be.URL + "/a"}, "407 000"},
		{"wrong credentials", []string{"-x", fwd, "-U", "alice:nope", be.URL + "/a"}, "407 000"},
		{"absolute-form", []string{"-x", fwd, "-U", "alice:s3cret", be.URL + "/a"}, "200 000"},
		{"CONNECT tunnel", []string{"-p", "-x", fwd, "-U", "alice:s3cret", be.URL + "/t"}, "200 200"},
		{"CONNECT to a port outside connect_ports", []string{"-p", "-x", fwd, "-U", "alice:s3cret", "http://" + r.addrs["http"] + "/"}, "000 403"},
		{"loopback refused without destinations.allow", []string{"-x", st, be.URL + "/a"}, "403 000"},
		{"CONNECT to loopback refused without destinations.allow", []string{"-p", "-x", st, be.URL + "/a"}, "000 403"},
		{"CONNECT by a name that resolves to loopback", []string{"-p", "-x", st, "http://localhost:" + port + "/a"}, "000 403"},
		{"origin-form on a forward proxy", []string{st + "/x"}, "400 000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// curl prints the CONNECT's status when the tunnel fails.
			if got := curl(t, tt.args...); got != tt.want {
				t.Fatalf("curl %v: %s, want %s", tt.args, got, tt.want)
			}
		})
	}
	// The upstream never sees Proxy-Authorization.
	out, _ := exec.Command("curl", "-s", "-D", "-", "-o", "/dev/null", "-x", fwd, "-U", "alice:s3cret", be.URL+"/h").Output()
	if strings.Contains(strings.ToLower(string(out)), "x-saw-proxy-authorization: basic") {
		t.Fatalf("Proxy-Authorization forwarded: %s", out)
	}
}

func TestListenerConnCaps(t *testing.T) {
	be := sawBackend(t)
	cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP, MaxConnsPerClient: 2}}, hostOf(be))
	addr := serve(t, cfg, nil).addrs["http"]
	var conns []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	ask := func(c net.Conn) error {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	if err := ask(conns[0]); err != nil {
		t.Fatalf("first connection: %v", err)
	}
	if err := ask(conns[1]); err != nil {
		t.Fatalf("second connection: %v", err)
	}
	if err := ask(conns[2]); err == nil {
		t.Fatal("third connection from one client served; cap is 2")
	}
	conns[0].Close()
	// The slot frees once the server sees the close.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		err = ask(c)
		c.Close()
		if err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("a freed slot was never given to a new connection")
}
