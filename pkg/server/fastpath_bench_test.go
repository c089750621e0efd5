package server

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/handofftest"
)

// rawBackend answers every request head it reads with a fixed 1 KiB
// response, without allocating per request, so that allocation counts
// and profiles show the proxy alone.
func rawBackend(tb testing.TB) string {
	tb.Helper()
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1024\r\n\r\n" + strings.Repeat("x", 1024))
	return handofftest.TCPServer(tb, func(c net.Conn) {
		buf := make([]byte, 16<<10)
		n := 0
		for {
			m, err := c.Read(buf[n:])
			if err != nil {
				return
			}
			n += m
			for {
				i := bytes.Index(buf[:n], []byte("\r\n\r\n"))
				if i < 0 {
					break
				}
				if _, err := c.Write(resp); err != nil {
					return
				}
				n = copy(buf, buf[i+4:n])
			}
		}
	})
}

// rawClient sends one keep-alive GET per call and reads the whole
// response into a fixed buffer.
type rawClient struct {
	c    net.Conn
	req  []byte
	buf  []byte
	size int // length of one response, learnt from the first one
}

func newRawClient(tb testing.TB, addr string) *rawClient {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	rc := &rawClient{c: c, req: []byte("GET /1k HTTP/1.1\r\nHost: bench\r\nUser-Agent: raw\r\n\r\n"), buf: make([]byte, 64<<10)}
	if _, err := c.Write(rc.req); err != nil {
		tb.Fatal(err)
	}
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		tb.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || len(body) != 1024 || br.Buffered() != 0 {
		tb.Fatalf("first response %d, %d bytes", res.StatusCode, len(body))
	}
	var head bytes.Buffer
	_ = res.Header.Write(&head)
	// The response has a fixed length: status line, fields, CRLF, body.
	rc.size = len("HTTP/1.1 200 OK\r\n") + head.Len() + 2 + 1024
	return rc
}

func (rc *rawClient) do(tb testing.TB) {
	if _, err := rc.c.Write(rc.req); err != nil {
		tb.Fatal(err)
	}
	if _, err := io.ReadFull(rc.c, rc.buf[:rc.size]); err != nil {
		tb.Fatal(err)
	}
	if !bytes.HasPrefix(rc.buf, []byte("HTTP/1.1 200 ")) {
		tb.Fatalf("got %q", rc.buf[:40])
	}
}

func fastBenchServer(tb testing.TB) string {
	tb.Helper()
	cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, rawBackend(tb))
	return serve(tb, cfg, nil).addrs["http"]
}

// TestFastPathKeepAliveGetDoesNotAllocate: the HTTP/1.1 keep-alive GET
// of a plain proxy route allocates nothing per request in steady state
// (access log off), client and backend included in the count.
func TestFastPathKeepAliveGetDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	rc := newRawClient(t, fastBenchServer(t))
	for range 100 {
		rc.do(t)
	}
	if a := testing.AllocsPerRun(2000, func() { rc.do(t) }); a > 0.5 {
		t.Errorf("%.2f allocations per request, want 0", a)
	}
}

func BenchmarkFastPathKeepAliveGet(b *testing.B) {
	rc := newRawClient(b, fastBenchServer(b))
	b.ReportAllocs()
	for b.Loop() {
		rc.do(b)
	}
}
