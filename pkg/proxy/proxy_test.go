package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/upstream"
)

func TestHopByHopHeadersRemoved(t *testing.T) {
	tests := []struct {
		name   string
		lines  string // extra request header lines
		absent []string
		want   map[string]string
	}{
		{
			name:   "connection-listed headers",
			lines:  "Connection: keep-alive, X-Hop\r\nX-Hop: secret\r\nX-End: kept\r\n",
			absent: []string{"X-Hop", "Connection"},
			want:   map[string]string{"X-End": "kept"},
		},
		{
			name:   "keep-alive",
			lines:  "Keep-Alive: timeout=5\r\n",
			absent: []string{"Keep-Alive"},
		},
		{
			name:   "te other than trailers",
			lines:  "TE: gzip, deflate\r\n",
			absent: []string{"Te"},
		},
		{
			name:  "te trailers kept",
			lines: "TE: trailers, deflate\r\n",
			want:  map[string]string{"Te": "trailers"},
		},
		{
			name:   "proxy headers",
			lines:  "Proxy-Authorization: Basic YTpi\r\nProxy-Connection: keep-alive\r\n",
			absent: []string{"Proxy-Authorization", "Proxy-Connection"},
		},
		{
			name:   "upgrade without connection upgrade",
			lines:  "Upgrade: websocket\r\n",
			absent: []string{"Upgrade"},
		},
	}
	backend := newBackend(t, http.HandlerFunc(echoHandler))
	hr := newHarness(t, harnessOptions{targets: []string{backend.Listener.Addr().String()}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body := rawExchange(t, hr.front.Listener.Addr().String(),
				"GET / HTTP/1.1\r\nHost: app.example\r\n"+tt.lines+"\r\n")
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", res.StatusCode, body)
			}
			s := decodeSeen(t, &http.Response{Body: io.NopCloser(strings.NewReader(body))})
			for _, h := range tt.absent {
				if v, ok := s.Header[h]; ok {
					t.Errorf("backend got hop-by-hop %s: %q", h, v)
				}
			}
			for k, v := range tt.want {
				if got := strings.Join(s.Header[k], ", "); got != v {
					t.Errorf("backend %s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

// TestH2CSmugglingRefused pins the h2c smuggling fix (Bishop Fox 2020): a
// backend that would switch to h2c must never see the offer.
func TestH2CSmugglingRefused(t *testing.T) {
	tests := []struct {
		name  string
		lines string
	}{
		{name: "classic offer", lines: "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"},
		{name: "settings not listed in connection", lines: "Connection: Upgrade\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"},
		{name: "upper case", lines: "Connection: upgrade\r\nUpgrade: H2C\r\n"},
		{name: "h2c among others", lines: "Connection: Upgrade\r\nUpgrade: websocket, h2c\r\n"},
	}
	// A vulnerable backend: it switches protocols whenever asked.
	backend := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if up := r.Header.Get("Upgrade"); up != "" {
			w.Header().Set("Connection", "Upgrade")
			w.Header().Set("Upgrade", up)
			w.WriteHeader(http.StatusSwitchingProtocols)
			return
		}
		echoHandler(w, r)
	}))
	hr := newHarness(t, harnessOptions{targets: []string{backend.Listener.Addr().String()}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body := rawExchange(t, hr.front.Listener.Addr().String(),
				"GET / HTTP/1.1\r\nHost: app.example\r\n"+tt.lines+"\r\n")
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200 (plain request): %s", res.StatusCode, body)
			}
			s := decodeSeen(t, &http.Response{Body: io.NopCloser(strings.NewReader(body))})
			for _, h := range []string{"Upgrade", "Http2-Settings", "Connection"} {
				if v, ok := s.Header[h]; ok {
					t.Errorf("backend got %s: %q", h, v)
				}
			}
		})
	}
}

