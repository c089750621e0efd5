package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/handoff-proxy/handoff/pkg/clientip"
	"github.com/handoff-proxy/handoff/pkg/reqinfo"
	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// BenchmarkProxy measures one GET through the Handler to a real backend
// over a kept-alive connection.
func BenchmarkProxy(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello, world\n")
	}))
	defer backend.Close()
	pool, err := upstream.NewRegistry().NewPool("api", upstream.PoolSpec{Targets: []upstream.TargetSpec{{Address: backend.Listener.Addr().String()}}})
	if err != nil {
		b.Fatal(err)
	}
	trs := NewTransports(nil)
	defer trs.Close()
	h, err := New(Options{Pool: pool, Selector: firstSelector{pool.Targets()}, Transports: trs})
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "http://app.example/path?q=1", nil)
	req.Header.Set("User-Agent", "bench")
	req.Header.Set("Accept", "*/*")
	b.ReportAllocs()
	for b.Loop() {
		ctx, _ := reqinfo.With(req.Context())
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req.WithContext(ctx))
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
}

// BenchmarkRewriteHeaders measures the forwarding-header rewrite for a
// trusted peer that sends a full chain.
func BenchmarkRewriteHeaders(b *testing.B) {
	f := forwarding{trusted: clientip.NewTrusted(mustPrefixes(b, "10.0.0.0/8")), via: "handoff"}
	in := httptest.NewRequest(http.MethodGet, "http://app.example/", nil)
	in.RemoteAddr = "10.0.0.2:4567"
	in.Header.Set("X-Forwarded-For", "203.0.113.7, 198.51.100.2")
	in.Header.Set("X-Forwarded-Proto", "https")
	in.Header.Set("Forwarded", `for=203.0.113.7;proto=https, for="[2001:db8::1]:4711"`)
	in.Header.Set("Via", "1.1 edge")
	out := make(http.Header, 8)
	b.ReportAllocs()
	for b.Loop() {
		clear(out)
		f.apply(out, in, "0123456789abcdef0123456789abcdef")
	}
}
