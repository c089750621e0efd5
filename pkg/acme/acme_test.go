package acme_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/handoff-proxy/handoff/pkg/acme"
	"github.com/handoff-proxy/handoff/pkg/acme/acmetest"
	"github.com/handoff-proxy/handoff/pkg/acmestore"
	"github.com/handoff-proxy/handoff/pkg/handofftest"
	"github.com/handoff-proxy/handoff/pkg/state/statetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, append(acmetest.IgnoreGoroutines(),
		// idle keep-alive connections of certmagic's ACME HTTP client
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreAnyFunction("internal/poll.runtime_pollWait"))...)
}

// recorder is an acme.Observer.
type recorder struct {
	mu       sync.Mutex
	outcomes []string
}

func (r *recorder) ACMEOutcome(name string, renewal bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.outcomes = append(r.outcomes, fmt.Sprintf("%s renewal=%v ok=%v", name, renewal, err == nil))
}

func (r *recorder) count(s string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, o := range r.outcomes {
		if o == s {
			n++
		}
	}
	return n
}

// server is a TLS listener serving a Manager's certificates, as an https
// listener of handoff does.
type server struct {
	port int
	m    *acme.Manager
}

func startServer(t *testing.T, o acme.Options) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{port: ln.Addr().(*net.TCPAddr).Port}
	o.TLSALPNPort, o.ListenHost = s.port, "127.0.0.1"
	if o.Logger == nil {
		o.Logger = handofftest.Logger(t)
	}
	s.m = acme.New(o)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}),
		ErrorLog:  log.New(io.Discard, "", 0),
		TLSConfig: &tls.Config{GetCertificate: s.m.GetCertificate, NextProtos: []string{"http/1.1", acme.ALPNProto}}}
	go func() { _ = srv.Serve(tls.NewListener(ln, srv.TLSConfig)) }()
	s.m.Start(context.Background())
	t.Cleanup(func() {
		s.m.Close()
		_ = srv.Close()
	})
	return s
}

// cert returns the verified leaf served for name, or an error.
func (s *server) cert(name string, roots *x509.CertPool) (*x509.Certificate, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", s.port),
		&tls.Config{ServerName: name, RootCAs: roots})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

