package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/handofftest"
)

// paritySeen is what the parity backend reports about a request.
type paritySeen struct {
	Method, URI, Proto, Host string
	Header                   map[string][]string
	Body                     int
}

// parityBackend answers /echo with what it saw and other paths with
// responses of every framing.
func parityBackend(t *testing.T) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/chunked":
			w.Header().Set("Trailer", "X-Sum")
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "part one,")
			w.(http.Flusher).Flush()
			io.WriteString(w, "part two")
			w.Header().Set("X-Sum", "42")
			return
		case "/close":
			c, brw, _ := w.(http.Hijacker).Hijack()
			brw.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nuntil the end")
			brw.Flush()
			c.Close()
			return
		case "/204":
			w.WriteHeader(http.StatusNoContent)
			return
		case "/304":
			w.Header().Set("ETag", `"x"`)
			w.WriteHeader(http.StatusNotModified)
			return
		case "/103":
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			io.WriteString(w, "after hints")
			return
		case "/hop":
			w.Header().Set("Connection", "X-Private")
			w.Header().Set("X-Private", "secret")
			w.Header().Set("Keep-Alive", "timeout=5")
			w.Header().Set("Via", "1.1 origin")
			io.WriteString(w, "hop")
			return
		case "/bigchunked":
			// Pieces larger than the relay's small-body threshold, with
			// a trailer: written straight from the copy buffer.
			w.Header().Set("Trailer", "X-Sum")
			for i := range 3 {
				io.WriteString(w, strings.Repeat(string(rune('a'+i)), 40<<10))
				w.(http.Flusher).Flush()
			}
			io.WriteString(w, "tail")
			w.Header().Set("X-Sum", "7")
			return
		case "/big":
			w.Header().Set("Content-Length", fmt.Sprint(1<<20))
			b := strings.Repeat("0123456789abcdef", 1<<16)
			io.WriteString(w, b)
			return
		}
		n, _ := io.Copy(io.Discard, r.Body)
		h := r.Header.Clone()
		json.NewEncoder(w).Encode(paritySeen{Method: r.Method, URI: r.RequestURI, Proto: r.Proto, Host: r.Host, Header: h, Body: int(n)})
	}))
	t.Cleanup(s.Close)
	return s
}

// rawExchange sends req on a new connection and returns what came back
// until the server closed it or timeout passed.
func rawExchange(t *testing.T, addr, req string, timeout time.Duration) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	b, _ := io.ReadAll(c)
	return string(b)
}

// normalize parses a response (to a HEAD when head) and prints it
// without what differs between any two answers (request id, date) and
// with the body decoded, so that two engines' answers compare whatever
// their chunk boundaries.
func normalize(resp string, head bool) string {
	method := http.MethodGet
	if head {
		method = http.MethodHead
	}
	res, err := http.ReadResponse(bufio.NewReader(strings.NewReader(resp)), &http.Request{Method: method})
	if err != nil {
		return "unparsable: " + err.Error() + "\n" + resp
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return "body: " + err.Error()
	}
	var keys []string
	for k, v := range res.Header {
		if k == "Date" || k == "X-Request-Id" {
			continue
		}
		keys = append(keys, k+": "+strings.Join(v, ", "))
	}
	sort.Strings(keys)
	b := string(body)
	for _, random := range []string{`"X-Request-Id":[`, `"Traceparent":[`} {
		if i := strings.Index(b, random); i >= 0 {
			j := strings.Index(b[i:], "]")
			b = b[:i] + b[i+j+1:]
		}
	}
	return fmt.Sprintf("%s %d te=%v close=%v\n%s\n\n%s\ntrailers %v", res.Proto, res.StatusCode, res.TransferEncoding, res.Close,
		strings.Join(keys, "\n"), b, res.Trailer)
}

// twoEngines is a config with a parity backend behind two listeners:
// "fast" on the fast path, "std" on net/http only.
func twoEngines(t *testing.T) *config.Config {
	off := false
	return baseConfig([]config.Listener{
		{Name: "fast", Protocol: config.ProtocolHTTP},
		{Name: "std", Protocol: config.ProtocolHTTP, FastPath: &off},
	}, hostOf(parityBackend(t)))
}

