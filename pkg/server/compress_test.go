package server

import (
	"bufio"
	"bytes"
	"cmp"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/handoff-proxy/handoff/pkg/config"
)

var bigText = strings.Repeat("handoff compresses text. ", 200) // 5000 bytes

// compressBackend serves the responses of the compression matrix; /sse
// sends one event, then waits for release before the second.
func compressBackend(t *testing.T, release <-chan struct{}) *httptest.Server {
	t.Helper()
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Etag", `"v1"`)
		body := bigText
		switch r.URL.Path {
		case "/small":
			body = "tiny"
		case "/chunked": // no Content-Length: decided after MinSize bytes
			for i := 0; i < 10; i++ {
				io.WriteString(w, bigText[:500])
				http.NewResponseController(w).Flush()
			}
			return
		case "/encoded":
			var buf bytes.Buffer
			gw := gzip.NewWriter(&buf)
			io.WriteString(gw, bigText)
			gw.Close()
			h.Set("Content-Encoding", "gzip")
			body = buf.String()
		case "/png":
			h.Set("Content-Type", "image/png")
		case "/range":
			h.Set("Content-Range", "bytes 0-99/5000")
			w.WriteHeader(http.StatusPartialContent)
			io.WriteString(w, bigText[:100])
			return
		case "/notransform":
			h.Set("Cache-Control", "public, no-transform")
		case "/sse":
			h.Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: one\n\n")
			http.NewResponseController(w).Flush()
			<-release
			io.WriteString(w, "data: two\n\n")
			return
		}
		h.Set("Content-Length", strconv.Itoa(len(body)))
		io.WriteString(w, body)
	}))
	t.Cleanup(b.Close)
	return b
}

func decode(t *testing.T, coding string, r io.Reader) io.Reader {
	t.Helper()
	switch coding {
	case "gzip":
		gr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		return gr
	case "br":
		return brotli.NewReader(r)
	case "zstd":
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(zr.Close)
		return zr
	}
	return r
}

func compressServer(t *testing.T, b *httptest.Server, rc config.RouteCompress) string {
	cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, hostOf(b))
	cfg.Routes[0].Compress = &rc
	if err := cfg.Validate([]string{"http"}); err != nil {
		t.Fatal(err)
	}
	return "http://" + serve(t, cfg, nil).addrs["http"]
}

func TestCompressMatrix(t *testing.T) {
	b := compressBackend(t, nil)
	base := compressServer(t, b, config.RouteCompress{})
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	tests := []struct {
		name, path, accept, method string
		want                       string // Content-Encoding the client gets
		vary                       bool
		body                       string // after decoding; empty means bigText
	}{
		{name: "gzip", path: "/", accept: "gzip", want: "gzip", vary: true},
		{name: "zstd preferred", path: "/", accept: "gzip, deflate, br, zstd", want: "zstd", vary: true},
		{name: "q-values", path: "/", accept: "zstd;q=0.2, gzip;q=0.9", want: "gzip", vary: true},
		{name: "q=0", path: "/", accept: "zstd;q=0, gzip", want: "gzip", vary: true},
		{name: "star", path: "/", accept: "*", want: "zstd", vary: true},
		{name: "br", path: "/", accept: "br", want: "br", vary: true},
		{name: "br preferred to gzip", path: "/", accept: "gzip, br", want: "br", vary: true},
		{name: "br q-value below gzip", path: "/", accept: "br;q=0.5, gzip", want: "gzip", vary: true},
		{name: "br when zstd refused", path: "/", accept: "zstd;q=0, br, gzip", want: "br", vary: true},
		{name: "br refused", path: "/", accept: "br;q=0, gzip;q=0.1", want: "gzip", vary: true},
		{name: "br unknown length", path: "/chunked", accept: "br", want: "br", vary: true, body: strings.Repeat(bigText[:500], 10)},
		{name: "star q=0", path: "/", accept: "*;q=0", want: "", vary: true},
		{name: "identity", path: "/", accept: "identity", want: "", vary: true},
		{name: "no accept-encoding", path: "/", accept: "", want: "", vary: true},
		{name: "below min size", path: "/small", accept: "gzip", want: "", vary: true, body: "tiny"},
		{name: "unknown length", path: "/chunked", accept: "gzip", want: "gzip", vary: true, body: strings.Repeat(bigText[:500], 10)},
		{name: "already encoded", path: "/encoded", accept: "gzip, zstd", want: "gzip"},
		{name: "image", path: "/png", accept: "gzip", want: ""},
		{name: "range", path: "/range", accept: "gzip", want: "", body: bigText[:100]},
		{name: "no-transform", path: "/notransform", accept: "gzip", want: ""},
		{name: "head", path: "/", accept: "gzip", method: "HEAD", want: "", vary: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(cmp.Or(tt.method, "GET"), base+tt.path, nil)
			if tt.accept != "" {
				req.Header.Set("Accept-Encoding", tt.accept)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if got := resp.Header.Get("Content-Encoding"); got != tt.want {
				t.Fatalf("Content-Encoding %q, want %q", got, tt.want)
			}
			if got := strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding"); got != tt.vary {
				t.Errorf("Vary %q, want Accept-Encoding: %v", resp.Header.Get("Vary"), tt.vary)
			}
			if tt.method == "HEAD" {
				return
			}
			coding := tt.want
			if tt.path == "/encoded" {
				coding = "gzip" // the origin's own, passed through once
			}
			body, err := io.ReadAll(decode(t, coding, resp.Body))
			if err != nil {
				t.Fatal(err)
			}
			want := cmp.Or(tt.body, bigText)
			if string(body) != want {
				t.Fatalf("body: got %d bytes, want %d", len(body), len(want))
			}
			if tt.want != "" && tt.path != "/encoded" {
				if resp.Header.Get("Etag") != `W/"v1"` || resp.ContentLength >= int64(len(want)) {
					t.Errorf("Etag %q, length %d", resp.Header.Get("Etag"), resp.ContentLength)
				}
			}
		})
	}
}

// TestCompressSSEFlushes: an event stream is compressed and each event
// reaches the client while the stream stays open.
func TestCompressSSEFlushes(t *testing.T) {
	for _, coding := range []string{"gzip", "zstd", "br"} {
		t.Run(coding, func(t *testing.T) {
			release := make(chan struct{})
			b := compressBackend(t, release)
			base := compressServer(t, b, config.RouteCompress{})
			client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
			req, _ := http.NewRequest("GET", base+"/sse", nil)
			req.Header.Set("Accept-Encoding", coding)
			resp, err := client.Do(req)
			if err != nil {
				close(release)
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if got := resp.Header.Get("Content-Encoding"); got != coding {
				close(release)
				t.Fatalf("Content-Encoding %q, want %q", got, coding)
			}
			rd := bufio.NewReader(decode(t, coding, resp.Body))
			line, err := rd.ReadString('\n')
			if err != nil || line != "data: one\n" {
				close(release)
				t.Fatalf("first event %q, %v", line, err)
			}
			close(release) // only now may the second event be sent
			rest, err := io.ReadAll(rd)
			if err != nil || string(rest) != "\ndata: two\n\n" {
				t.Fatalf("rest %q, %v", rest, err)
			}
		})
	}
}
