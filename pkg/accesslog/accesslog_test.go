package accesslog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/handoff-proxy/handoff/pkg/metrics"
	"github.com/handoff-proxy/handoff/pkg/reqinfo"

	"github.com/handoff-proxy/handoff/pkg/handofftest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// sink keeps what a slog handler wrote and echoes it to t.Log.
type sink struct {
	t   testing.TB
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.t.Log(strings.TrimRight(string(p), "\n"))
	return s.buf.Write(p)
}

func (s *sink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// records parses the JSON lines written so far.
func (s *sink) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(s.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func jsonLogger(t *testing.T) (*slog.Logger, *sink) {
	s := &sink{t: t}
	return slog.New(slog.NewJSONHandler(s, nil)), s
}

// stepClock starts at base and advances by step on every reading.
func stepClock(base time.Time, step time.Duration) func() time.Time {
	var n atomic.Int64
	return func() time.Time {
		return base.Add(time.Duration(n.Add(1)-1) * step)
	}
}

var base = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func newServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(handofftest.Writer(t), "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// proxyLike does what the router and proxy do, in small: fill the
// reqinfo.Info, forward with httputil.ReverseProxy, flag a client that
// went away.
func proxyLike(t *testing.T, target string, fill func(*reqinfo.Info)) http.Handler {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host
		},
		Transport:     tr,
		FlushInterval: -1,
		ErrorLog:      log.New(handofftest.Writer(t), "", 0),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) {
				reqinfo.From(r.Context()).ClientGone = true
			}
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in := reqinfo.From(r.Context())
		if in == nil {
			t.Error("no reqinfo.Info in the request's context")
			http.Error(w, "no info", http.StatusInternalServerError)
			return
		}
		in.Target = u.Host
		fill(in)
		rp.ServeHTTP(w, r)
	})
}

func webApp(in *reqinfo.Info) { in.Route, in.Upstream = "web", "app" }

// signalDone sends on the returned channel each time h has returned, that
// is after the record was written.
func signalDone(h http.Handler) (http.Handler, <-chan struct{}) {
	done := make(chan struct{}, 16)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { done <- struct{}{} }()
		h.ServeHTTP(w, r)
	}), done
}

func wait(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for the handler to return")
	}
}

func TestRecordFields(t *testing.T) {
	backend := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/created":
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, "new")
		case "/missing":
			http.NotFound(w, r)
		default:
			io.WriteString(w, "hello world")
		}
	}))
	tests := []struct {
		name   string
		method string
		path   string
		header http.Header
		fill   func(*reqinfo.Info)
		want   map[string]any
	}{
		{
			name:   "GET with query and headers",
			method: http.MethodGet,
			path:   "/a/b?x=1&y=%20z",
			header: http.Header{"User-Agent": {"test-agent/1"}, "Referer": {"https://ref.example/"}},
			fill: func(in *reqinfo.Info) {
				webApp(in)
				in.Retries, in.RequestID = 2, "req-42"
			},
			want: map[string]any{
				KeyMethod: "GET", KeyURI: "/a/b?x=1&y=%20z", KeyStatus: 200.0, KeyBytes: 11.0,
				KeyRoute: "web", KeyUpstream: "app", KeyRetries: 2.0, KeyRequestID: "req-42",
				KeyUserAgent: "test-agent/1", KeyReferer: "https://ref.example/",
			},
		},
		{
			name:   "POST answered 201",
			method: http.MethodPost,
			path:   "/created",
			fill:   webApp,
			want: map[string]any{
				KeyMethod: "POST", KeyURI: "/created", KeyStatus: 201.0, KeyBytes: 3.0,
				KeyRetries: 0.0, KeyRequestID: "", KeyReferer: "",
			},
		},
		{
			name:   "target says 404",
			method: http.MethodGet,
			path:   "/missing",
			fill:   webApp,
			want:   map[string]any{KeyStatus: 404.0, KeyBytes: 19.0},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logger, logs := jsonLogger(t)
			h, done := signalDone(New(Options{Logger: logger, Now: stepClock(base, 250*time.Millisecond)}, proxyLike(t, backend.URL, tc.fill)))
			front := newServer(t, h)
			req, err := http.NewRequest(tc.method, front.URL+tc.path, strings.NewReader("body"))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.header {
				req.Header[k] = v
			}
			resp, err := front.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			wait(t, done)

			recs := logs.records(t)
			if len(recs) != 1 {
				t.Fatalf("got %d records, want 1", len(recs))
			}
			got := recs[0]
			want := map[string]any{
				slog.TimeKey:    base.Format(time.RFC3339Nano),
				slog.LevelKey:   "INFO",
				slog.MessageKey: Message,
				KeyClient:       "127.0.0.1",
				KeyHost:         strings.TrimPrefix(front.URL, "http://"),
				KeyProto:        "HTTP/1.1",
				KeyDuration:     0.25,
				KeyRoute:        "web",
				KeyUpstream:     "app",
				KeyTarget:       strings.TrimPrefix(backend.URL, "http://"),
				KeyUserAgent:    "Go-http-client/1.1",
			}
			for k, v := range tc.want {
				want[k] = v
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s = %#v, want %#v", k, got[k], v)
				}
			}
			for _, k := range []string{KeyClient, KeyMethod, KeyHost, KeyURI, KeyProto, KeyStatus, KeyBytes, KeyDuration,
				KeyRoute, KeyUpstream, KeyTarget, KeyRetries, KeyRequestID, KeyUserAgent, KeyReferer} {
				if _, ok := got[k]; !ok {
					t.Errorf("record has no %q", k)
				}
			}
		})
	}
}