func TestForwardingHeaders(t *testing.T) {
	tests := []struct {
		name    string
		trusted bool
		header  map[string]string
		want    map[string]string
	}{
		{
			name: "untrusted, no headers",
			want: map[string]string{
				"X-Forwarded-For":   "127.0.0.1",
				"X-Forwarded-Proto": "http",
				"X-Forwarded-Host":  "app.example",
				"Forwarded":         "for=127.0.0.1;host=app.example;proto=http",
				"Via":               "1.1 handoff",
			},
		},
		{
			name: "untrusted, spoofed headers replaced",
			header: map[string]string{
				"X-Forwarded-For":   "1.2.3.4",
				"X-Forwarded-Proto": "https",
				"X-Forwarded-Host":  "evil.example",
				"Forwarded":         "for=1.2.3.4;proto=https",
				"Via":               "1.1 edge",
			},
			want: map[string]string{
				"X-Forwarded-For":   "127.0.0.1",
				"X-Forwarded-Proto": "http",
				"X-Forwarded-Host":  "app.example",
				"Forwarded":         "for=127.0.0.1;host=app.example;proto=http",
				// Via is end-to-end information, kept from anyone.
				"Via": "1.1 edge, 1.1 handoff",
			},
		},
		{
			name:    "trusted, chain extended",
			trusted: true,
			header: map[string]string{
				"X-Forwarded-For":   "203.0.113.7, 198.51.100.2",
				"X-Forwarded-Proto": "https",
				"X-Forwarded-Host":  "orig.example",
				"Forwarded":         `for=203.0.113.7;proto=https, For="[2001:db8::1]:4711"`,
				"Via":               "2 edge",
			},
			want: map[string]string{
				"X-Forwarded-For":   "203.0.113.7, 198.51.100.2, 127.0.0.1",
				"X-Forwarded-Proto": "https",
				"X-Forwarded-Host":  "orig.example",
				"Forwarded":         `for=203.0.113.7;proto=https, for="[2001:db8::1]:4711", for=127.0.0.1;host=app.example;proto=http`,
				"Via":               "2 edge, 1.1 handoff",
			},
		},
		{
			name:    "trusted, malformed headers dropped",
			trusted: true,
			header: map[string]string{
				"X-Forwarded-For":   "not-an-ip",
				"X-Forwarded-Proto": "1nvalid",
				"X-Forwarded-Host":  "bad host",
				"Forwarded":         "for=[2001:db8::1",
			},
			want: map[string]string{
				"X-Forwarded-For":   "127.0.0.1",
				"X-Forwarded-Proto": "http",
				"X-Forwarded-Host":  "app.example",
				"Forwarded":         "for=127.0.0.1;host=app.example;proto=http",
			},
		},
	}
	backend := newBackend(t, http.HandlerFunc(echoHandler))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := "10.0.0.0/8"
			if tt.trusted {
				prefix = "127.0.0.0/8"
			}
			hr := newHarness(t, harnessOptions{
				targets: []string{backend.Listener.Addr().String()},
				opts:    Options{TrustedProxies: mustPrefixes(t, prefix)},
			})
			req, _ := http.NewRequestWithContext(ctxTimeout(t), http.MethodGet, hr.front.URL, nil)
			req.Host = "app.example"
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			res, err := hr.client(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			s := decodeSeen(t, res)
			for k, v := range tt.want {
				if got := strings.Join(s.Header[k], " | "); got != v {
					t.Errorf("backend %s = %q, want %q", k, got, v)
				}
			}
			if got := res.Header.Get("Via"); got != "1.1 handoff" {
				t.Errorf("response Via = %q, want %q", got, "1.1 handoff")
			}
		})
	}
}

