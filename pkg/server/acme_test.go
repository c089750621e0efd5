package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/acme/acmetest"
	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/handofftest"
	"github.com/handoff-proxy/handoff/pkg/state/statetest"
)

// serveOn is serve with listeners the test bound before (pebble must know
// their ports before handoff starts).
func serveOn(t *testing.T, cfg *config.Config, lns map[string]net.Listener, load ...func() (*config.Config, error)) *Server {
	t.Helper()
	o := Options{Config: cfg, Listeners: lns, Logger: handofftest.Logger(t)}
	if len(load) > 0 {
		o.Load = load[0]
	}
	srv, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	runServer(t, srv)
	return srv
}

func listen(t *testing.T) (net.Listener, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln, ln.Addr().(*net.TCPAddr).Port
}

// getTLS GETs path from addr with SNI name, verifying with roots.
func getTLS(addr, name string, roots *x509.CertPool) (*http.Response, error) {
	tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: name, RootCAs: roots}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + addr + "/")
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

func waitTLS(t *testing.T, addr, name string, roots *x509.CertPool) *http.Response {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for {
		resp, err := getTLS(addr, name, roots)
		if err == nil {
			return resp
		}
		if time.Now().After(deadline) {
			t.Fatalf("no verified HTTPS answer for %s: %v", name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestACMEServedStaticWins: an https listener with tls.acme serves the
// ACME certificate for its names, a static certificate wins for the names
// it covers, and both show in /api/v1/certificates and the metrics.
func TestACMEServedStaticWins(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", t.TempDir())
	p := acmetest.Start(t, acmetest.Options{AlwaysValid: true})
	ca := handofftest.NewCA(t)
	static := ca.Issue(t, t.TempDir(), "static", "static.test")
	b := echoBackend(t, "b")
	lnHTTP, _ := listen(t)
	lnHTTPS, _ := listen(t)
	cfg := baseConfig([]config.Listener{
		{Name: "http", Protocol: config.ProtocolHTTP},
		{Name: "https", Protocol: config.ProtocolHTTPS, TLS: &config.ListenerTLS{
			Certificates: []config.Certificate{{Cert: static.CertPath, Key: static.KeyPath}},
			ACME: &config.ACME{Domains: []string{"acme.test", "static.test"}, Email: "ops@example.com",
				Directory: p.Directory, DirectoryCA: p.DirectoryCAFile}}},
	}, hostOf(b))
	cfg.ApplyDefaults()
	srv := serveOn(t, cfg, map[string]net.Listener{"http": lnHTTP, "https": lnHTTPS})
	addr := lnHTTPS.Addr().String()

	start := time.Now()
	resp := waitTLS(t, addr, "acme.test", p.Roots(t))
	t.Logf("time to first certificate: %v", time.Since(start))
	if resp.StatusCode != 200 || resp.Header.Get("X-Backend") != "b" {
		t.Errorf("acme.test: %d from %q", resp.StatusCode, resp.Header.Get("X-Backend"))
	}
	if _, err := getTLS(addr, "static.test", ca.Pool()); err != nil {
		t.Errorf("static.test not served with the static certificate: %v", err)
	}

	// A challenge path for a name that is not ours goes to the routes.
	req, _ := http.NewRequest(http.MethodGet, "http://"+lnHTTP.Addr().String()+"/.well-known/acme-challenge/abc", nil)
	req.Host = "other.test"
	if r, err := http.DefaultClient.Do(req); err != nil || r.Header.Get("X-Backend") != "b" {
		t.Errorf("challenge path for a foreign host not routed: %v", err)
	} else {
		r.Body.Close()
	}

	admin := httptest.NewServer(srv.adminHandler())
	defer admin.Close()
	r, err := http.Get(admin.URL + "/api/v1/certificates")
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ Certificates []servedCert }
	err = json.NewDecoder(r.Body).Decode(&got)
	r.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	var summary []string
	for _, c := range got.Certificates {
		summary = append(summary, c.Name+"="+c.Source)
		if c.NotAfter.Before(time.Now()) || c.Issuer == "" {
			t.Errorf("certificate %+v", c)
		}
	}
	if s := strings.Join(summary, " "); s != "acme.test=acme static.test=static" {
		t.Errorf("/api/v1/certificates: %s", s)
	}
	r, err = http.Get(admin.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if strings.Contains(string(body), `handoff_tls_certificate_renewals_total{kind="obtain",result="success"} 0`) {
		t.Error("no successful order counted")
	}
	for _, want := range []string{`handoff_tls_certificate_expiry_seconds{name="acme.test"}`,
		`handoff_tls_certificate_expiry_seconds{name="static.test"}`,
		`handoff_tls_certificate_renewals_total{kind="obtain",result="success"} `} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s (status %d, %d bytes):\n%s", want, r.StatusCode, len(body), grepLines(string(body), "handoff_tls"))
		}
	}
}

// TestACMERealValidation: pebble validates for real (no ALWAYS_VALID),
// resolving the name to 127.0.0.1 and connecting to handoff's own
// listeners: HTTP-01 answered by the http listener before routing,
// TLS-ALPN-01 by the https listener.
func TestACMERealValidation(t *testing.T) {
	tests := []struct {
		name      string
		challenge string
	}{
		{name: "http-01 through the http listener", challenge: config.ChallengeHTTP01},
		{name: "tls-alpn-01 through the https listener", challenge: config.ChallengeTLSALPN01},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("STATE_DIRECTORY", t.TempDir())
			lnHTTP, httpPort := listen(t)
			lnHTTPS, httpsPort := listen(t)
			p := acmetest.Start(t, acmetest.Options{Resolve127: true, HTTPPort: httpPort, TLSPort: httpsPort})
			b := echoBackend(t, "b")
			name := "real-" + strconv.Itoa(httpPort) + ".test"
			cfg := baseConfig([]config.Listener{
				{Name: "http", Protocol: config.ProtocolHTTP},
				{Name: "https", Protocol: config.ProtocolHTTPS, TLS: &config.ListenerTLS{
					ACME: &config.ACME{Domains: []string{name}, Directory: p.Directory, DirectoryCA: p.DirectoryCAFile,
						Challenges: []string{tt.challenge}}}},
			}, hostOf(b))
			cfg.ApplyDefaults()
			serveOn(t, cfg, map[string]net.Listener{"http": lnHTTP, "https": lnHTTPS})
			waitTLS(t, lnHTTPS.Addr().String(), name, p.Roots(t))
		})
	}
}