func TestClientGoneIs499(t *testing.T) {
	tests := []struct {
		name  string
		inner func(t *testing.T, started chan<- struct{}) http.Handler
	}{
		{
			name: "reverse proxy to a slow target",
			inner: func(t *testing.T, started chan<- struct{}) http.Handler {
				backend := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					started <- struct{}{}
					<-r.Context().Done()
				}))
				return proxyLike(t, backend.URL, webApp)
			},
		},
		{
			name: "handler writes nothing and the context is canceled",
			inner: func(t *testing.T, started chan<- struct{}) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					webApp(reqinfo.From(r.Context()))
					started <- struct{}{}
					<-r.Context().Done()
				})
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logger, logs := jsonLogger(t)
			started := make(chan struct{}, 1)
			h, done := signalDone(Middleware(logger, tc.inner(t, started)))
			front := newServer(t, h)

			ctx, cancel := context.WithCancel(t.Context())
			errc := make(chan error, 1)
			go func() {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, front.URL+"/slow", nil)
				resp, err := front.Client().Do(req)
				if err == nil {
					resp.Body.Close()
				}
				errc <- err
			}()
			wait(t, started)
			cancel()
			if err := <-errc; !errors.Is(err, context.Canceled) {
				t.Fatalf("client error = %v, want context.Canceled", err)
			}
			wait(t, done)

			recs := logs.records(t)
			if len(recs) != 1 {
				t.Fatalf("got %d records, want 1", len(recs))
			}
			if recs[0][KeyStatus] != 499.0 || recs[0][KeyRoute] != "web" {
				t.Errorf("status=%v route=%v, want 499 and web", recs[0][KeyStatus], recs[0][KeyRoute])
			}
		})
	}
}

func TestWebSocketThroughMiddleware(t *testing.T) {
	backend := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		defer c.CloseNow()
		for {
			typ, data, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, data); err != nil {
				return
			}
		}
	}))
	logger, logs := jsonLogger(t)
	h, done := signalDone(Middleware(logger, proxyLike(t, backend.URL, webApp)))
	front := newServer(t, h)

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(front.URL, "http")+"/chat", &websocket.DialOptions{HTTPClient: front.Client()})
	if err != nil {
		t.Fatalf("dial through the access log: %v", err)
	}
	for _, msg := range []string{"one", "two"} {
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		if _, got, err := c.Read(ctx); err != nil || string(got) != msg {
			t.Fatalf("echo = %q, %v; want %q", got, err, msg)
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
	wait(t, done)

	recs := logs.records(t)
	if len(recs) != 1 {
		t.Fatalf("got %d records, want 1", len(recs))
	}
	if recs[0][KeyStatus] != 101.0 || recs[0][KeyURI] != "/chat" {
		t.Errorf("status=%v uri=%v, want 101 and /chat", recs[0][KeyStatus], recs[0][KeyURI])
	}
}

func TestFlushThroughMiddlewareHTTP2(t *testing.T) {
	next := make(chan struct{})
	backend := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "data: one\n\n")
		http.NewResponseController(w).Flush()
		select {
		case <-next:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "data: two\n\n")
	}))
	logger, logs := jsonLogger(t)
	h, done := signalDone(Middleware(logger, proxyLike(t, backend.URL, webApp)))
	front := httptest.NewUnstartedServer(h)
	front.EnableHTTP2 = true
	front.Config.ErrorLog = log.New(handofftest.Writer(t), "", 0)
	front.StartTLS()
	defer front.Close()

	resp, err := front.Client().Get(front.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "data: one\n" {
		t.Fatalf("first event = %q, %v (not flushed?)", line, err)
	}
	close(next)
	io.Copy(io.Discard, br)
	wait(t, done)

	recs := logs.records(t)
	if len(recs) != 1 {
		t.Fatalf("got %d records, want 1", len(recs))
	}
	if recs[0][KeyProto] != "HTTP/2.0" || recs[0][KeyStatus] != 200.0 || recs[0][KeyBytes] != 22.0 {
		t.Errorf("proto=%v status=%v bytes=%v, want HTTP/2.0, 200, 22", recs[0][KeyProto], recs[0][KeyStatus], recs[0][KeyBytes])
	}
}

