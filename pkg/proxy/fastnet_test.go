package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/handoff-proxy/handoff/pkg/handofftest"
)

// parityBackend answers the requests of TestServeHTTPParity.
func parityBackend(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	switch r.URL.Path {
	case "/get":
		h.Set("Content-Type", "text/plain")
		h.Add("Set-Cookie", "a=1")
		h.Add("Set-Cookie", "b=2")
		h.Set("Connection", "X-Hop")
		h.Set("X-Hop", "dropped")
		h.Set("Keep-Alive", "timeout=5")
		h.Set("Via", "1.1 origin")
		io.WriteString(w, "hello "+r.URL.RawQuery)
	case "/no-content":
		w.WriteHeader(http.StatusNoContent)
	case "/not-modified":
		h.Set("ETag", `"x"`)
		w.WriteHeader(http.StatusNotModified)
	case "/trailers":
		h.Set("Trailer", "X-Sum")
		io.WriteString(w, "part one,")
		http.NewResponseController(w).Flush()
		io.WriteString(w, "part two")
		h.Set("X-Sum", "42")
	case "/early":
		h.Add("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		h.Del("Link")
		io.WriteString(w, "after hints")
	case "/echo":
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %d %q via=%q xff=%q xfp=%q te=%q", r.Method, r.ContentLength, b,
			r.Header.Get("Via"), r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"), r.Header.Get("Te"))
	default:
		http.NotFound(w, r)
	}
}

// exchangeDump is what a client saw of one exchange, without the fields
// that differ by nature (Date, the generated request id).
func exchangeDump(t *testing.T, c *http.Client, method, u, body string) string {
	t.Helper()
	var informational []string
	ctx := httptrace.WithClientTrace(ctxTimeout(t), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			informational = append(informational, fmt.Sprintf("%d %v", code, h))
			return nil
		},
	})
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequestWithContext(ctx, method, u, rd)
	req.Header.Set("Te", "trailers")
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, u, err)
	}
	res.Header.Del("Date")
	if res.Header.Get("X-Request-Id") != "" {
		res.Header.Set("X-Request-Id", "set")
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "%s %d 1xx=%v\n", res.Proto, res.StatusCode, informational)
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range res.Header {
			if !yield(k) {
				return
			}
		}
	})
	for _, k := range keys {
		fmt.Fprintf(&out, "%s: %q\n", k, res.Header[k])
	}
	fmt.Fprintf(&out, "\n%s\ntrailers %v", b, res.Trailer)
	return out.String()
}

// TestServeHTTPParity checks that a request ServeHTTP forwards through
// Fast (fastnet.go) gets what ReverseProxy gives it, over each protocol a
// client may use.
func TestServeHTTPParity(t *testing.T) {
	backend := newBackend(t, http.HandlerFunc(parityBackend))
	requests := []struct {
		name, method, path, body string
	}{
		{name: "get with query", method: http.MethodGet, path: "/get?q=%C3%A4%20b"},
		{name: "head", method: http.MethodHead, path: "/get"},
		{name: "no content", method: http.MethodGet, path: "/no-content"},
		{name: "not modified", method: http.MethodGet, path: "/not-modified"},
		{name: "chunked with trailers", method: http.MethodGet, path: "/trailers"},
		{name: "early hints", method: http.MethodGet, path: "/early"},
		{name: "post", method: http.MethodPost, path: "/echo", body: "payload"},
		{name: "empty post", method: http.MethodPost, path: "/echo"},
		{name: "not found", method: http.MethodGet, path: "/missing"},
	}
	for _, kind := range []string{"h1", "h2c", "h2"} {
		t.Run(kind, func(t *testing.T) {
			fast := newFront(t, []string{backend.Listener.Addr().String()}, kind, harnessOptions{})
			std := newFront(t, []string{backend.Listener.Addr().String()}, kind, harnessOptions{})
			if fast.h.fast == nil {
				t.Fatal("no fast forwarder for a plain HTTP upstream")
			}
			std.h.fast = nil // ReverseProxy only
			for _, rq := range requests {
				t.Run(rq.name, func(t *testing.T) {
					got := exchangeDump(t, frontClient(t, fast, kind), rq.method, fast.front.URL+rq.path, rq.body)
					fast.result(t)
					want := exchangeDump(t, frontClient(t, std, kind), rq.method, std.front.URL+rq.path, rq.body)
					std.result(t)
					if got != want {
						t.Errorf("through Fast:\n%s\nthrough ReverseProxy:\n%s", got, want)
					}
				})
			}
			if n := idleFastConns(fast.h.fast); n == 0 {
				t.Error("Fast's pool holds no connection: the requests did not go through it")
			}
		})
	}
}