func TestForwardingHeadersIPv6Peer(t *testing.T) {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	backend := newBackend(t, http.HandlerFunc(echoHandler))
	hr := newHarness(t, harnessOptions{targets: []string{backend.Listener.Addr().String()}, listen: ln})
	req, _ := http.NewRequestWithContext(ctxTimeout(t), http.MethodGet, hr.front.URL, nil)
	req.Host = "[::1]:8080"
	res, err := hr.client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	s := decodeSeen(t, res)
	// RFC 7239 §6: IPv6 nodes are bracketed and the value quoted.
	if got, want := s.Header.Get("Forwarded"), `for="[::1]";host="[::1]:8080";proto=http`; got != want {
		t.Errorf("Forwarded = %q, want %q", got, want)
	}
	if got := s.Header.Get("X-Forwarded-For"); got != "::1" {
		t.Errorf("X-Forwarded-For = %q, want ::1", got)
	}
}

func TestRequestID(t *testing.T) {
	tests := []struct {
		name string
		in   string // "" sends none
		keep bool
	}{
		{name: "none sent", in: ""},
		{name: "sane kept", in: "req-42.abc", keep: true},
		{name: "too long replaced", in: strings.Repeat("x", 201)},
		{name: "space replaced", in: "a b"},
	}
	backend := newBackend(t, http.HandlerFunc(echoHandler))
	hr := newHarness(t, harnessOptions{targets: []string{backend.Listener.Addr().String()}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(ctxTimeout(t), http.MethodGet, hr.front.URL, nil)
			if tt.in != "" {
				req.Header.Set("X-Request-Id", tt.in)
			}
			res, err := hr.client(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			s := decodeSeen(t, res)
			r := hr.result(t)
			fwd := s.Header.Get("X-Request-Id")
			if tt.keep && fwd != tt.in {
				t.Errorf("forwarded id %q, want incoming %q", fwd, tt.in)
			}
			if !tt.keep && (fwd == tt.in || len(fwd) != 32) {
				t.Errorf("forwarded id %q, want a fresh 32-hex id", fwd)
			}
			if got := res.Header.Values("X-Request-Id"); len(got) != 1 || got[0] != fwd {
				t.Errorf("response ids %q, want [%q]", got, fwd)
			}
			if r.info.RequestID != fwd {
				t.Errorf("reqinfo id %q, want %q", r.info.RequestID, fwd)
			}
		})
	}
}

func TestHostAndSNI(t *testing.T) {
	ca := newTestCA(t)
	localhostCert, _, _ := ca.issue(t, "localhost", "127.0.0.1")
	tlsBackend := func(t *testing.T, cert *tls.Certificate) *httptest.Server {
		s := httptest.NewUnstartedServer(http.HandlerFunc(echoHandler))
		s.Config.ErrorLog = testStdLogger(t)
		if cert != nil {
			s.TLS = &tls.Config{Certificates: []tls.Certificate{*cert}}
		}
		s.StartTLS()
		t.Cleanup(s.Close)
		return s
	}
	tests := []struct {
		name    string
		backend func(t *testing.T) (target string, tlsc config.UpstreamTLS)
		wantSNI string
	}{
		{
			name: "plain http",
			backend: func(t *testing.T) (string, config.UpstreamTLS) {
				return newBackend(t, http.HandlerFunc(echoHandler)).Listener.Addr().String(), config.UpstreamTLS{}
			},
		},
		{
			name: "https sni from server_name",
			backend: func(t *testing.T) (string, config.UpstreamTLS) {
				s := tlsBackend(t, nil)
				return s.URL, config.UpstreamTLS{ServerName: "api.example.com", CA: writeServerCA(t, s)}
			},
			wantSNI: "api.example.com",
		},
		{
			name: "https sni from target host",
			backend: func(t *testing.T) (string, config.UpstreamTLS) {
				s := tlsBackend(t, &localhostCert)
				return "https://localhost:" + portOf(t, s), config.UpstreamTLS{CA: ca.pemPath}
			},
			wantSNI: "localhost",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, tlsc := tt.backend(t)
			hr := newHarness(t, harnessOptions{targets: []string{target}, upstream: config.Upstream{TLS: tlsc}})
			req, _ := http.NewRequestWithContext(ctxTimeout(t), http.MethodGet, hr.front.URL+"/path?q=1", nil)
			req.Host = "client.example.org"
			res, err := hr.client(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			s := decodeSeen(t, res)
			if s.Host != "client.example.org" {
				t.Errorf("backend Host = %q, want the client's", s.Host)
			}
			if s.SNI != tt.wantSNI {
				t.Errorf("backend SNI = %q, want %q", s.SNI, tt.wantSNI)
			}
		})
	}
}

