package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/handoff-proxy/handoff/pkg/config"
)

// frontClient returns a client of the given kind for the harness: "h1"
// (HTTP/1.1), "h2c" (HTTP/2 prior knowledge) or "h2" (TLS front, ALPN).
func frontClient(t *testing.T, hr *harness, kind string) *http.Client {
	t.Helper()
	if kind == "h2c" {
		return h2cClient(t)
	}
	return hr.client(t)
}

func newFront(t *testing.T, targets []string, kind string, ho harnessOptions) *harness {
	t.Helper()
	ho.targets = targets
	ho.tls = kind == "h2"
	return newHarness(t, ho)
}

// newTLSBackend starts an HTTPS backend; h2 reports whether it offers
// HTTP/2 by ALPN. It returns the server and a CA file that trusts it.
func newTLSBackend(t *testing.T, h http.Handler, h2 bool) (*httptest.Server, string) {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.Config.ErrorLog = testStdLogger(t)
	s.EnableHTTP2 = h2
	s.StartTLS()
	t.Cleanup(s.Close)
	return s, writeServerCA(t, s)
}

// newH2CBackend starts a backend that speaks only HTTP/2 with prior
// knowledge.
func newH2CBackend(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.Config.ErrorLog = testStdLogger(t)
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	s.Config.Protocols = &p
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func TestWebSocket(t *testing.T) {
	tests := []struct {
		name string
		tls  bool // the backend is HTTPS and offers HTTP/2 by ALPN
	}{
		{name: "plain backend"},
		{name: "tls backend offering h2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			closed := make(chan websocket.StatusCode, 1)
			echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := websocket.Accept(w, r, nil)
				if err != nil {
					return
				}
				defer c.CloseNow()
				c.SetReadLimit(1 << 20)
				for {
					typ, b, err := c.Read(r.Context())
					if err != nil {
						closed <- websocket.CloseStatus(err)
						return
					}
					if err := c.Write(r.Context(), typ, b); err != nil {
						return
					}
				}
			})
			var target string
			var up config.Upstream
			if tt.name == "plain backend" {
				target = newBackend(t, echo).Listener.Addr().String()
			} else {
				s, ca := newTLSBackend(t, echo, true)
				target, up.TLS.CA = s.URL, ca
			}
			hr := newHarness(t, harnessOptions{targets: []string{target}, upstream: up})
			ctx := ctxTimeout(t)
			c, res, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hr.front.URL, "http"), &websocket.DialOptions{HTTPClient: hr.client(t)})
			if err != nil {
				t.Fatalf("dial through proxy: %v", err)
			}
			defer c.CloseNow()
			c.SetReadLimit(1 << 20)
			if res.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("status %d", res.StatusCode)
			}
			msgs := []struct {
				typ  websocket.MessageType
				data []byte
			}{
				{websocket.MessageText, []byte("hello through handoff")},
				{websocket.MessageBinary, []byte{0, 1, 2, 0xfe, 0xff}},
				{websocket.MessageText, bytes.Repeat([]byte("big"), 40000)},
			}
			for _, m := range msgs {
				if err := c.Write(ctx, m.typ, m.data); err != nil {
					t.Fatalf("write: %v", err)
				}
				typ, b, err := c.Read(ctx)
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				if typ != m.typ || !bytes.Equal(b, m.data) {
					t.Fatalf("echo = %v %d bytes, want %v %d bytes", typ, len(b), m.typ, len(m.data))
				}
			}
			if err := c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
				t.Fatalf("close handshake: %v", err)
			}
			select {
			case code := <-closed:
				if code != websocket.StatusNormalClosure {
					t.Errorf("backend saw close status %v", code)
				}
			case <-ctx.Done():
				t.Fatal("backend saw no close")
			}
			r := hr.result(t)
			if r.info.Target != hr.pool.Targets()[0].Address || r.info.ClientGone {
				t.Errorf("reqinfo %+v", r.info)
			}
			if n := hr.pool.Targets()[0].InFlight(); n != 0 {
				t.Errorf("in flight %d after the tunnel closed", n)
			}
		})
	}
}

