package compression

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
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
	if _, err := New(Options{Codings: []string{"br"}}); err == nil {
		t.Fatal("br accepted")
	}
}
