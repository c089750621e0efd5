package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/handofftest"
)

// h3Env is a running Server with one https listener serving HTTP/3 on a
// UDP socket beside its TCP one (both on 127.0.0.1, same port).
type h3Env struct {
	srv    *Server
	addr   string // host:port of both sockets
	ca     *handofftest.CA
	cancel context.CancelFunc
	done   chan error
}

// h3Config is an https listener with http3 and a certificate for
// 127.0.0.1, in front of backend.
func h3Config(t *testing.T, ca *handofftest.CA, backend string) *config.Config {
	t.Helper()
	leaf := ca.Issue(t, "", "h3", "127.0.0.1", "localhost")
	return baseConfig([]config.Listener{{
		Name: "https", Protocol: config.ProtocolHTTPS, HTTP3: true,
		TLS: &config.ListenerTLS{Certificates: []config.Certificate{{Cert: leaf.CertPath, Key: leaf.KeyPath}}},
	}}, backend)
}

// tcpAndUDP binds a TCP listener and a UDP socket on the same free port.
func tcpAndUDP(t *testing.T) (net.Listener, net.PacketConn) {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		pc, err := net.ListenPacket("udp", ln.Addr().String())
		if err == nil {
			return ln, pc
		}
		ln.Close()
	}
	t.Fatal("no port free on both TCP and UDP")
	return nil, nil
}

func serveH3(t *testing.T, cfg *config.Config, ca *handofftest.CA, load func() (*config.Config, error)) *h3Env {
	t.Helper()
	ln, pc := tcpAndUDP(t)
	srv, err := New(Options{
		Config: cfg, Load: load, Logger: handofftest.Logger(t),
		Listeners:   map[string]net.Listener{"https": ln},
		PacketConns: map[string][]net.PacketConn{"https": {pc}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &h3Env{srv: srv, addr: ln.Addr().String(), ca: ca, cancel: cancel, done: make(chan error, 1)}
	go func() { e.done <- srv.Run(ctx) }()
	t.Cleanup(func() { e.stop(t) })
	return e
}

// stop ends Run and checks it returned no error; later calls do nothing.
func (e *h3Env) stop(t *testing.T) {
	if e.done == nil {
		return
	}
	e.cancel()
	if err := <-e.done; err != nil {
		t.Errorf("Run: %v", err)
	}
	e.done = nil
}

// h3Client is an HTTP/3 client trusting the test CA.
func (e *h3Env) h3Client(t *testing.T) *http.Client {
	t.Helper()
	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: e.ca.Pool(), ServerName: "127.0.0.1"}}
	t.Cleanup(func() { tr.Close() })
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// tcpClient speaks HTTP/1.1 or HTTP/2 over TLS to the listener.
func (e *h3Env) tcpClient(t *testing.T, h2 bool) *http.Client {
	t.Helper()
	var p http.Protocols
	p.SetHTTP1(!h2)
	p.SetHTTP2(h2)
	tr := &http.Transport{Protocols: &p, TLSClientConfig: &tls.Config{RootCAs: e.ca.Pool(), ServerName: "127.0.0.1"}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// headerBackend answers with the forwarding headers it saw.
func headerBackend(t *testing.T) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "proto=%s xfp=%s xff=%s via=%s", r.Proto, r.Header.Get("X-Forwarded-Proto"),
			r.Header.Get("X-Forwarded-For"), r.Header.Get("Via"))
	}))
	t.Cleanup(s.Close)
	return s
}

func TestHTTP3Request(t *testing.T) {
	ca := handofftest.NewCA(t)
	e := serveH3(t, h3Config(t, ca, hostOf(headerBackend(t))), ca, nil)
	resp, err := e.h3Client(t).Get("https://" + e.addr + "/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 3 {
		t.Fatalf("got %d %s, want 200 over HTTP/3", resp.StatusCode, resp.Proto)
	}
	for _, want := range []string{"xfp=https", "xff=127.0.0.1", "via=3 "} {
		if !strings.Contains(string(body), want) {
			t.Errorf("backend saw %q, want %s", body, want)
		}
	}
	if v := resp.Header.Get("Alt-Svc"); v != "" {
		t.Errorf("Alt-Svc %q on an HTTP/3 response", v)
	}
	rec := httptest.NewRecorder()
	e.srv.metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if got := grepLines(rec.Body.String(), `handoff_requests_by_protocol_total{protocol="h3"}`); !strings.HasSuffix(got, " 1") {
		t.Errorf("h3 request metric: %q", got)
	}
}

func TestHTTP3AltSvcOnTCP(t *testing.T) {
	ca := handofftest.NewCA(t)
	e := serveH3(t, h3Config(t, ca, hostOf(echoBackend(t, "b"))), ca, nil)
	_, port, _ := net.SplitHostPort(e.addr)
	want := `h3=":` + port + `"; ma=86400`
	tests := []struct {
		name string
		h2   bool
	}{
		{name: "HTTP/1.1", h2: false},
		{name: "HTTP/2", h2: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := e.tcpClient(t, tt.h2).Get("https://" + e.addr + "/")
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if got := resp.Header.Values("Alt-Svc"); len(got) != 1 || got[0] != want {
				t.Errorf("%s: Alt-Svc %q, want %q", resp.Proto, got, want)
			}
		})
	}
}

