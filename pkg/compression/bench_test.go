package compression

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkCompress100KiB is the CPU cost per response of compressing a
// 100 KiB text body (the comparison with nginx's gzip on).
func BenchmarkCompress100KiB(b *testing.B) {
	var sb strings.Builder
	for i := 0; sb.Len() < 100<<10; i++ {
		sb.WriteString("GET /api/v1/items?id=")
		sb.WriteString(strings.Repeat(string(rune('a'+i%26)), i%17))
		sb.WriteString(" handoff access log line with some repetition\n")
	}
	body := []byte(sb.String()[:100<<10])
	for _, coding := range Codings() {
		b.Run(coding, func(b *testing.B) {
			c, _ := New(Options{Codings: []string{coding}})
			h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				_, _ = w.Write(body)
			}))
			req := httptest.NewRequest("GET", "/", nil)
			req.Header.Set("Accept-Encoding", coding)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				w := &discardWriter{h: http.Header{}}
				h.ServeHTTP(w, req)
			}
		})
	}
}

type discardWriter struct {
	h http.Header
	n int
}

func (d *discardWriter) Header() http.Header { return d.h }
func (d *discardWriter) WriteHeader(int)     {}
func (d *discardWriter) Write(p []byte) (int, error) {
	d.n += len(p)
	return io.Discard.Write(p)
}