func TestStreamingResponses(t *testing.T) {
	tests := []struct {
		name   string
		client string
		sse    bool // text/event-stream with a Content-Length, which only SSE flushing streams
	}{
		{name: "chunked h1", client: "h1"},
		{name: "chunked h2c", client: "h2c"},
		{name: "chunked h2 tls", client: "h2"},
		{name: "sse h1", client: "h1", sse: true},
		{name: "sse h2c", client: "h2c", sse: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proceed := make(chan struct{})
			first, second := "data: one\n\n", "data: two\n\n"
			backend := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.sse {
					w.Header().Set("Content-Type", "text/event-stream")
					w.Header().Set("Content-Length", strconv.Itoa(len(first)+len(second)))
				} else {
					w.Header().Set("Content-Type", "text/plain")
				}
				io.WriteString(w, first)
				http.NewResponseController(w).Flush()
				select {
				case <-proceed:
				case <-r.Context().Done():
					return
				}
				io.WriteString(w, second)
			}))
			hr := newFront(t, []string{backend.Listener.Addr().String()}, tt.client, harnessOptions{})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, hr.front.URL, nil)
			res, err := frontClient(t, hr, tt.client).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			br := bufio.NewReader(res.Body)
			// The first event must arrive while the backend is still
			// blocked: the proxy streams, it does not buffer.
			got := ""
			for got != first {
				line, err := br.ReadString('\n')
				if err != nil {
					close(proceed)
					t.Fatalf("first event not streamed: %v (got %q)", err, got)
				}
				got += line
			}
			close(proceed)
			rest, err := io.ReadAll(br)
			if err != nil || string(rest) != second {
				t.Fatalf("rest = %q, %v", rest, err)
			}
		})
	}
}

func TestTrailers(t *testing.T) {
	tests := []struct {
		name    string
		client  string
		backend string // "h1" or "h2c"
	}{
		{name: "h1 client, h1 backend", client: "h1", backend: "h1"},
		{name: "h2c client, h1 backend", client: "h2c", backend: "h1"},
		{name: "h2 tls client, h1 backend", client: "h2", backend: "h1"},
		{name: "h1 client, h2c backend", client: "h1", backend: "h2c"},
		{name: "h2c client, h2c backend", client: "h2c", backend: "h2c"},
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum, X-Req-Trailer")
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
		w.Header().Set("X-Checksum", "len-"+strconv.Itoa(len(b)))
		w.Header().Set("X-Req-Trailer", r.Trailer.Get("X-Client-Sum"))
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := newBackend(t, handler).Listener.Addr().String()
			if tt.backend == "h2c" {
				target = "h2c://" + newH2CBackend(t, handler).Listener.Addr().String()
			}
			hr := newFront(t, []string{target}, tt.client, harnessOptions{})
			body := io.NopCloser(strings.NewReader("streamed body")) // unknown length: chunked / DATA frames
			req, _ := http.NewRequestWithContext(ctxTimeout(t), http.MethodPut, hr.front.URL, body)
			req.Trailer = http.Header{"X-Client-Sum": {"c-1"}}
			res, err := frontClient(t, hr, tt.client).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil || string(b) != "streamed body" {
				t.Fatalf("body %q, %v", b, err)
			}
			if got := res.Trailer.Get("X-Checksum"); got != "len-13" {
				t.Errorf("response trailer X-Checksum = %q, want len-13 (trailer %v)", got, res.Trailer)
			}
			if got := res.Trailer.Get("X-Req-Trailer"); got != "c-1" {
				t.Errorf("backend saw request trailer %q, want c-1", got)
			}
		})
	}
}