// TestHTTP3Streaming checks that bodies stream both ways: the backend
// answers each line of the request as it arrives, and the client reads
// each answer before it sends the next line.
func TestHTTP3Streaming(t *testing.T) {
	ca := handofftest.NewCA(t)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		_ = rc.EnableFullDuplex()
		w.WriteHeader(200)
		rc.Flush()
		sc := bufio.NewScanner(r.Body)
		for sc.Scan() {
			fmt.Fprintf(w, "echo %s\n", sc.Text())
			rc.Flush()
		}
	}))
	t.Cleanup(backend.Close)
	e := serveH3(t, h3Config(t, ca, hostOf(backend)), ca, nil)
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPost, "https://"+e.addr+"/stream", pr)
	resp, err := e.h3Client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	for i := range 5 {
		if _, err := fmt.Fprintf(pw, "line %d\n", i); err != nil {
			t.Fatal(err)
		}
		got, err := rd.ReadString('\n')
		if err != nil || got != fmt.Sprintf("echo line %d\n", i) {
			t.Fatalf("chunk %d: %q, %v", i, got, err)
		}
	}
	pw.Close()
	if rest, _ := io.ReadAll(rd); len(rest) != 0 {
		t.Errorf("trailing %q", rest)
	}
}

// TestHTTP3ReloadUnderLoad reloads while clients keep sending HTTP/3
// requests: none may fail, and the new config takes over.
func TestHTTP3ReloadUnderLoad(t *testing.T) {
	ca := handofftest.NewCA(t)
	one, two := echoBackend(t, "one"), echoBackend(t, "two")
	cfg := h3Config(t, ca, hostOf(one))
	var mu sync.Mutex
	next := cfg
	load := func() (*config.Config, error) {
		mu.Lock()
		defer mu.Unlock()
		return next, nil
	}
	e := serveH3(t, cfg, ca, load)
	client := e.h3Client(t)
	var ok, failed atomic.Int64
	var sawTwo atomic.Bool
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				resp, err := client.Get("https://" + e.addr + "/")
				if err != nil {
					failed.Add(1)
					t.Errorf("request: %v", err)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					t.Errorf("status %d", resp.StatusCode)
					continue
				}
				if string(b) == "two" {
					sawTwo.Store(true)
				}
				ok.Add(1)
			}
		})
	}
	for i := range 6 {
		time.Sleep(50 * time.Millisecond) // let requests pile up between reloads
		mu.Lock()
		next = h3Config(t, ca, hostOf([]*httptest.Server{one, two}[i%2]))
		if i == 5 {
			next = h3Config(t, ca, hostOf(two))
		}
		mu.Unlock()
		if res, err := e.srv.Reload(context.Background()); err != nil || res.Error != "" {
			t.Fatalf("reload %d: %v %+v", i, err, res)
		}
	}
	time.Sleep(100 * time.Millisecond)
	stop()
	wg.Wait()
	t.Logf("%d requests over HTTP/3 across 6 reloads, %d failed", ok.Load(), failed.Load())
	if failed.Load() != 0 || ok.Load() == 0 || !sawTwo.Load() {
		t.Fatalf("ok %d failed %d sawTwo %v", ok.Load(), failed.Load(), sawTwo.Load())
	}
}

// TestHTTP3ShutdownFinishesInFlight stops the server while an HTTP/3
// request is in flight: it completes (GOAWAY, RFC 9114 §5.2), and Run
// returns once it did.
func TestHTTP3ShutdownFinishesInFlight(t *testing.T) {
	ca := handofftest.NewCA(t)
	entered := make(chan struct{})
	release := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "late")
	}))
	t.Cleanup(backend.Close)
	e := serveH3(t, h3Config(t, ca, hostOf(backend)), ca, nil)
	client := e.h3Client(t)
	type result struct {
		status int
		body   string
		err    error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := client.Get("https://" + e.addr + "/slow")
		if err != nil {
			res <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{resp.StatusCode, string(b), err}
	}()
	<-entered
	stopped := make(chan struct{})
	go func() {
		e.stop(t)
		close(stopped)
	}()
	select {
	case <-stopped:
		t.Fatal("Run returned with a request in flight")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	r := <-res
	if r.err != nil || r.status != 200 || r.body != "late" {
		t.Fatalf("in-flight request: %d %q %v", r.status, r.body, r.err)
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the last request")
	}
}

func TestNewRefusesHTTP3WithoutSocket(t *testing.T) {
	ca := handofftest.NewCA(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = New(Options{Config: h3Config(t, ca, "127.0.0.1:1"), Listeners: map[string]net.Listener{"https": ln}})
	if err == nil || !strings.Contains(err.Error(), "no UDP socket") {
		t.Fatalf("err = %v", err)
	}
}

func TestAltSvcValue(t *testing.T) {
	rec := httptest.NewRecorder()
	altSvc(8443, http.NotFoundHandler()).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if got, want := rec.Header().Get("Alt-Svc"), `h3=":`+strconv.Itoa(8443)+`"; ma=86400`; got != want {
		t.Errorf("Alt-Svc %q, want %q", got, want)
	}
}

// TestHTTP3CountsAsActivity: an open QUIC connection keeps a process with
// idle_exit alive like an open TCP connection, and closing it makes the
// process idle again.
func TestHTTP3CountsAsActivity(t *testing.T) {
	ca := handofftest.NewCA(t)
	e := serveH3(t, h3Config(t, ca, hostOf(echoBackend(t, "b"))), ca, nil)
	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}}
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + e.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if got := e.srv.act.conns.Load(); got != 1 {
		t.Errorf("open connections %d with a QUIC connection open, want 1", got)
	}
	if d := e.srv.act.idleFor(); d != 0 {
		t.Errorf("idle for %v with a QUIC connection open", d)
	}
	tr.Close()
	deadline := time.Now().Add(5 * time.Second)
	for e.srv.act.conns.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("open connections %d after the client closed", e.srv.act.conns.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