func portOf(t *testing.T, s *httptest.Server) string {
	t.Helper()
	_, port, err := net.SplitHostPort(s.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func TestTargetAcquireAndNoTarget(t *testing.T) {
	var target atomic.Pointer[upstream.Target]
	backend := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%d", target.Load().InFlight())
	}))
	hr := newHarness(t, harnessOptions{targets: []string{backend.Listener.Addr().String()}})
	target.Store(hr.pool.Targets()[0])

	res, err := hr.client(t).Get(hr.front.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(b) != "1" {
		t.Errorf("in flight during request = %s, want 1", b)
	}
	r := hr.result(t)
	if got := hr.pool.Targets()[0].InFlight(); got != 0 {
		t.Errorf("in flight after request = %d, want 0", got)
	}
	if r.info.Target != hr.pool.Targets()[0].Address {
		t.Errorf("reqinfo target %q", r.info.Target)
	}

	hr.pool.Targets()[0].MarkFailed(time.Now(), time.Hour)
	res, err = hr.client(t).Get(hr.front.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "no healthy upstream") {
		t.Errorf("got %d %q, want 503 no healthy upstream", res.StatusCode, b)
	}
	r = hr.result(t)
	if r.info.Target != "" {
		t.Errorf("reqinfo target %q, want none", r.info.Target)
	}
	if _, errs := hr.obs.snapshot(); len(errs) != 1 || errs[0].kind != KindNoTarget {
		t.Errorf("observer errors %v, want one no_target", errs)
	}
}

