package origin

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler(Options{}))
	t.Cleanup(srv.Close)
	tests := []struct {
		name      string
		method    string
		path      string
		body      string
		status    int
		size      int
		cacheable bool
	}{
		{name: "empty", method: "GET", path: PathEmpty, status: 200, size: 0},
		{name: "1k", method: "GET", path: Path1K, status: 200, size: 1024},
		{name: "100k", method: "GET", path: Path100K, status: 200, size: 100 << 10},
		{name: "cache 1k", method: "GET", path: PathCache1K, status: 200, size: 1024, cacheable: true},
		{name: "cache 100k", method: "GET", path: PathCache100K, status: 200, size: 100 << 10, cacheable: true},
		{name: "text 100k", method: "GET", path: PathText100K, status: 200, size: 100 << 10},
		{name: "post sink", method: "POST", path: PathPostSink, body: strings.Repeat("x", 65536), status: 200, size: 0},
		{name: "get on sink", method: "GET", path: PathPostSink, status: 405},
		{name: "unknown", method: "GET", path: "/nope", status: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status != 200 {
				return
			}
			if len(b) != tt.size {
				t.Fatalf("%d bytes, want %d", len(b), tt.size)
			}
			cc := resp.Header.Get("Cache-Control")
			if tt.cacheable != strings.Contains(cc, "max-age") {
				t.Fatalf("Cache-Control %q, cacheable %v", cc, tt.cacheable)
			}
			if tt.body != "" && resp.Header.Get("X-Received-Bytes") != "65536" {
				t.Fatalf("X-Received-Bytes %q", resp.Header.Get("X-Received-Bytes"))
			}
		})
	}
}

// TestText100KCompressesLikeText: the compression scenario's body is text
// that gzip shrinks a few times, not to almost nothing.
func TestText100KCompressesLikeText(t *testing.T) {
	body := makeText(100 << 10)
	if !utf8.Valid(body) || http.DetectContentType(body) != "text/plain; charset=utf-8" {
		t.Fatal("not plain text")
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(body)
	zw.Close()
	if ratio := float64(len(body)) / float64(buf.Len()); ratio < 2 || ratio > 10 {
		t.Errorf("gzip ratio %.1f, want a text-like 2 to 10", ratio)
	}
}

func TestOriginSeqCountsMisses(t *testing.T) {
	srv := httptest.NewServer(Handler(Options{}))
	t.Cleanup(srv.Close)
	var seqs []string
	for range 2 {
		resp, err := srv.Client().Get(srv.URL + PathCache1K)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		seqs = append(seqs, resp.Header.Get(HeaderOriginSeq))
	}
	if seqs[0] == "" || seqs[0] == seqs[1] {
		t.Fatalf("origin sequence %v: want two different numbers", seqs)
	}
}

func TestWebSocketEcho(t *testing.T) {
	srv := httptest.NewServer(Handler(Options{}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+PathWebSocket, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	for _, msg := range [][]byte{[]byte("hello"), bytes.Repeat([]byte{1}, 20000)} {
		if err := c.Write(ctx, websocket.MessageBinary, msg); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("echo of %d bytes differs", len(msg))
		}
	}
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
}

func TestSourceStreamsAndCloses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	src := NewSource(ln)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n, err := io.ReadFull(c, make([]byte, 3*SourceChunk))
	if err != nil || n != 3*SourceChunk {
		t.Fatalf("read %d: %v", n, err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("connection not closed by Close: %v", err)
	}
}

func TestNamedPaths(t *testing.T) {
	srv := httptest.NewServer(Handler(Options{Name: "alpha"}))
	defer srv.Close()
	tests := []struct {
		name     string
		path     string
		status   int
		bodyHas  string
		minDelay time.Duration
	}{
		{name: "root", path: "/", status: 200, bodyHas: "alpha\n"},
		{name: "unknown path", path: "/some/where", status: 404},
		{name: "echo", path: "/echo?x=1", status: 200, bodyHas: "GET /echo?x=1 HTTP/1.1"},
		{name: "sleep", path: "/sleep?ms=30", status: 200, bodyHas: "alpha\n", minDelay: 30 * time.Millisecond},
		{name: "bad sleep", path: "/sleep?ms=x", status: 400},
		{name: "1k", path: Path1K, status: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			res, err := http.Get(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.status)
			}
			if got := res.Header.Get(HeaderBackend); got != "alpha" {
				t.Errorf("%s = %q, want alpha", HeaderBackend, got)
			}
			if !strings.Contains(string(b), tt.bodyHas) {
				t.Errorf("body %q does not contain %q", b, tt.bodyHas)
			}
			if d := time.Since(start); d < tt.minDelay {
				t.Errorf("answered after %v, want at least %v", d, tt.minDelay)
			}
		})
	}
}
