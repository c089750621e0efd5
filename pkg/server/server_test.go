package server

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/handoff-proxy/handoff/pkg/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// echoBackend answers with its name and what protocol and headers it saw.
func echoBackend(t *testing.T, name string) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		w.Header().Set("X-Saw-Upgrade", r.Header.Get("Upgrade"))
		w.Header().Set("X-Saw-HTTP2-Settings", r.Header.Get("HTTP2-Settings"))
		io.WriteString(w, name)
	}))
	t.Cleanup(s.Close)
	return s
}

type running struct {
	srv    *Server
	addrs  map[string]string
	cancel context.CancelFunc
	done   chan error
}

// serve starts a Server for cfg on port-0 listeners and stops it at the
// end of the test.
func serve(t *testing.T, cfg *config.Config, load func() (*config.Config, error)) *running {
	t.Helper()
	lns := map[string]net.Listener{}
	addrs := map[string]string{}
	for _, l := range cfg.Listeners {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[l.Name] = ln
		addrs[l.Name] = ln.Addr().String()
	}
	srv, err := New(Options{Config: cfg, Load: load, Listeners: lns, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{srv: srv, addrs: addrs, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-r.done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return r
}

func baseConfig(listeners []config.Listener, targets ...string) *config.Config {
	cfg := config.Default()
	cfg.Listeners = listeners
	up := config.Upstream{Strategy: config.StrategyRoundRobin}
	for _, a := range targets {
		up.Targets = append(up.Targets, config.Target{Address: a, Weight: 1})
	}
	cfg.Upstreams = map[string]config.Upstream{"web": up}
	cfg.Routes = []config.Route{{Name: "default", Upstream: "web"}}
	off := false
	cfg.Log.Access = &off
	return cfg
}

func hostOf(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

func TestH2CPriorKnowledgeFromClients(t *testing.T) {
	b := echoBackend(t, "b")
	r := serve(t, baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, hostOf(b)), nil)
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://" + r.addrs["http"] + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.ProtoMajor != 2 || string(body) != "b" {
		t.Errorf("got %s %q, want HTTP/2 from b", resp.Proto, body)
	}
}

// TestUpgradeH2CNeverForwarded pins the h2c smuggling defence: an
// HTTP/1.1 "Upgrade: h2c" is served as a plain request and the upgrade
// headers never reach the backend.
func TestUpgradeH2CNeverForwarded(t *testing.T) {
	b := echoBackend(t, "b")
	r := serve(t, baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, hostOf(b)), nil)
	conn, err := net.Dial("tcp", r.addrs["http"])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d, want 200 (no 101)", resp.StatusCode)
	}
	if up, hs := resp.Header.Get("X-Saw-Upgrade"), resp.Header.Get("X-Saw-HTTP2-Settings"); up != "" || hs != "" {
		t.Errorf("backend saw Upgrade=%q HTTP2-Settings=%q", up, hs)
	}
}

func TestTLSListenerSNIAndH2(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	certA, keyA := ca.issue(t, dir, "a", "a.example.com")
	certB, keyB := ca.issue(t, dir, "b", "*.b.example.com")
	b := echoBackend(t, "b")
	cfg := baseConfig([]config.Listener{{
		Name: "https", Protocol: config.ProtocolHTTPS,
		TLS: &config.ListenerTLS{Certificates: []config.Certificate{{Cert: certA, Key: keyA}, {Cert: certB, Key: keyB}}},
	}}, hostOf(b))
	r := serve(t, cfg, nil)
	tests := []struct {
		name, sni, wantCN string
	}{
		{"exact", "a.example.com", "a.example.com"},
		{"wildcard", "x.b.example.com", "*.b.example.com"},
		{"default when no match", "other.example.org", "a.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: tt.sni, RootCAs: ca.pool, InsecureSkipVerify: tt.name == "default when no match"}, ForceAttemptHTTP2: true}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr}).Get("https://" + r.addrs["https"] + "/")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			io.Copy(io.Discard, resp.Body)
			if resp.ProtoMajor != 2 {
				t.Errorf("proto %s, want HTTP/2 via ALPN", resp.Proto)
			}
			if cn := resp.TLS.PeerCertificates[0].Subject.CommonName; cn != tt.wantCN {
				t.Errorf("served certificate %q, want %q", cn, tt.wantCN)
			}
		})
	}
}

func TestReloadSwapsAndFailedReloadKeepsOld(t *testing.T) {
	b1, b2 := echoBackend(t, "one"), echoBackend(t, "two")
	listeners := []config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}
	var mu sync.Mutex
	next := baseConfig(listeners, hostOf(b2))
	var nextErr error
	load := func() (*config.Config, error) {
		mu.Lock()
		defer mu.Unlock()
		return next, nextErr
	}
	r := serve(t, baseConfig(listeners, hostOf(b1)), load)
	url := "http://" + r.addrs["http"] + "/"
	body := func() string {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := body(); got != "one" {
		t.Fatalf("before reload: %q", got)
	}
	res, err := r.srv.Reload(context.Background())
	if err != nil || res.Error != "" {
		t.Fatalf("reload: %v %+v", err, res)
	}
	if got := body(); got != "two" {
		t.Fatalf("after reload: %q", got)
	}
	mu.Lock()
	nextErr = fmt.Errorf("handoff.yaml: routes[0].upstream: no such upstream")
	mu.Unlock()
	res, err = r.srv.Reload(context.Background())
	if err != nil || !strings.Contains(res.Error, "no such upstream") {
		t.Fatalf("failed reload: %v %+v", err, res)
	}
	if got := body(); got != "two" {
		t.Fatalf("after failed reload: %q", got)
	}
	if last, ok := r.srv.LastReload(); !ok || last.Generation != 2 {
		t.Errorf("LastReload = %+v", last)
	}
}

// ca is a throwaway certificate authority for TLS tests.
type ca struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(t *testing.T) *ca {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "handoff test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &ca{cert: cert, key: key, pool: pool}
}

func (c *ca) issue(t *testing.T, dir, file, name string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, file+".pem"), filepath.Join(dir, file+".key")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}