func TestRetry(t *testing.T) {
	tests := []struct {
		name        string
		method      string
		body        string
		chunked     bool
		header      map[string]string
		retries     *int
		retryOn     []string
		targets     []string // "dead", "live" or "notls" (https to a plain server)
		wantStatus  int
		wantRetries int
		wantHits    int
	}{
		{name: "get retried", method: "GET", targets: []string{"dead", "live"}, wantStatus: 200, wantRetries: 1, wantHits: 1},
		{name: "head retried", method: "HEAD", targets: []string{"dead", "live"}, wantStatus: 200, wantRetries: 1, wantHits: 1},
		{name: "put with body retried, body intact", method: "PUT", body: "payload", targets: []string{"dead", "live"}, wantStatus: 200, wantRetries: 1, wantHits: 1},
		{name: "chunked put retried", method: "PUT", body: "chunked payload", chunked: true, targets: []string{"dead", "live"}, wantStatus: 200, wantRetries: 1, wantHits: 1},
		// Nothing reached the dead target: safe whatever the method
		// (this was a 502 before issue 8).
		{name: "post with unread body retried", method: "POST", body: "x", targets: []string{"dead", "live"}, wantStatus: 200, wantRetries: 1, wantHits: 1},
		{name: "retry_on without connect_failure", method: "GET", retryOn: []string{"timeout"}, targets: []string{"dead", "live"}, wantStatus: 502},
		{name: "post without body retried", method: "POST", targets: []string{"dead", "live"}, wantStatus: 200, wantRetries: 1, wantHits: 1},
		{name: "post with idempotency-key retried", method: "POST", body: "x", header: map[string]string{"Idempotency-Key": `"k1"`}, targets: []string{"dead", "live"}, wantStatus: 200, wantRetries: 1, wantHits: 1},
		{name: "post with x-idempotency-key retried", method: "POST", body: "x", header: map[string]string{"X-Idempotency-Key": "k1"}, targets: []string{"dead", "live"}, wantStatus: 200, wantRetries: 1, wantHits: 1},
		{name: "retries zero", method: "GET", retries: intp(0), targets: []string{"dead", "live"}, wantStatus: 502},
		{name: "default is three retries, as HAProxy", method: "GET", targets: []string{"dead", "dead", "dead", "dead", "live"}, wantStatus: 502, wantRetries: 3},
		{name: "default reaches a live third target", method: "GET", targets: []string{"dead", "dead", "live"}, wantStatus: 200, wantRetries: 2, wantHits: 1},
		{name: "two retries", method: "GET", retries: intp(2), targets: []string{"dead", "dead", "live"}, wantStatus: 200, wantRetries: 2, wantHits: 1},
		{name: "tls handshake failure retried", method: "GET", targets: []string{"notls", "live"}, wantStatus: 200, wantRetries: 1, wantHits: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hits atomic.Int64
			live := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				echoHandler(w, r)
			}))
			var targets []string
			for _, k := range tt.targets {
				switch k {
				case "dead":
					targets = append(targets, deadAddr(t))
				case "notls":
					targets = append(targets, "https://"+newBackend(t, http.HandlerFunc(echoHandler)).Listener.Addr().String())
				default:
					targets = append(targets, live.Listener.Addr().String())
				}
			}
			hr := newHarness(t, harnessOptions{targets: targets, upstream: config.Upstream{Retries: tt.retries, RetryOn: tt.retryOn}})
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
				if tt.chunked {
					body = io.NopCloser(body)
				}
			}
			req, _ := http.NewRequestWithContext(ctxTimeout(t), tt.method, hr.front.URL, body)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			res, err := hr.client(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode == http.StatusOK && tt.method != "HEAD" {
				if s := decodeSeen(t, res); s.Body != tt.body {
					t.Errorf("backend got body %q, want %q", s.Body, tt.body)
				}
			} else {
				res.Body.Close()
			}
			r := hr.result(t)
			if res.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d", res.StatusCode, tt.wantStatus)
			}
			if r.info.Retries != tt.wantRetries {
				t.Errorf("reqinfo retries %d, want %d", r.info.Retries, tt.wantRetries)
			}
			if got := hits.Load(); got != int64(tt.wantHits) {
				t.Errorf("live backend hits %d, want %d", got, tt.wantHits)
			}
			retries, errs := hr.obs.snapshot()
			if retries != tt.wantRetries {
				t.Errorf("observer retries %d, want %d", retries, tt.wantRetries)
			}
			// Every target tried before the answer failed to connect
			// and is now ejected.
			tried := tt.wantRetries + 1
			if tt.wantStatus == 200 {
				tried--
			}
			if len(errs) != tried {
				t.Errorf("observer errors %v, want %d", errs, tried)
			}
			for i := 0; i < tried; i++ {
				tg := hr.pool.Targets()[i]
				if tg.Available(time.Now()) {
					t.Errorf("target %s not ejected after connect failure", tg.Address)
				}
				if errs[i].kind != KindConnect || errs[i].target != tg.Address {
					t.Errorf("observer error %d = %v, want connect on %s", i, errs[i], tg.Address)
				}
			}
			for _, tg := range hr.pool.Targets() {
				if n := tg.InFlight(); n != 0 {
					t.Errorf("target %s in flight %d after request", tg.Address, n)
				}
			}
		})
	}
}

