package reqinfo

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRecorderStatus(t *testing.T) {
	tests := []struct {
		name       string
		write      func(w http.ResponseWriter)
		ctxDone    bool
		clientGone bool
		panicked   bool
		want       int
		wantBytes  int64
	}{
		{name: "nothing written", write: func(w http.ResponseWriter) {}, want: 200},
		{name: "explicit", write: func(w http.ResponseWriter) { w.WriteHeader(418) }, want: 418},
		{name: "first status wins", write: func(w http.ResponseWriter) { w.WriteHeader(404); w.WriteHeader(500) }, want: 404},
		{name: "write implies 200", write: func(w http.ResponseWriter) { io.WriteString(w, "abc"); w.WriteHeader(500) }, want: 200, wantBytes: 3},
		{name: "1xx is interim", write: func(w http.ResponseWriter) { w.WriteHeader(100); w.WriteHeader(103); w.WriteHeader(302) }, want: 302},
		{name: "101 is final", write: func(w http.ResponseWriter) { w.WriteHeader(101) }, want: 101},
		{name: "flush implies 200", write: func(w http.ResponseWriter) { w.(http.Flusher).Flush(); w.WriteHeader(500) }, want: 200},
		{name: "read from", write: func(w http.ResponseWriter) { w.(io.ReaderFrom).ReadFrom(strings.NewReader("hello")) }, want: 200, wantBytes: 5},
		{name: "client gone wins over written status", write: func(w http.ResponseWriter) { w.WriteHeader(502) }, clientGone: true, want: 499},
		{name: "canceled context before any status", write: func(w http.ResponseWriter) {}, ctxDone: true, want: 499},
		{name: "canceled context after a status", write: func(w http.ResponseWriter) { w.WriteHeader(204) }, ctxDone: true, want: 204},
		{name: "panic before any status", write: func(w http.ResponseWriter) {}, panicked: true, want: 500},
		{name: "panic after a status", write: func(w http.ResponseWriter) { w.WriteHeader(200) }, panicked: true, want: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tc.ctxDone {
				cancel()
			}
			req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
			rw := httptest.NewRecorder()
			rec := NewRecorder(rw)
			tc.write(rec)
			got := rec.FinalStatus(req, &Info{ClientGone: tc.clientGone}, tc.panicked)
			if got != tc.want {
				t.Errorf("status = %d, want %d", got, tc.want)
			}
			if rec.bytes != tc.wantBytes || int64(rw.Body.Len()) != tc.wantBytes {
				t.Errorf("bytes = %d (underlying %d), want %d", rec.bytes, rw.Body.Len(), tc.wantBytes)
			}
		})
	}
}

// echo is a WebSocket echo handler (RFC 6455).
func TestHijackUnsupportedIsAnError(t *testing.T) {
	rec := NewRecorder(httptest.NewRecorder())
	if _, _, err := rec.Hijack(); !errors.Is(err, http.ErrNotSupported) {
		t.Errorf("Hijack on a writer that cannot = %v, want http.ErrNotSupported", err)
	}
	if rec.hijacked || rec.status != 0 {
		t.Errorf("failed hijack recorded hijacked=%v status=%d", rec.hijacked, rec.status)
	}
}