// TestFastPathParity sends the same raw requests through a listener on
// the fast path and one on net/http and compares what the client got
// (and, for /echo, what the backend saw), field by field.
func TestFastPathParity(t *testing.T) {
	r := serve(t, twoEngines(t), nil)
	tests := []struct{ name, req string }{
		{"get", "GET /echo?q=1 HTTP/1.1\r\nHost: example.test\r\nUser-Agent: t\r\nConnection: close\r\n\r\n"},
		{"forged forwarding fields", "GET /echo HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\nForwarded: for=6.6.6.6\r\nVia: 1.0 client\r\nConnection: close\r\n\r\n"},
		{"connection-named field removed", "GET /echo HTTP/1.1\r\nHost: a\r\nConnection: x-secret, close\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nProxy-Authorization: Basic eA==\r\n\r\n"},
		{"request id propagated", "GET /echo HTTP/1.1\r\nHost: a\r\nX-Request-Id: abc-123\r\nConnection: close\r\n\r\n"},
		{"post with body", "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello world"},
		{"http/1.0", "GET /echo HTTP/1.0\r\nHost: a\r\n\r\n"},
		{"head", "HEAD /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"},
		{"chunked response with trailers", "GET /chunked HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"},
		{"chunked response to http/1.0", "GET /chunked HTTP/1.0\r\nHost: a\r\n\r\n"},
		{"large chunked response with trailers", "GET /bigchunked HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"},
		{"large chunked response to http/1.0", "GET /bigchunked HTTP/1.0\r\nHost: a\r\n\r\n"},
		{"close-delimited response", "GET /close HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"},
		{"204", "GET /204 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"},
		{"304", "GET /304 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"},
		{"hop-by-hop response fields", "GET /hop HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"},
		{"large body", "GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"},
		{"early hints", "GET /103 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"},
		{"large upload", "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1048576\r\nConnection: close\r\n\r\n" + strings.Repeat("u", 1<<20)},
		{"encoded path", "GET /echo/a%20b/%2e%2e/c?x=%41 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			head := strings.HasPrefix(tc.req, "HEAD")
			fast := normalize(rawExchange(t, r.addrs["fast"], tc.req, 5*time.Second), head)
			std := normalize(rawExchange(t, r.addrs["std"], tc.req, 5*time.Second), head)
			if fast != std {
				t.Errorf("fast path:\n%s\nnet/http:\n%s", fast, std)
			}
		})
	}
}

// TestFastPathFraming pins the RFC 9112 answers of the fast path: what is
// rejected, with which status, and that the connection is closed after.
func TestFastPathFraming(t *testing.T) {
	b := parityBackend(t)
	cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, hostOf(b))
	cfg.Limits.MaxHeaderBytes = 2048
	r := serve(t, cfg, nil)
	pad := func(n int) string {
		s := "GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Pad: "
		return s + strings.Repeat("p", n-len(s)-4) + "\r\n\r\n"
	}
	tests := []struct {
		name, req string
		status    string // prefix of the first response
		responses int    // complete responses expected before the close
	}{
		{name: "pipelined requests answered in order", req: "GET /echo HTTP/1.1\r\nHost: a\r\n\r\nGET /204 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", status: "HTTP/1.1 200", responses: 2},
		{name: "length and chunked rejected and closed", req: "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /echo HTTP/1.1\r\nHost: a\r\n\r\n", status: "HTTP/1.1 400", responses: 1},
		{name: "chunked in http/1.0 rejected", req: "POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: "HTTP/1.1 400", responses: 1},
		{name: "head at the limit accepted", req: pad(2048), status: "HTTP/1.1 200", responses: 1},
		{name: "head one byte over the limit", req: pad(2049), status: "HTTP/1.1 431", responses: 1},
		{name: "too many fields", req: "GET /echo HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("a: b\r\n", 100) + "\r\n", status: "HTTP/1.1 431", responses: 1},
		{name: "obs-fold", req: "GET /echo HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", status: "HTTP/1.1 400", responses: 1},
		{name: "short garbage answered at once", req: "HELLO\n", status: "HTTP/1.1 400", responses: 1},
		{name: "chunked request body handed to net/http", req: "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n", status: "HTTP/1.1 200", responses: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			got := rawExchange(t, r.addrs["http"], tc.req, 3*time.Second)
			if time.Since(start) > 2*time.Second {
				t.Errorf("connection not closed after the answer (%v)", time.Since(start))
			}
			if !strings.HasPrefix(got, tc.status) {
				t.Fatalf("got %q, want %s", statusLineOf(got), tc.status)
			}
			br := bufio.NewReader(strings.NewReader(got))
			n := 0
			for {
				res, err := http.ReadResponse(br, nil)
				if err != nil {
					break
				}
				io.Copy(io.Discard, res.Body)
				n++
			}
			if n != tc.responses {
				t.Errorf("%d responses, want %d:\n%s", n, tc.responses, got)
			}
		})
	}
}

func statusLineOf(s string) string { l, _, _ := strings.Cut(s, "\r\n"); return l }

// TestFastPathRetriesAndStaleConnections: a refused target is skipped for
// another, and a keep-alive connection the target closed behind the
// proxy's back is replaced without the client noticing.
func TestFastPathRetriesAndStaleConnections(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	// closer answers one request per connection and closes it without
	// saying so: the pooled connection is stale for the next request.
	closer := handofftest.TCPServer(t, func(c net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		time.Sleep(20 * time.Millisecond)
	})
	cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, deadAddr, closer)
	r := serve(t, cfg, nil)
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	for i := range 6 {
		res, err := client.Get("http://" + r.addrs["http"] + "/")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(body) != "ok" {
			t.Fatalf("request %d: %d %q", i, res.StatusCode, body)
		}
		time.Sleep(50 * time.Millisecond) // let the target close its side
	}
}