func TestStatusFor(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{name: "generic", err: io.ErrUnexpectedEOF, want: 502},
		{name: "refused", err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}, want: 502},
		{name: "no target", err: errNoTarget, want: 503},
		{name: "deadline", err: fmt.Errorf("x: %w", context.DeadlineExceeded), want: 504},
		{name: "net timeout", err: &net.OpError{Op: "dial", Err: timeoutErr{}}, want: 504},
		{name: "client gone", err: fmt.Errorf("%w: %w", errClientGone, context.Canceled), want: StatusClientClosedRequest},
		{name: "client gone beats timeout", err: fmt.Errorf("%w: %w", errClientGone, context.DeadlineExceeded), want: StatusClientClosedRequest},
		{name: "body too large", err: &requestBodyError{err: &http.MaxBytesError{Limit: 1}}, want: 413},
		{name: "body unreadable", err: &requestBodyError{err: io.ErrUnexpectedEOF}, want: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := statusFor(tt.err); got != tt.want {
				t.Fatalf("statusFor(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestErrorResponses(t *testing.T) {
	tests := []struct {
		name     string
		backend  func(t *testing.T, block <-chan struct{}) string
		upstream config.Upstream
		opts     Options
		want     int
		wantBody string
		wantKind string
		ejected  bool
	}{
		{
			name: "response header timeout",
			backend: func(t *testing.T, block <-chan struct{}) string {
				return newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block })).Listener.Addr().String()
			},
			upstream: config.Upstream{Timeouts: config.UpstreamTimeouts{ResponseHeader: 100 * time.Millisecond}},
			want:     504, wantBody: "504 Gateway Timeout\n", wantKind: KindTimeout,
		},
		{
			name: "request timeout",
			backend: func(t *testing.T, block <-chan struct{}) string {
				return newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block })).Listener.Addr().String()
			},
			opts: Options{RequestTimeout: 100 * time.Millisecond},
			want: 504, wantBody: "504 Gateway Timeout\n", wantKind: KindTimeout,
		},
		{
			name:    "connection refused",
			backend: func(t *testing.T, _ <-chan struct{}) string { return deadAddr(t) },
			want:    502, wantBody: "502 Bad Gateway\n", wantKind: KindConnect, ejected: true,
		},
		{
			name: "backend hangs up",
			backend: func(t *testing.T, _ <-chan struct{}) string {
				return newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					c, _, err := http.NewResponseController(w).Hijack()
					if err == nil {
						c.Close()
					}
				})).Listener.Addr().String()
			},
			// A target that accepts and hangs up is faulty: like a
			// failed connect it counts against it (nginx's "error").
			want: 502, wantBody: "502 Bad Gateway\n", wantKind: KindProtocol, ejected: true,
		},
		{
			name: "certificate not trusted",
			backend: func(t *testing.T, _ <-chan struct{}) string {
				s := httptest.NewUnstartedServer(http.HandlerFunc(echoHandler))
				s.Config.ErrorLog = testStdLogger(t)
				s.StartTLS()
				t.Cleanup(s.Close)
				return s.URL
			},
			want: 502, wantBody: "502 Bad Gateway\n", wantKind: KindConnect, ejected: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			block := make(chan struct{})
			target := tt.backend(t, block)
			t.Cleanup(func() { close(block) }) // runs before the backend closes
			hr := newHarness(t, harnessOptions{targets: []string{target}, upstream: tt.upstream, opts: tt.opts})
			res, err := hr.client(t).Get(hr.front.URL)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			r := hr.result(t)
			if res.StatusCode != tt.want || string(b) != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", res.StatusCode, b, tt.want, tt.wantBody)
			}
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("content-type %q", ct)
			}
			if res.Header.Get("X-Request-Id") != r.info.RequestID {
				t.Errorf("error response lacks the request id")
			}
			if _, errs := hr.obs.snapshot(); len(errs) != 1 || errs[0].kind != tt.wantKind {
				t.Errorf("observer errors %v, want one %s", errs, tt.wantKind)
			}
			if got := !hr.pool.Targets()[0].Available(time.Now()); got != tt.ejected {
				t.Errorf("target ejected = %v, want %v", got, tt.ejected)
			}
			if r.info.ClientGone {
				t.Errorf("reqinfo says client gone")
			}
		})
	}
}