func TestExpectContinue(t *testing.T) {
	backend := newBackend(t, http.HandlerFunc(echoHandler))
	hr := newHarness(t, harnessOptions{targets: []string{backend.Listener.Addr().String()}})

	t.Run("raw client waits for 100", func(t *testing.T) {
		c, err := net.Dial("tcp", hr.front.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "POST / HTTP/1.1\r\nHost: app.example\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
		br := bufio.NewReader(c)
		res, err := http.ReadResponse(br, nil)
		if err != nil || res.StatusCode != http.StatusContinue {
			t.Fatalf("first response %v, %v; want 100 Continue before the body", res, err)
		}
		io.WriteString(c, "hello")
		// RFC 9110 §15.2: a client must accept more than one 1xx
		// before the final response (the backend's 100 is forwarded
		// and Go's server may send its own).
		for res.StatusCode < 200 {
			if res, err = http.ReadResponse(br, nil); err != nil {
				t.Fatal(err)
			}
		}
		if s := decodeSeen(t, res); res.StatusCode != 200 || s.Body != "hello" {
			t.Fatalf("got %d body %q", res.StatusCode, s.Body)
		}
	})

	t.Run("go client", func(t *testing.T) {
		tr := &http.Transport{ExpectContinueTimeout: 5 * time.Second}
		t.Cleanup(tr.CloseIdleConnections)
		req, _ := http.NewRequestWithContext(ctxTimeout(t), http.MethodPut, hr.front.URL, strings.NewReader("payload"))
		req.Header.Set("Expect", "100-continue")
		start := time.Now()
		res, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if s := decodeSeen(t, res); res.StatusCode != 200 || s.Body != "payload" {
			t.Fatalf("got %d body %q", res.StatusCode, s.Body)
		}
		// Had no 100 come back, the client would have waited out its
		// ExpectContinueTimeout before sending the body.
		if d := time.Since(start); d >= 5*time.Second {
			t.Errorf("request took %v: the 100 Continue did not arrive", d)
		}
	})
}

func TestClientProtocols(t *testing.T) {
	tests := []struct {
		client    string
		wantMajor int
		wantVia   string
		wantProto string
	}{
		{client: "h1", wantMajor: 1, wantVia: "1.1 handoff", wantProto: "http"},
		{client: "h2c", wantMajor: 2, wantVia: "2 handoff", wantProto: "http"},
		{client: "h2", wantMajor: 2, wantVia: "2 handoff", wantProto: "https"},
	}
	backend := newBackend(t, http.HandlerFunc(echoHandler))
	for _, tt := range tests {
		t.Run(tt.client, func(t *testing.T) {
			hr := newFront(t, []string{backend.Listener.Addr().String()}, tt.client, harnessOptions{})
			req, _ := http.NewRequestWithContext(ctxTimeout(t), http.MethodPost, hr.front.URL+"/echo", strings.NewReader("body"))
			res, err := frontClient(t, hr, tt.client).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if res.ProtoMajor != tt.wantMajor {
				t.Errorf("client spoke HTTP/%d, want %d", res.ProtoMajor, tt.wantMajor)
			}
			s := decodeSeen(t, res)
			if s.Body != "body" || s.Method != http.MethodPost {
				t.Errorf("backend got %s %q", s.Method, s.Body)
			}
			if got := s.Header.Get("Via"); got != tt.wantVia {
				t.Errorf("Via = %q, want %q", got, tt.wantVia)
			}
			if got := s.Header.Get("X-Forwarded-Proto"); got != tt.wantProto {
				t.Errorf("X-Forwarded-Proto = %q, want %q", got, tt.wantProto)
			}
		})
	}
}

func TestUpstreamProtocolsAndTLS(t *testing.T) {
	ca := newTestCA(t)
	_, clientCert, clientKey := ca.issue(t, "client")
	tests := []struct {
		name      string
		backend   func(t *testing.T) (string, config.UpstreamTLS)
		want      int
		wantMajor int
	}{
		{
			name: "http",
			backend: func(t *testing.T) (string, config.UpstreamTLS) {
				return "http://" + newBackend(t, http.HandlerFunc(echoHandler)).Listener.Addr().String(), config.UpstreamTLS{}
			},
			want: 200, wantMajor: 1,
		},
		{
			name: "h2c prior knowledge",
			backend: func(t *testing.T) (string, config.UpstreamTLS) {
				return "h2c://" + newH2CBackend(t, http.HandlerFunc(echoHandler)).Listener.Addr().String(), config.UpstreamTLS{}
			},
			want: 200, wantMajor: 2,
		},
		{
			name: "https custom ca, h2 by alpn",
			backend: func(t *testing.T) (string, config.UpstreamTLS) {
				s, caFile := newTLSBackend(t, http.HandlerFunc(echoHandler), true)
				return s.URL, config.UpstreamTLS{CA: caFile}
			},
			want: 200, wantMajor: 2,
		},
		{
			name: "https backend without h2",
			backend: func(t *testing.T) (string, config.UpstreamTLS) {
				s, caFile := newTLSBackend(t, http.HandlerFunc(echoHandler), false)
				return s.URL, config.UpstreamTLS{CA: caFile}
			},
			want: 200, wantMajor: 1,
		},
		{
			name: "https unknown ca fails",
			backend: func(t *testing.T) (string, config.UpstreamTLS) {
				s, _ := newTLSBackend(t, http.HandlerFunc(echoHandler), true)
				return s.URL, config.UpstreamTLS{CA: ca.pemPath}
			},
			want: 502,
		},
		{
			name: "https insecure skip verify",
			backend: func(t *testing.T) (string, config.UpstreamTLS) {
				s, _ := newTLSBackend(t, http.HandlerFunc(echoHandler), true)
				return s.URL, config.UpstreamTLS{InsecureSkipVerify: true}
			},
			want: 200, wantMajor: 2,
		},
		{
			name: "https server name mismatch fails",
			backend: func(t *testing.T) (string, config.UpstreamTLS) {
				s, caFile := newTLSBackend(t, http.HandlerFunc(echoHandler), true)
				return s.URL, config.UpstreamTLS{CA: caFile, ServerName: "other.test"}
			},
			want: 502,
		},
		{
			name: "mtls client certificate",
			backend: func(t *testing.T) (string, config.UpstreamTLS) {
				s := mtlsBackend(t, ca)
				return s.URL, config.UpstreamTLS{CA: writeServerCA(t, s), Cert: clientCert, Key: clientKey}
			},
			want: 200, wantMajor: 2,
		},
		{
			name: "mtls without client certificate fails",
			backend: func(t *testing.T) (string, config.UpstreamTLS) {
				s := mtlsBackend(t, ca)
				return s.URL, config.UpstreamTLS{CA: writeServerCA(t, s)}
			},
			want: 502,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, tlsc := tt.backend(t)
			hr := newHarness(t, harnessOptions{targets: []string{target}, upstream: config.Upstream{TLS: tlsc}})
			res, err := hr.client(t).Get(hr.front.URL)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tt.want {
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				t.Fatalf("status %d %q, want %d", res.StatusCode, b, tt.want)
			}
			if tt.want != 200 {
				res.Body.Close()
				return
			}
			if s := decodeSeen(t, res); s.ProtoMajor != tt.wantMajor {
				t.Errorf("backend got HTTP/%d, want %d", s.ProtoMajor, tt.wantMajor)
			}
		})
	}
}