func (s *server) waitCert(t *testing.T, name string, roots *x509.CertPool, d time.Duration) *x509.Certificate {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		c, err := s.cert(name, roots)
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("no verified certificate for %s after %v: %v", name, d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func spec(p *acmetest.Pebble, names ...string) acme.Spec {
	return acme.Spec{Domains: names, Email: "ops@example.com", Directory: p.Directory, RootsPEM: p.DirectoryCAPEM, TLSALPN01: true}
}

func TestObtainFileStorage(t *testing.T) {
	p := acmetest.Start(t, acmetest.Options{AlwaysValid: true})
	rec := &recorder{}
	start := time.Now()
	s := startServer(t, acme.Options{Storage: &certmagic.FileStorage{Path: t.TempDir()}, Observer: rec})
	if err := s.m.Update([]acme.Spec{spec(p, "a.test", "b.test")}); err != nil {
		t.Fatal(err)
	}
	roots := p.Roots(t)
	s.waitCert(t, "a.test", roots, 30*time.Second)
	s.waitCert(t, "b.test", roots, 30*time.Second)
	t.Logf("two certificates in %v", time.Since(start))
	if _, err := s.cert("other.test", roots); err == nil {
		t.Error("a name nobody manages got a certificate")
	}
	certs := s.m.Certificates()
	if len(certs) != 2 || certs[0].Name != "a.test" || certs[0].NotAfter.Before(time.Now()) {
		t.Errorf("Certificates() = %+v", certs)
	}
	if rec.count("a.test renewal=false ok=true") != 1 {
		t.Errorf("outcomes %v, want one obtained for a.test", rec.outcomes)
	}
	// Same spec again (a reload): nothing new is ordered.
	orders := p.Orders()
	if err := s.m.Update([]acme.Spec{spec(p, "b.test", "a.test")}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if got := p.Orders(); got != orders {
		t.Errorf("orders after a reload with the same domains: %d, want %d", got, orders)
	}
	// Changed domains take effect: c.test is obtained, a.test dropped.
	if err := s.m.Update([]acme.Spec{spec(p, "b.test", "c.test")}); err != nil {
		t.Fatal(err)
	}
	s.waitCert(t, "c.test", roots, 30*time.Second)
	if s.m.Manages("a.test") {
		t.Error("a.test still managed after it was removed")
	}
}

func redisStore(t *testing.T, addr string) *acmestore.Store {
	c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	s := acmestore.New(c, acmestore.Options{Prefix: "acmetest", LockTTL: 3 * time.Second, LockPoll: 50 * time.Millisecond})
	t.Cleanup(func() { s.Close(); _ = c.Close() })
	return s
}

// TestSharedRedisOneOrder: three managers (three processes) sharing one
// Redis make one order for a name and serve the same certificate.
func TestSharedRedisOneOrder(t *testing.T) {
	p := acmetest.Start(t, acmetest.Options{AlwaysValid: true})
	r := statetest.StartRedis(t)
	roots := p.Roots(t)
	var servers []*server
	for range 3 {
		servers = append(servers, startServer(t, acme.Options{Storage: redisStore(t, r.Addr)}))
	}
	for _, s := range servers {
		if err := s.m.Update([]acme.Spec{spec(p, "shared.test")}); err != nil {
			t.Fatal(err)
		}
	}
	var serials []string
	for _, s := range servers {
		serials = append(serials, s.waitCert(t, "shared.test", roots, 40*time.Second).SerialNumber.String())
	}
	if serials[0] != serials[1] || serials[1] != serials[2] {
		t.Errorf("serials %v: not one shared certificate", serials)
	}
	if n := p.Orders(); n != 1 {
		t.Errorf("pebble received %d orders, want 1", n)
	}
}

// TestRenewal: a short-lived certificate is renewed in the background,
// and the renewed one is served without a failed handshake.
func TestRenewal(t *testing.T) {
	p := acmetest.Start(t, acmetest.Options{AlwaysValid: true, Validity: time.Minute})
	rec := &recorder{}
	s := startServer(t, acme.Options{Storage: &certmagic.FileStorage{Path: t.TempDir()}, Observer: rec,
		RenewalWindowRatio: 0.9, RenewCheckInterval: 500 * time.Millisecond})
	if err := s.m.Update([]acme.Spec{spec(p, "renew.test")}); err != nil {
		t.Fatal(err)
	}
	roots := p.Roots(t)
	first := s.waitCert(t, "renew.test", roots, 30*time.Second)
	deadline := time.Now().Add(40 * time.Second)
	for {
		c, err := s.cert("renew.test", roots)
		if err != nil {
			t.Fatalf("handshake failed during renewal: %v", err)
		}
		if c.SerialNumber.Cmp(first.SerialNumber) != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not renewed; outcomes %v", rec.outcomes)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if rec.count("renew.test renewal=true ok=true") < 1 {
		t.Errorf("outcomes %v, want a successful renewal", rec.outcomes)
	}
}

// TestRedisDownDuringRenewal: with Redis gone when the renewal is due,
// the renewal fails and the last good certificate keeps being served.
func TestRedisDownDuringRenewal(t *testing.T) {
	// go-redis retries a failed dial on a goroutine that sleeps 1s before
	// it sees the client closed (internal/pool tryDial).
	t.Cleanup(func() { time.Sleep(1100 * time.Millisecond) })
	p := acmetest.Start(t, acmetest.Options{AlwaysValid: true, Validity: time.Minute})
	r := statetest.StartRedis(t)
	rec := &recorder{}
	s := startServer(t, acme.Options{Storage: redisStore(t, r.Addr), Observer: rec,
		RenewalWindowRatio: 0.9, RenewCheckInterval: 500 * time.Millisecond})
	if err := s.m.Update([]acme.Spec{spec(p, "down.test")}); err != nil {
		t.Fatal(err)
	}
	roots := p.Roots(t)
	first := s.waitCert(t, "down.test", roots, 30*time.Second)
	r.Stop()
	// The renewal is due 6 s after issuance; watch past that.
	deadline := time.Now().Add(12 * time.Second)
	for time.Now().Before(deadline) {
		c, err := s.cert("down.test", roots)
		if err != nil {
			t.Fatalf("handshake failed with Redis down: %v", err)
		}
		if c.SerialNumber.Cmp(first.SerialNumber) != 0 {
			t.Fatal("renewed without storage")
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("outcomes with Redis down: %v", rec.outcomes)
}

// TestRefusedOrder: the CA refuses one name; the other names of the spec
// are obtained and served, and the failure is logged with the CA's
// problem document (RFC 8555 §6.7).
func TestRefusedOrder(t *testing.T) {
	p := acmetest.Start(t, acmetest.Options{AlwaysValid: true, Blocklist: []string{"refused.test"}})
	rec := &recorder{}
	var logs syncBuf
	s := startServer(t, acme.Options{Storage: &certmagic.FileStorage{Path: t.TempDir()}, Observer: rec,
		Logger: slog.New(slog.NewTextHandler(io.MultiWriter(&logs, handofftest.Writer(t)), &slog.HandlerOptions{Level: slog.LevelError}))})
	if err := s.m.Update([]acme.Spec{spec(p, "refused.test", "fine.test")}); err != nil {
		t.Fatal(err)
	}
	s.waitCert(t, "fine.test", p.Roots(t), 30*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for rec.count("refused.test renewal=false ok=false") == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no failure for refused.test; outcomes %v", rec.outcomes)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "rejectedIdentifier") {
		t.Errorf("the error log lacks the problem type:\n%s", logs.String())
	}
	if n := strings.Count(logs.String(), "level=ERROR"); n != 1 {
		t.Errorf("%d error lines for one failed attempt, want 1:\n%s", n, logs.String())
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