func TestClientGone(t *testing.T) {
	tests := []struct {
		name string
		// midBody: the backend sends headers and a first chunk before
		// blocking; otherwise it blocks before answering.
		midBody bool
	}{
		{name: "before response"},
		{name: "during body", midBody: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			started := make(chan struct{}, 1)
			block := make(chan struct{})
			backend := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.midBody {
					io.WriteString(w, "first\n")
					http.NewResponseController(w).Flush()
				}
				started <- struct{}{}
				select {
				case <-block:
				case <-r.Context().Done():
				}
			}))
			t.Cleanup(func() { close(block) })
			hr := newHarness(t, harnessOptions{targets: []string{backend.Listener.Addr().String()}})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, hr.front.URL, nil)
			errc := make(chan error, 1)
			gotFirst := make(chan struct{})
			client := hr.client(t)
			go func() {
				res, err := client.Do(req)
				if err == nil {
					_, err = bufio.NewReader(res.Body).ReadString('\n')
					close(gotFirst)
					if err == nil {
						_, err = io.ReadAll(res.Body)
					}
					res.Body.Close()
				}
				errc <- err
			}()
			<-started
			if tt.midBody {
				// Cancel only once the first chunk went through the
				// proxy to the client.
				<-gotFirst
			}
			cancel()
			if err := <-errc; !errors.Is(err, context.Canceled) {
				t.Errorf("client error %v, want canceled", err)
			}
			r := hr.result(t)
			if !r.info.ClientGone {
				t.Errorf("reqinfo ClientGone false")
			}
			if !tt.midBody && r.wrote {
				t.Errorf("proxy wrote status %d to a client that went away", r.status)
			}
			if !hr.pool.Targets()[0].Available(time.Now()) {
				t.Errorf("target ejected for a client cancel")
			}
			if _, errs := hr.obs.snapshot(); len(errs) != 0 {
				t.Errorf("observer blamed upstream: %v", errs)
			}
			if n := hr.pool.Targets()[0].InFlight(); n != 0 {
				t.Errorf("in flight %d after client went away", n)
			}
		})
	}
}

// TestUpstreamBodyBreaks: a target that dies mid-body is an upstream
// failure, not a client that went away.
func TestUpstreamBodyBreaks(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			br := bufio.NewReader(c)
			if _, err := http.ReadRequest(br); err == nil {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	hr := newHarness(t, harnessOptions{targets: []string{ln.Addr().String()}})
	// The client sees the failure either at once (the status line was
	// still buffered when the proxy aborted) or while reading the body.
	res, err := hr.client(t).Get(hr.front.URL)
	if err == nil {
		b, rerr := io.ReadAll(res.Body)
		res.Body.Close()
		if rerr == nil {
			t.Errorf("client read %d %q without error from a truncated response", res.StatusCode, b)
		}
	}
	r := hr.result(t)
	if r.info.ClientGone {
		t.Errorf("reqinfo blames the client")
	}
	if _, errs := hr.obs.snapshot(); len(errs) != 1 || errs[0].kind != KindBody {
		t.Errorf("observer errors %v, want one body", errs)
	}
}

func TestConnectRefused(t *testing.T) {
	backend := newBackend(t, http.HandlerFunc(echoHandler))
	hr := newHarness(t, harnessOptions{targets: []string{backend.Listener.Addr().String()}})
	res, body := rawExchange(t, hr.front.Listener.Addr().String(), "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
	if res.StatusCode != http.StatusNotImplemented {
		t.Fatalf("CONNECT got %d %q, want 501", res.StatusCode, body)
	}
}

// TestEjectionFollowsInjectedClock: a target that failed to connect is
// skipped until FailTimeout has passed on the injected clock.
func TestEjectionFollowsInjectedClock(t *testing.T) {
	var hits atomic.Int64
	live := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		echoHandler(w, r)
	}))
	var nowNanos atomic.Int64
	nowNanos.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, nowNanos.Load()) }
	hr := newHarness(t, harnessOptions{
		targets:  []string{deadAddr(t), live.Listener.Addr().String()},
		upstream: config.Upstream{FailTimeout: 30 * time.Second},
		opts:     Options{Now: now},
	})
	steps := []struct {
		name        string
		advance     time.Duration
		wantRetries int
	}{
		{name: "first request finds the dead target", wantRetries: 1},
		{name: "within fail timeout it is skipped", advance: 29 * time.Second, wantRetries: 0},
		{name: "after fail timeout it is tried again", advance: 2 * time.Second, wantRetries: 1},
	}
	for _, st := range steps {
		nowNanos.Add(int64(st.advance))
		res, err := hr.client(t).Get(hr.front.URL)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		r := hr.result(t)
		if res.StatusCode != 200 || r.info.Retries != st.wantRetries {
			t.Errorf("%s: status %d, retries %d; want 200, %d", st.name, res.StatusCode, r.info.Retries, st.wantRetries)
		}
	}
	if got := hits.Load(); got != int64(len(steps)) {
		t.Errorf("live backend hits %d, want %d", got, len(steps))
	}
}