// mtlsBackend starts an HTTPS backend (h2 offered) that requires a client
// certificate issued by ca.
func mtlsBackend(t *testing.T, ca *testCA) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(http.HandlerFunc(echoHandler))
	s.Config.ErrorLog = testStdLogger(t)
	s.EnableHTTP2 = true
	s.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.pool()}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func TestKeepAliveReuse(t *testing.T) {
	tests := []struct {
		name   string
		scheme string
	}{
		{name: "http/1.1", scheme: "http"},
		{name: "h2c", scheme: "h2c"},
		{name: "https h2", scheme: "https"},
	}
	const requests = 50
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var conns atomic.Int64
			s := httptest.NewUnstartedServer(http.HandlerFunc(echoHandler))
			s.Config.ErrorLog = testStdLogger(t)
			s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
				if st == http.StateNew {
					conns.Add(1)
				}
			}
			var up config.Upstream
			target := ""
			switch tt.scheme {
			case "h2c":
				var p http.Protocols
				p.SetUnencryptedHTTP2(true)
				s.Config.Protocols = &p
				s.Start()
				target = "h2c://" + s.Listener.Addr().String()
			case "https":
				s.EnableHTTP2 = true
				s.StartTLS()
				target, up.TLS.CA = s.URL, writeServerCA(t, s)
			default:
				s.Start()
				target = s.Listener.Addr().String()
			}
			t.Cleanup(s.Close)
			hr := newHarness(t, harnessOptions{targets: []string{target}, upstream: up})
			c := hr.client(t)
			for i := range requests {
				res, err := c.Get(hr.front.URL)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					t.Fatalf("request %d: status %d", i, res.StatusCode)
				}
			}
			if n := conns.Load(); n > 2 {
				t.Errorf("backend saw %d connections for %d sequential requests; keep-alive is not reused", n, requests)
			}
		})
	}
}