// TestACMEUnreachableDirectory: with the CA unreachable the listener
// keeps serving: static names with their certificate, the ACME name with
// the default (static) certificate until one is obtained.
func TestACMEUnreachableDirectory(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", t.TempDir())
	ca := handofftest.NewCA(t)
	static := ca.Issue(t, t.TempDir(), "static", "static.test")
	dead, _ := listen(t)
	deadAddr := dead.Addr().String()
	dead.Close() // nothing listens there now
	b := echoBackend(t, "b")
	lnHTTPS, _ := listen(t)
	cfg := baseConfig([]config.Listener{
		{Name: "https", Protocol: config.ProtocolHTTPS, TLS: &config.ListenerTLS{
			Certificates: []config.Certificate{{Cert: static.CertPath, Key: static.KeyPath}},
			ACME:         &config.ACME{Domains: []string{"acme.test"}, Directory: "https://" + deadAddr + "/dir"}}},
	}, hostOf(b))
	cfg.ApplyDefaults()
	serveOn(t, cfg, map[string]net.Listener{"https": lnHTTPS})
	addr := lnHTTPS.Addr().String()
	for range 3 {
		if resp, err := getTLS(addr, "static.test", ca.Pool()); err != nil || resp.StatusCode != 200 {
			t.Fatalf("static.test with the CA down: %v", err)
		}
		tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: "acme.test", InsecureSkipVerify: true}}
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + addr + "/")
		tr.CloseIdleConnections()
		if err != nil {
			t.Fatalf("acme.test with the CA down: %v", err)
		}
		resp.Body.Close()
		if cn := resp.TLS.PeerCertificates[0].Subject.CommonName; cn != "static.test" {
			t.Errorf("acme.test served %q, want the default static certificate", cn)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestACMEReload: a reload with the same tls.acme orders nothing new; one
// with another domain obtains it.
func TestACMEReload(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", t.TempDir())
	p := acmetest.Start(t, acmetest.Options{AlwaysValid: true})
	b := echoBackend(t, "b")
	lnHTTPS, _ := listen(t)
	mk := func(domains ...string) *config.Config {
		cfg := baseConfig([]config.Listener{
			{Name: "https", Protocol: config.ProtocolHTTPS, TLS: &config.ListenerTLS{
				ACME: &config.ACME{Domains: domains, Directory: p.Directory, DirectoryCA: p.DirectoryCAFile}}},
		}, hostOf(b))
		cfg.ApplyDefaults()
		return cfg
	}
	next := mk("one.test")
	srv := serveOn(t, mk("one.test"), map[string]net.Listener{"https": lnHTTPS}, func() (*config.Config, error) { return next, nil })
	addr, roots := lnHTTPS.Addr().String(), p.Roots(t)
	waitTLS(t, addr, "one.test", roots)
	orders := p.Orders()
	if res, err := srv.Reload(context.Background()); err != nil || res.Error != "" {
		t.Fatalf("reload: %v %s", err, res.Error)
	}
	time.Sleep(300 * time.Millisecond)
	if n := p.Orders(); n != orders {
		t.Errorf("a reload with the same domains made %d new orders", n-orders)
	}
	next = mk("one.test", "two.test")
	if res, err := srv.Reload(context.Background()); err != nil || res.Error != "" || len(res.StaticChanges) > 0 {
		t.Fatalf("reload: %v %s static changes %v", err, res.Error, res.StaticChanges)
	}
	waitTLS(t, addr, "two.test", roots)
	if _, err := getTLS(addr, "one.test", roots); err != nil {
		t.Errorf("one.test after adding two.test: %v", err)
	}
}

// TestACMEThreeWorkersShareRedis: three processes' worth of servers with
// the same state.redis make one order and serve the same certificate.
func TestACMEThreeWorkersShareRedis(t *testing.T) {
	t.Cleanup(func() { time.Sleep(1100 * time.Millisecond) }) // go-redis tryDial, see policy_test.go
	p := acmetest.Start(t, acmetest.Options{AlwaysValid: true})
	rd := statetest.StartRedis(t)
	b := echoBackend(t, "b")
	roots := p.Roots(t)
	var addrs []string
	for range 3 {
		ln, _ := listen(t)
		cfg := baseConfig([]config.Listener{
			{Name: "https", Protocol: config.ProtocolHTTPS, TLS: &config.ListenerTLS{
				ACME: &config.ACME{Domains: []string{"shared.test"}, Directory: p.Directory, DirectoryCA: p.DirectoryCAFile}}},
		}, hostOf(b))
		cfg.State.Redis = &config.Redis{URL: "redis://" + rd.Addr + "/0"}
		cfg.ApplyDefaults()
		serveOn(t, cfg, map[string]net.Listener{"https": ln})
		addrs = append(addrs, ln.Addr().String())
	}
	var serials []string
	for _, a := range addrs {
		resp := waitTLS(t, a, "shared.test", roots)
		serials = append(serials, resp.TLS.PeerCertificates[0].SerialNumber.String())
	}
	if serials[0] != serials[1] || serials[1] != serials[2] {
		t.Errorf("serials %v: not one shared certificate", serials)
	}
	if n := p.Orders(); n != 1 {
		t.Errorf("%d orders from 3 workers sharing Redis, want 1", n)
	}
}