func idleFastConns(f *Fast) int {
	f.conns.mu.Lock()
	defer f.conns.mu.Unlock()
	n := 0
	for _, cs := range f.conns.idle {
		n += len(cs)
	}
	return n
}

func TestNetEligible(t *testing.T) {
	u, _ := url.Parse("http://example.com/a")
	tests := []struct {
		name string
		mod  func(r *http.Request)
		want bool
	}{
		{name: "plain get", mod: func(*http.Request) {}, want: true},
		{name: "body of known length", mod: func(r *http.Request) { r.ContentLength = 10 }, want: true},
		{name: "body of unknown length", mod: func(r *http.Request) { r.ContentLength = -1 }},
		{name: "chunked", mod: func(r *http.Request) { r.TransferEncoding = []string{"chunked"} }},
		{name: "upgrade", mod: func(r *http.Request) { r.Header.Set("Upgrade", "websocket") }},
		{name: "expect", mod: func(r *http.Request) { r.Header.Set("Expect", "100-continue") }},
		{name: "connect", mod: func(r *http.Request) { r.Method = http.MethodConnect }},
		{name: "request trailers", mod: func(r *http.Request) { r.Trailer = http.Header{"X-Sum": nil} }},
		{name: "no host", mod: func(r *http.Request) { r.Host = "" }},
		{name: "route limits", mod: func(r *http.Request) {
			*r = *r.WithContext(WithLimits(r.Context(), Limits{MaxRequestBody: 1}))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := (&http.Request{Method: http.MethodGet, URL: u, Host: "example.com", Header: http.Header{}}).WithContext(context.Background())
			tt.mod(r)
			if got := netEligible(r); got != tt.want {
				t.Errorf("netEligible = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestOneContentLength: a forwarded request carries its framing once,
// whatever the client sent it with.
func TestOneContentLength(t *testing.T) {
	addr := handofftest.StrictBackend(t)
	for _, kind := range []string{"h1", "h2c", "h2"} {
		t.Run(kind, func(t *testing.T) {
			hr := newFront(t, []string{addr}, kind, harnessOptions{})
			for _, body := range []string{"", "payload"} {
				req, _ := http.NewRequestWithContext(ctxTimeout(t), http.MethodPut, hr.front.URL+"/x", strings.NewReader(body))
				req.ContentLength = int64(len(body))
				res, err := frontClient(t, hr, kind).Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				hr.result(t)
				if res.StatusCode != http.StatusOK || string(b) != strconv.Itoa(len(body)) {
					t.Errorf("PUT %q: %d %q, want 200 %q", body, res.StatusCode, b, strconv.Itoa(len(body)))
				}
			}
		})
	}
}

// TestTargetSendsMoreThanItFramed: bytes after a response's framed end
// (a body longer than its Content-Length) are not read as the next
// response; the connection is dropped as net/http's Transport drops it.
func TestTargetSendsMoreThanItFramed(t *testing.T) {
	addr := handofftest.TCPServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOKgarbage after the body")
		}
	})
	for _, kind := range []string{"h1", "h2c"} {
		t.Run(kind, func(t *testing.T) {
			hr := newFront(t, []string{addr}, kind, harnessOptions{})
			for i := range 3 {
				res, err := frontClient(t, hr, kind).Get(hr.front.URL)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				hr.result(t)
				if res.StatusCode != http.StatusOK || string(b) != "OK" {
					t.Fatalf("request %d: %d %q", i, res.StatusCode, b)
				}
			}
		})
	}
}