func TestMaxRequestBody(t *testing.T) {
	const limit = 10
	tests := []struct {
		name     string
		body     string
		chunked  bool
		want     int
		wantHits int64
	}{
		{name: "content-length over limit refused upfront", body: strings.Repeat("x", limit+1), want: 413, wantHits: 0},
		// Whether the backend ran before the limit hit depends on
		// timing: -1 skips the check.
		{name: "chunked over limit", body: strings.Repeat("x", 4*limit), chunked: true, want: 413, wantHits: -1},
		{name: "at limit", body: strings.Repeat("x", limit), chunked: true, want: 200, wantHits: 1},
		{name: "under limit", body: "small", want: 200, wantHits: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hits atomic.Int64
			backend := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				echoHandler(w, r)
			}))
			hr := newHarness(t, harnessOptions{targets: []string{backend.Listener.Addr().String()}, opts: Options{MaxRequestBody: limit}})
			var body io.Reader = strings.NewReader(tt.body)
			if tt.chunked {
				body = io.NopCloser(body)
			}
			req, _ := http.NewRequestWithContext(ctxTimeout(t), http.MethodPut, hr.front.URL, body)
			res, err := hr.client(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tt.want {
				b, _ := io.ReadAll(res.Body)
				t.Errorf("status %d %q, want %d", res.StatusCode, b, tt.want)
			}
			if tt.want == 200 {
				if s := decodeSeen(t, res); s.Body != tt.body {
					t.Errorf("backend got %q", s.Body)
				}
			} else {
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if string(b) != "413 Request Entity Too Large\n" {
					t.Errorf("body %q", b)
				}
			}
			hr.result(t)
			if got := hits.Load(); tt.wantHits >= 0 && got != tt.wantHits {
				t.Errorf("backend hits %d, want %d", got, tt.wantHits)
			}
			if _, errs := hr.obs.snapshot(); len(errs) != 0 {
				t.Errorf("observer blamed upstream for a client body: %v", errs)
			}
		})
	}
}

// TestRequestBodyStreamed: the backend gets the start of a body before the
// client has sent the rest, with and without a body limit, and the limit
// is enforced on the stream.
func TestRequestBodyStreamed(t *testing.T) {
	tests := []struct {
		name  string
		limit int64
		more  string // sent after the backend saw the first part
		want  int
	}{
		{name: "unlimited", more: "-rest", want: 200},
		{name: "under limit", limit: 100, more: "-rest", want: 200},
		{name: "over limit mid-stream", limit: 8, more: "-this-is-too-much", want: 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotFirst := make(chan struct{})
			backend := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				buf := make([]byte, 5)
				if _, err := io.ReadFull(r.Body, buf); err != nil {
					return
				}
				close(gotFirst)
				rest, err := io.ReadAll(r.Body)
				if err != nil {
					return
				}
				io.WriteString(w, string(buf)+string(rest))
			}))
			hr := newHarness(t, harnessOptions{targets: []string{backend.Listener.Addr().String()}, opts: Options{MaxRequestBody: tt.limit}})
			pr, pw := io.Pipe()
			req, _ := http.NewRequestWithContext(ctxTimeout(t), http.MethodPost, hr.front.URL, pr)
			type reply struct {
				status int
				body   string
				err    error
			}
			done := make(chan reply, 1)
			client := hr.client(t)
			go func() {
				res, err := client.Do(req)
				if err != nil {
					done <- reply{err: err}
					return
				}
				b, err := io.ReadAll(res.Body)
				res.Body.Close()
				done <- reply{status: res.StatusCode, body: string(b), err: err}
			}()
			io.WriteString(pw, "first")
			select {
			case <-gotFirst:
			case <-time.After(5 * time.Second):
				pw.CloseWithError(errors.New("test gave up"))
				t.Fatal("backend did not get the first bytes while the client was still sending")
			}
			io.WriteString(pw, tt.more)
			pw.Close()
			r := <-done
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.status != tt.want {
				t.Fatalf("status %d %q, want %d", r.status, r.body, tt.want)
			}
			if tt.want == 200 && r.body != "first"+tt.more {
				t.Errorf("echo %q", r.body)
			}
		})
	}
}
