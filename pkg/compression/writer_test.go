package compression

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// TestAbortTruncates: when the handler aborts mid-body (a broken
// upstream), the compressed stream is not ended, so the client sees an
// error instead of a complete-looking, shorter body.
func TestAbortTruncates(t *testing.T) {
	c, err := New(Options{Codings: []string{Gzip}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, strings.Repeat("x", 4096))
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	})))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	gr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(gr); err == nil {
		t.Fatal("an aborted response decoded as complete")
	}
}

func TestNewRejectsUnknownCoding(t *testing.T) {
	if _, err := New(Options{Codings: []string{"deflate"}}); err == nil {
		t.Fatal("deflate accepted")
	}
}

// TestRoundTrip: every coding's output decodes to the body, twice in a
// row (the second through a pooled encoder).
func TestRoundTrip(t *testing.T) {
	body := strings.Repeat("handoff compresses this line again and again\n", 200)
	for _, coding := range Codings() {
		t.Run(coding, func(t *testing.T) {
			c, err := New(Options{Codings: []string{coding}})
			if err != nil {
				t.Fatal(err)
			}
			h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				io.WriteString(w, body)
			}))
			for range 2 {
				req := httptest.NewRequest("GET", "/", nil)
				req.Header.Set("Accept-Encoding", coding)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if got := rec.Header().Get("Content-Encoding"); got != coding {
					t.Fatalf("Content-Encoding %q, want %q", got, coding)
				}
				if rec.Body.Len() >= len(body)/4 {
					t.Errorf("%d bytes compressed to %d", len(body), rec.Body.Len())
				}
				var r io.Reader
				switch coding {
				case Gzip:
					gr, err := gzip.NewReader(rec.Body)
					if err != nil {
						t.Fatal(err)
					}
					r = gr
				case Zstd:
					zr, err := zstd.NewReader(rec.Body, zstd.WithDecoderConcurrency(1))
					if err != nil {
						t.Fatal(err)
					}
					defer zr.Close()
					r = zr
				case Brotli:
					r = brotli.NewReader(rec.Body)
				}
				got, err := io.ReadAll(r)
				if err != nil || string(got) != body {
					t.Fatalf("decoded %d bytes, %v; want the %d-byte body", len(got), err, len(body))
				}
			}
		})
	}
}
