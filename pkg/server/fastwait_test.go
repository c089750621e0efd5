package server

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/handofftest"
)

// keepAliveClient sends requests on one connection and reads responses.
type keepAliveClient struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialKeepAlive(t *testing.T, addr string) *keepAliveClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &keepAliveClient{t: t, c: c, br: bufio.NewReader(c)}
}

// get sends GET path and returns status and body.
func (k *keepAliveClient) get(path string) (int, string) {
	k.t.Helper()
	_ = k.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(k.c, "GET "+path+" HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		k.t.Fatalf("GET %s: %v", path, err)
	}
	res, err := http.ReadResponse(k.br, nil)
	if err != nil {
		k.t.Fatalf("GET %s: %v", path, err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		k.t.Fatalf("GET %s: body: %v", path, err)
	}
	return res.StatusCode, string(b)
}

// TestFastPathResponseTimeoutOnBusyConnection: the response header
// timeout, set again only when the one left from earlier requests is too
// close (proxy h1Conn.armResponse), still bounds every response head on
// a reused target connection, and never a body.
func TestFastPathResponseTimeoutOnBusyConnection(t *testing.T) {
	const timeout = 150 * time.Millisecond
	block := make(chan struct{})
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hang":
			select {
			case <-block:
			case <-r.Context().Done():
			}
		case "/trickle":
			w.Header().Set("Content-Length", "9")
			io.WriteString(w, "head ")
			w.(http.Flusher).Flush()
			time.Sleep(3 * timeout)
			io.WriteString(w, "body")
		default:
			io.WriteString(w, "fast")
		}
	}))
	t.Cleanup(b.Close)
	t.Cleanup(func() { close(block) })
	cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, hostOf(b))
	up := cfg.Upstreams["web"]
	up.Timeouts.ResponseHeader = timeout
	cfg.Upstreams["web"] = up
	r := serve(t, cfg, nil)
	k := dialKeepAlive(t, r.addrs["http"])
	steps := []struct {
		path   string
		status int
		body   string
	}{
		{"/a", 200, "fast"}, {"/b", 200, "fast"}, {"/c", 200, "fast"},
		{"/trickle", 200, "head body"}, // the body outlasts the timeout
		{"/d", 200, "fast"},
		{"/hang", 504, ""}, // armed again after the body cleared it
		{"/e", 200, "fast"},
		{"/hang", 504, ""},
	}
	for i, s := range steps {
		status, body := k.get(s.path)
		if status != s.status || (s.body != "" && body != s.body) {
			t.Fatalf("step %d %s: %d %q, want %d %q", i, s.path, status, body, s.status, s.body)
		}
	}
}

// TestFastPathKeepAliveAccounting: a keep-alive response written
// together with the wait for the next request (rawsock WriteWait) is
// logged and counted once, before the client's next request, and a
// connection waiting that way is closed at once by a drain.
func TestFastPathKeepAliveAccounting(t *testing.T) {
	b := parityBackend(t)
	cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, hostOf(b))
	on := true
	cfg.Log.Access = &on
	var buf syncBuffer
	r := serve(t, cfg, nil, func(o *Options) { o.AccessLogger = slog.New(slog.NewJSONHandler(&buf, nil)) })
	k := dialKeepAlive(t, r.addrs["http"])
	for i, path := range []string{"/204", "/hop", "/echo"} {
		if status, _ := k.get(path); status >= 300 {
			t.Fatalf("request %d: %d", i, status)
		}
		// Logged while the connection waits for the next request.
		deadline := time.Now().Add(5 * time.Second)
		for strings.Count(buf.String(), "\n") < i+1 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec struct {
			URI    string `json:"uri"`
			Status int    `json:"status"`
			Bytes  int64  `json:"bytes"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("access log line %q: %v", line, err)
		}
		got = append(got, rec.URI+" "+http.StatusText(rec.Status))
		if rec.URI == "/hop" && rec.Bytes != 3 {
			t.Errorf("/hop logged with %d bytes, want 3", rec.Bytes)
		}
	}
	if want := "/204 No Content,/hop OK,/echo OK"; strings.Join(got, ",") != want {
		t.Fatalf("access log %q, want %q", strings.Join(got, ","), want)
	}
	// Drain: the waiting connection is idle and closed at once, not
	// after idleHold.
	start := time.Now()
	r.cancel()
	_ = k.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := k.c.Read(make([]byte, 1))
	if n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("after the drain began: read %d, %v; want EOF", n, err)
	}
	if waited := time.Since(start); waited >= idleHold {
		t.Fatalf("the waiting connection was closed after %v, not at once (idleHold %v)", waited, idleHold)
	}
}

// TestFastPathLargeChunks: chunks the relay writes straight from its copy
// buffer, with their framing and the trailer section around them
// (proxy copyStream), reach HTTP/1.1 clients whole and HTTP/1.0 clients
// unframed.
func TestFastPathLargeChunks(t *testing.T) {
	var body strings.Builder
	var chunked []byte
	for i := range 3 {
		piece := strings.Repeat(string(rune('a'+i)), 40<<10)
		body.WriteString(piece)
		chunked = fmt.Appendf(chunked, "%x\r\n%s\r\n", len(piece), piece)
	}
	chunked = append(chunked, "0\r\nX-Sum: 7\r\n\r\n"...)
	origin := handofftest.TCPServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n")
			// The body in one write once the proxy waits for it, so that
			// its reads return large pieces.
			time.Sleep(30 * time.Millisecond)
			if _, err := c.Write(chunked); err != nil {
				return
			}
		}
	})
	r := serve(t, baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, origin), nil)
	for _, minor := range []int{1, 0} {
		c, err := net.Dial("tcp", r.addrs["http"])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET /x HTTP/1.%d\r\nHost: a\r\n\r\n", minor)
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("HTTP/1.%d: %v", minor, err)
		}
		got, err := io.ReadAll(res.Body)
		if err != nil || string(got) != body.String() {
			t.Fatalf("HTTP/1.%d: body of %d bytes (%v), want the %d sent", minor, len(got), err, body.Len())
		}
		chunkedOut := len(res.TransferEncoding) > 0
		if chunkedOut != (minor == 1) {
			t.Errorf("HTTP/1.%d: transfer-encoding %v", minor, res.TransferEncoding)
		}
		if minor == 1 && res.Trailer.Get("X-Sum") != "7" {
			t.Errorf("HTTP/1.1: trailers %v, want X-Sum: 7", res.Trailer)
		}
	}
}