// TestFastPathSlowBodyTimesOut: a client that stops sending its body is
// answered 408 after timeouts.body_read and the connection closed.
func TestFastPathSlowBodyTimesOut(t *testing.T) {
	b := parityBackend(t)
	cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, hostOf(b))
	cfg.Timeouts.BodyRead = 200 * time.Millisecond
	r := serve(t, cfg, nil)
	start := time.Now()
	got := rawExchange(t, r.addrs["http"], "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly a part", 5*time.Second)
	if !strings.HasPrefix(got, "HTTP/1.1 408") || time.Since(start) > 3*time.Second {
		t.Fatalf("after %v got %q", time.Since(start), statusLineOf(got))
	}
}

// TestFastPathParkedConnection: a keep-alive connection idle past
// idleHold gives its buffers back and its goroutine away, and still
// serves the next request (also one that arrives a byte at a time).
func TestFastPathParkedConnection(t *testing.T) {
	b := parityBackend(t)
	r := serve(t, baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, hostOf(b)), nil)
	c, err := net.Dial("tcp", r.addrs["http"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i, slow := range []bool{false, false, true} {
		req := "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n"
		if slow {
			for j := range len(req) {
				io.WriteString(c, req[j:j+1])
				time.Sleep(2 * time.Millisecond)
			}
		} else {
			io.WriteString(c, req)
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		io.Copy(io.Discard, res.Body)
		if res.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, res.StatusCode)
		}
		time.Sleep(idleHold + 200*time.Millisecond)
	}
}

// TestFastPathAccessLog: a request served on the fast path has the same
// access log record as one served by net/http.
func TestFastPathAccessLog(t *testing.T) {
	cfg := twoEngines(t)
	on := true
	cfg.Log.Access = &on
	var buf syncBuffer
	r := serve(t, cfg, nil, func(o *Options) { o.AccessLogger = slog.New(slog.NewJSONHandler(&buf, nil)) })
	req := "GET /echo?x=1 HTTP/1.1\r\nHost: a.test\r\nUser-Agent: ua\r\nReferer: http://r/\r\nX-Request-Id: rid-1\r\nConnection: close\r\n\r\n"
	rawExchange(t, r.addrs["fast"], req, 5*time.Second)
	rawExchange(t, r.addrs["std"], req, 5*time.Second)
	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%v: %q", err, line)
		}
		if m["msg"] != "request" {
			continue
		}
		for _, k := range []string{"time", "duration", "trace_id"} {
			if k == "trace_id" && len(m[k].(string)) != 32 {
				t.Errorf("trace_id %q", m[k])
			}
			delete(m, k)
		}
		recs = append(recs, m)
	}
	if len(recs) != 2 {
		t.Fatalf("%d access records:\n%s", len(recs), buf.String())
	}
	if fmt.Sprint(recs[0]) != fmt.Sprint(recs[1]) {
		t.Errorf("fast path:\n%v\nnet/http:\n%v", recs[0], recs[1])
	}
}

// TestFastPathParkedIdleTimeout: a parked connection is closed when the
// idle timeout passes, and a shutdown ends parked connections at once
// rather than after the idle timeout.
func TestFastPathParkedIdleTimeout(t *testing.T) {
	b := parityBackend(t)
	cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, hostOf(b))
	cfg.Timeouts.Idle = idleHold + 500*time.Millisecond
	r := serve(t, cfg, nil)
	get := func() net.Conn {
		c, err := net.Dial("tcp", r.addrs["http"])
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "GET /204 HTTP/1.1\r\nHost: a\r\n\r\n")
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || res.StatusCode != 204 {
			t.Fatalf("%v %v", res, err)
		}
		return c
	}
	c := get()
	defer c.Close()
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("read %d %v, want the server's close", n, err)
	}
	if d := time.Since(start); d < idleHold || d > 3*time.Second {
		t.Errorf("closed after %v, want about %v", d, cfg.Timeouts.Idle)
	}

	cfg2 := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, hostOf(b))
	cfg2.Timeouts.Idle = time.Minute
	r = serve(t, cfg2, nil)
	c2 := get()
	defer c2.Close()
	time.Sleep(idleHold + 300*time.Millisecond) // parked now
	start = time.Now()
	r.cancel()
	if err := <-r.done; err != nil {
		t.Fatal(err)
	}
	r.done <- nil // for the cleanup
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %v with a parked connection", d)
	}
}

// TestFastPathOneContentLength: a request body's framing reaches the
// target once on both engines (a second Content-Length is a 400 to nginx
// and Node).
func TestFastPathOneContentLength(t *testing.T) {
	off := false
	cfg := baseConfig([]config.Listener{
		{Name: "fast", Protocol: config.ProtocolHTTP},
		{Name: "std", Protocol: config.ProtocolHTTP, FastPath: &off},
	}, handofftest.StrictBackend(t))
	r := serve(t, cfg, nil)
	for _, l := range []string{"fast", "std"} {
		for _, req := range []string{
			"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
			"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
		} {
			resp := rawExchange(t, r.addrs[l], req, 5*time.Second)
			if got := statusLineOf(resp); got != "HTTP/1.1 200 OK" {
				t.Errorf("%s: %q: %s", l, req, got)
			}
		}
	}
}
