package server

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/handofftest"
	"github.com/handoff-proxy/handoff/pkg/metrics"
)

type syncBuffer = handofftest.Buffer

type bufResponse struct {
	h http.Header
	b *bytes.Buffer
}

func (r *bufResponse) Header() http.Header         { return r.h }
func (r *bufResponse) Write(p []byte) (int, error) { return r.b.Write(p) }
func (r *bufResponse) WriteHeader(int)             {}

func mustReq(t *testing.T, path string) *http.Request {
	t.Helper()
	return httptest.NewRequest(http.MethodGet, path, nil)
}

func newTestMetrics() *metrics.Metrics { return metrics.New(metrics.Options{}) }

// waitLines is grepLines on what b holds, waiting up to two seconds for
// a match: the HTTP/1.1 fast path writes its access log record after the
// response has left.
func waitLines(b *syncBuffer, sub string) string {
	deadline := time.Now().Add(2 * time.Second)
	for {
		if l := grepLines(b.String(), sub); l != "" || time.Now().After(deadline) {
			return l
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