// TestCanResend: a request that never reached a target may be resent
// whatever its method (HAProxy retry-on conn-failure); one the target may
// have acted on only when idempotent (RFC 9110 §9.2.2) and never with a
// partly sent body.
func TestCanResend(t *testing.T) {
	read := func(eof bool) *bodyGuard {
		g := &bodyGuard{rc: io.NopCloser(strings.NewReader(""))}
		g.n.Store(3)
		g.eof.Store(eof)
		return g
	}
	tests := []struct {
		name       string
		method     string
		body       *bodyGuard
		header     http.Header
		getBody    bool
		wroteAll   bool
		wantUnsent bool
		wantSent   bool
	}{
		{name: "no body", method: "POST", wantUnsent: true, wantSent: false},
		{name: "get with body", method: "GET", body: &bodyGuard{}, wantUnsent: true, wantSent: true},
		{name: "get without body", method: "GET", wantUnsent: true, wantSent: true},
		{name: "delete", method: "DELETE", body: &bodyGuard{}, wantUnsent: true, wantSent: true},
		{name: "options", method: "OPTIONS", body: &bodyGuard{}, wantUnsent: true, wantSent: true},
		{name: "post with unread body", method: "POST", body: &bodyGuard{}, wantUnsent: true, wantSent: false},
		{name: "patch with unread body", method: "PATCH", body: &bodyGuard{}, wantUnsent: true, wantSent: false},
		{name: "post with key", method: "POST", body: &bodyGuard{}, header: http.Header{"Idempotency-Key": {`"a"`}}, wantUnsent: true, wantSent: true},
		{name: "consumed body without GetBody", method: "PUT", body: read(true), wroteAll: true, wantUnsent: false, wantSent: false},
		{name: "consumed body with GetBody", method: "PUT", body: read(true), getBody: true, wroteAll: true, wantUnsent: true, wantSent: true},
		{name: "partly sent body with GetBody", method: "PUT", body: read(false), getBody: true, wantUnsent: true, wantSent: false},
		{name: "whole body read but not written", method: "PUT", body: read(true), getBody: true, wantUnsent: true, wantSent: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &http.Request{Method: tt.method, Header: tt.header}
			if r.Header == nil {
				r.Header = http.Header{}
			}
			if tt.getBody {
				r.GetBody = func() (io.ReadCloser, error) { return http.NoBody, nil }
			}
			if got := canResendUnsent(r, tt.body); got != tt.wantUnsent {
				t.Errorf("canResendUnsent = %v, want %v", got, tt.wantUnsent)
			}
			if got := canResendSent(r, tt.body, attempt{wroteAll: tt.wroteAll}); got != tt.wantSent {
				t.Errorf("canResendSent = %v, want %v", got, tt.wantSent)
			}
		})
	}
}
