package metrics

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/handoff-proxy/handoff/pkg/reqinfo"

	"github.com/handoff-proxy/handoff/pkg/handofftest"
)

func echo(t *testing.T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
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
	}
}

func TestWebSocketThroughMiddleware(t *testing.T) {
	tests := []struct {
		name  string
		inner func(t *testing.T) http.Handler
	}{
		{
			name: "reverse proxy hijacks on the target's 101",
			inner: func(t *testing.T) http.Handler {
				backend := newServer(t, echo(t))
				return proxyLike(t, backend.URL, "ws", "chat")
			},
		},
		{
			name: "handler accepts the upgrade itself",
			inner: func(t *testing.T) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					in := reqinfo.From(r.Context())
					in.Route, in.Upstream = "ws", "chat"
					echo(t)(w, r)
				})
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := New(Options{Logger: handofftest.Logger(t)})
			h, done := signalDone(m.Middleware(tc.inner(t)))
			front := newServer(t, h)

			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(front.URL, "http"), &websocket.DialOptions{HTTPClient: front.Client()})
			if err != nil {
				t.Fatalf("dial through the middleware: %v", err)
			}
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Errorf("handshake status %d, want 101", resp.StatusCode)
			}
			if err := c.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
				t.Fatal(err)
			}
			_, got, err := c.Read(ctx)
			if err != nil || string(got) != "ping" {
				t.Fatalf("echo = %q, %v; want ping", got, err)
			}
			if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
				t.Logf("close: %v", err)
			}
			wait(t, done)

			scrapeAndCompare(t, m, `
# HELP handoff_requests_total HTTP requests served, by route, upstream and status code (499: client went away).
# TYPE handoff_requests_total counter
handoff_requests_total{code="101",route="ws",upstream="chat"} 1
`, "handoff_requests_total")
		})
	}
}

func TestFlushThroughMiddleware(t *testing.T) {
	// stream writes one event, flushes, then waits for the test to have
	// read it before finishing: without a working flush the test times
	// out.
	stream := func(t *testing.T, next <-chan struct{}) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: one\n\n")
			if err := http.NewResponseController(w).Flush(); err != nil {
				t.Errorf("flush: %v", err)
			}
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
			io.WriteString(w, "data: two\n\n")
		}
	}
	tests := []struct {
		name  string
		inner func(t *testing.T, next <-chan struct{}) http.Handler
	}{
		{
			name: "reverse proxy flushes a streamed response",
			inner: func(t *testing.T, next <-chan struct{}) http.Handler {
				backend := newServer(t, stream(t, next))
				return proxyLike(t, backend.URL, "sse", "events")
			},
		},
		{
			name: "handler flushes through the wrapper",
			inner: func(t *testing.T, next <-chan struct{}) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					in := reqinfo.From(r.Context())
					in.Route, in.Upstream = "sse", "events"
					stream(t, next)(w, r)
				})
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := New(Options{Logger: handofftest.Logger(t), ResponseSizes: true})
			next := make(chan struct{})
			h, done := signalDone(m.Middleware(tc.inner(t, next)))
			front := newServer(t, h)

			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, front.URL, nil)
			resp, err := front.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			line, err := br.ReadString('\n')
			if err != nil || line != "data: one\n" {
				t.Fatalf("first event = %q, %v (not flushed?)", line, err)
			}
			close(next)
			rest, err := io.ReadAll(br)
			if err != nil || string(rest) != "\ndata: two\n\n" {
				t.Errorf("rest = %q, %v", rest, err)
			}
			wait(t, done)

			fams := scrape(t, m)
			if got := find(fams, "handoff_requests_total", map[string]string{"route": "sse", "upstream": "events", "code": "200"}).GetCounter().GetValue(); got != 1 {
				t.Errorf("requests_total{code=200} = %v, want 1", got)
			}
			if got := find(fams, "handoff_response_size_bytes", map[string]string{"route": "sse", "upstream": "events"}).GetHistogram().GetSampleSum(); got != 22 {
				t.Errorf("response bytes = %v, want 22", got)
			}
		})
	}
}

func TestResponseControllerAndReaderFromThroughMiddleware(t *testing.T) {
	m := New(Options{Logger: handofftest.Logger(t), ResponseSizes: true})
	body := strings.Repeat("x", 100_000)
	h, done := signalDone(m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if err := rc.SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
			t.Errorf("SetWriteDeadline through the wrapper: %v", err)
		}
		if err := rc.EnableFullDuplex(); err != nil {
			t.Errorf("EnableFullDuplex through the wrapper: %v", err)
		}
		if _, ok := w.(io.ReaderFrom); !ok {
			t.Error("wrapper hides io.ReaderFrom")
		}
		io.Copy(w, strings.NewReader(body)) // uses ReadFrom
	})))
	front := newServer(t, h)
	resp, err := front.Client().Get(front.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(got) != body {
		t.Errorf("body: %d bytes, %v; want %d bytes", len(got), err, len(body))
	}
	wait(t, done)
	size := find(scrape(t, m), "handoff_response_size_bytes", map[string]string{"route": "", "upstream": ""}).GetHistogram()
	if size.GetSampleSum() != float64(len(body)) {
		t.Errorf("response bytes = %v, want %d", size.GetSampleSum(), len(body))
	}
}
