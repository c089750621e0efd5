package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/handoff-proxy/handoff/pkg/balance"
	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/reqinfo"
	"github.com/handoff-proxy/handoff/pkg/upstream"

	"github.com/handoff-proxy/handoff/pkg/handofftest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testStdLogger(t testing.TB) *log.Logger {
	return slog.NewLogLogger(handofftest.Logger(t).Handler(), slog.LevelDebug)
}

// firstSelector picks the first eligible target in pool order, so that
// retry tests know which target is tried when.
type firstSelector struct{ targets []*upstream.Target }

func (s firstSelector) Select(_ balance.Key, eligible func(*upstream.Target) bool) *upstream.Target {
	for _, t := range s.targets {
		if eligible(t) {
			return t
		}
	}
	return nil
}

type upstreamErr struct{ upstream, target, kind string }

type recordObserver struct {
	mu      sync.Mutex
	retries int
	errs    []upstreamErr
}

func (o *recordObserver) Retry(string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.retries++
}

func (o *recordObserver) UpstreamError(u, t, k string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.errs = append(o.errs, upstreamErr{u, t, k})
}

func (o *recordObserver) snapshot() (int, []upstreamErr) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.retries, append([]upstreamErr(nil), o.errs...)
}

// result is what the front handler learned about one request.
type result struct {
	info   reqinfo.Info
	wrote  bool // whether the proxy wrote a status to the client
	status int
}

// spyWriter records whether a response was started. Unwrap keeps
// http.ResponseController (flush, hijack) working.
type spyWriter struct {
	http.ResponseWriter
	status atomic.Int64
}

func (w *spyWriter) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		w.status.CompareAndSwap(0, int64(code))
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *spyWriter) Write(p []byte) (int, error) {
	w.status.CompareAndSwap(0, http.StatusOK)
	return w.ResponseWriter.Write(p)
}

func (w *spyWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type harnessOptions struct {
	// targets are addresses as in config ("127.0.0.1:1", "https://…").
	targets  []string
	upstream config.Upstream
	// opts supplies TrustedProxies, Via, MaxRequestBody, RequestTimeout.
	opts Options
	// tls serves the front over TLS with HTTP/2 (ALPN) instead of
	// HTTP/1.1 plus h2c.
	tls bool
	// listen, when set, is the front's listener.
	listen net.Listener
}

type harness struct {
	h          *Handler
	front      *httptest.Server
	pool       *upstream.Pool
	obs        *recordObserver
	transports *Transports
	results    chan result
}

// newHarness builds a pool, a Handler and a front server on port 0 that
// wraps the handler like the router does (reqinfo in the context).
func newHarness(t *testing.T, ho harnessOptions) *harness {
	t.Helper()
	cfg := ho.upstream
	var spec upstream.PoolSpec
	for _, a := range ho.targets {
		cfg.Targets = append(cfg.Targets, config.Target{Address: a})
		spec.Targets = append(spec.Targets, upstream.TargetSpec{Address: a})
	}
	pool, err := upstream.NewRegistry().NewPool("api", spec)
	if err != nil {
		t.Fatalf("new pool: %v", err)
	}
	logger := handofftest.Logger(t)
	trs := NewTransports(logger)
	t.Cleanup(trs.Close)
	obs := &recordObserver{}
	o := ho.opts
	o.Pool, o.Upstream, o.Selector, o.Transports, o.Logger, o.Observer = pool, cfg, firstSelector{pool.Targets()}, trs, logger, obs
	h, err := New(o)
	if err != nil {
		t.Fatalf("new proxy: %v", err)
	}
	hr := &harness{h: h, pool: pool, obs: obs, transports: trs, results: make(chan result, 64)}
	front := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, info := reqinfo.With(r.Context())
		info.Route, info.Upstream = "test", pool.Name
		spy := &spyWriter{ResponseWriter: w}
		defer func() {
			hr.results <- result{info: *info, wrote: spy.status.Load() != 0, status: int(spy.status.Load())}
		}()
		h.ServeHTTP(spy, r.WithContext(ctx))
	}))
	front.Config.ErrorLog = testStdLogger(t)
	if ho.listen != nil {
		front.Listener.Close()
		front.Listener = ho.listen
	}
	if ho.tls {
		front.EnableHTTP2 = true
		front.StartTLS()
	} else {
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		front.Config.Protocols = &p
		front.Start()
	}
	t.Cleanup(front.Close)
	hr.front = front
	return hr
}

// result waits for the front handler of the next request to return.
func (hr *harness) result(t *testing.T) result {
	t.Helper()
	select {
	case r := <-hr.results:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("front handler did not return")
		return result{}
	}
}

// client returns an HTTP/1.1 client for the front.
func (hr *harness) client(t *testing.T) *http.Client {
	t.Helper()
	if hr.front.TLS != nil {
		return hr.front.Client()
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// h2cClient returns an HTTP/2 client with prior knowledge.
func h2cClient(t *testing.T) *http.Client {
	t.Helper()
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// seen is what the echo backend reports about the request it got.
type seen struct {
	Method     string
	Host       string
	ProtoMajor int
	Header     http.Header
	Body       string
	Trailer    http.Header
	SNI        string
}

// echoHandler answers with a JSON description of the request.
func echoHandler(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s := seen{Method: r.Method, Host: r.Host, ProtoMajor: r.ProtoMajor, Header: r.Header, Body: string(b), Trailer: r.Trailer}
	if r.TLS != nil {
		s.SNI = r.TLS.ServerName
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s)
}

func newBackend(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.Config.ErrorLog = testStdLogger(t)
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func decodeSeen(t *testing.T, res *http.Response) seen {
	t.Helper()
	defer res.Body.Close()
	var s seen
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("status %d: decode %q: %v", res.StatusCode, b, err)
	}
	return s
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// rawExchange writes a raw request to addr and reads one response.
func rawExchange(t *testing.T, addr, req string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatalf("read response body: %v", err)
	}
	return res, string(b)
}

func mustPrefixes(t testing.TB, ss ...string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, s := range ss {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func intp(i int) *int { return &i }

// testCA is handofftest's CA with its PEM on disk, for UpstreamTLS.CA.
type testCA struct {
	*handofftest.CA
	pemPath string
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	ca := handofftest.NewCA(t)
	return &testCA{CA: ca, pemPath: ca.WritePEM(t, t.TempDir())}
}

// issue returns a leaf certificate for the names (DNS names or IPs), for
// server and client use, and the paths of its PEM cert and key.
func (ca *testCA) issue(t *testing.T, names ...string) (tls.Certificate, string, string) {
	t.Helper()
	l := ca.Issue(t, "", "leaf", names...)
	return l.TLS, l.CertPath, l.KeyPath
}

func (ca *testCA) pool() *x509.CertPool { return ca.Pool() }

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeServerCA writes the certificate of an httptest TLS server as a CA
// file.
func writeServerCA(t *testing.T, s *httptest.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	writePEM(t, path, "CERTIFICATE", s.Certificate().Raw)
	return path
}

// ctxTimeout is a context for one test step: long enough never to fire
// on a healthy run, short enough that a hang fails the test.
func ctxTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