// TestStackedWithMetrics checks the two middlewares see the same Info in
// either order, with a proxy filling it in.
func TestStackedWithMetrics(t *testing.T) {
	backend := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	}))
	tests := []struct {
		name  string
		stack func(logger *slog.Logger, m *metrics.Metrics, h http.Handler) http.Handler
	}{
		{
			name: "access log outside metrics",
			stack: func(logger *slog.Logger, m *metrics.Metrics, h http.Handler) http.Handler {
				return Middleware(logger, m.Middleware(h))
			},
		},
		{
			name: "metrics outside access log",
			stack: func(logger *slog.Logger, m *metrics.Metrics, h http.Handler) http.Handler {
				return m.Middleware(Middleware(logger, h))
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logger, logs := jsonLogger(t)
			m := metrics.New(metrics.Options{Logger: logger})
			h, done := signalDone(tc.stack(logger, m, proxyLike(t, backend.URL, webApp)))
			front := newServer(t, h)
			resp, err := front.Client().Get(front.URL)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			wait(t, done)

			recs := logs.records(t)
			if len(recs) != 1 || recs[0][KeyStatus] != 418.0 || recs[0][KeyUpstream] != "app" {
				t.Errorf("records = %v, want one with status 418 and upstream app", recs)
			}
			msrv := httptest.NewServer(m.Handler())
			defer msrv.Close()
			err = testutil.ScrapeAndCompare(msrv.URL, strings.NewReader(`
# HELP handoff_requests_total HTTP requests served, by route, upstream and status code (499: client went away).
# TYPE handoff_requests_total counter
handoff_requests_total{code="418",route="web",upstream="app"} 1
`), "handoff_requests_total")
			if err != nil {
				t.Error(err)
			}
		})
	}
}

func TestLevelAndFormat(t *testing.T) {
	tests := []struct {
		name      string
		level     slog.Level // of the handler
		wantEmpty bool
		wantParts []string
	}{
		{name: "text handler at info writes logfmt", level: slog.LevelInfo, wantParts: []string{"msg=request", "status=204", "method=GET", "uri=/x", "client=127.0.0.1"}},
		{name: "handler at warn drops access records", level: slog.LevelWarn, wantEmpty: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &sink{t: t}
			logger := slog.New(slog.NewTextHandler(s, &slog.HandlerOptions{Level: tc.level}))
			var sawInfo bool
			h, done := signalDone(Middleware(logger, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				sawInfo = reqinfo.From(r.Context()) != nil
				w.WriteHeader(http.StatusNoContent)
			})))
			front := newServer(t, h)
			resp, err := front.Client().Get(front.URL + "/x")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			wait(t, done)
			if !sawInfo {
				t.Error("inner handler got no reqinfo.Info")
			}
			out := s.String()
			if tc.wantEmpty && out != "" {
				t.Errorf("logged %q, want nothing", out)
			}
			for _, p := range tc.wantParts {
				if !strings.Contains(out, p) {
					t.Errorf("log %q lacks %q", out, p)
				}
			}
		})
	}
}

func TestNilLogger(t *testing.T) {
	h := New(Options{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	rw := httptest.NewRecorder()
	h.ServeHTTP(rw, httptest.NewRequest(http.MethodGet, "/", nil))
	if rw.Body.String() != "ok" {
		t.Errorf("body = %q", rw.Body.String())
	}
}

func TestClientIP(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{name: "ipv4", in: "192.0.2.1:1234", want: "192.0.2.1"},
		{name: "ipv6", in: "[2001:db8::1]:443", want: "2001:db8::1"},
		{name: "ipv6 zone", in: "[fe80::1%eth0]:80", want: "fe80::1%eth0"},
		{name: "unix socket", in: "@", want: "@"},
		{name: "empty", in: "", want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := clientIP(tc.in); got != tc.want {
				t.Errorf("clientIP(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func FuzzClientIP(f *testing.F) {
	for _, s := range []string{"192.0.2.1:1234", "[2001:db8::1]:443", "[::ffff:1.2.3.4]:80", "@", "", "host:80", "[]:1", "a:b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		got := clientIP(addr)
		if !strings.Contains(addr, got) {
			t.Errorf("clientIP(%q) = %q, not part of the input", addr, got)
		}
		if ap, err := netip.ParseAddrPort(addr); err == nil {
			if ip, err := netip.ParseAddr(got); err != nil || ip != ap.Addr() {
				t.Errorf("clientIP(%q) = %q, want %v", addr, got, ap.Addr())
			}
		}
	})
}
