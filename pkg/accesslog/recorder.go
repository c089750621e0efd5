package accesslog

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"

	"github.com/handoff-proxy/handoff/pkg/reqinfo"
)

// recorder wraps a ResponseWriter to learn the status and body size of a
// response without hiding what the writer can do. http.ResponseController
// reaches the rest (deadlines, full duplex) through Unwrap; Flush, Hijack and
// ReadFrom are implemented here because many handlers still type-assert
// them instead of unwrapping, and because a hijack must be seen to be
// counted as 101.
//
// Package metrics has its own copy; neither imports the other, and they
// can be stacked in either order.
type recorder struct {
	http.ResponseWriter
	status   int // final status written; zero until then
	bytes    int64
	hijacked bool
}

var (
	_ http.Flusher  = (*recorder)(nil)
	_ http.Hijacker = (*recorder)(nil)
	_ io.ReaderFrom = (*recorder)(nil)
)

func newRecorder(w http.ResponseWriter) *recorder {
	return &recorder{ResponseWriter: w}
}

// Unwrap lets http.NewResponseController reach the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// WriteHeader records the first final status. RFC 9110 §15.2: 1xx
// responses are interim and another status follows, except 101 after which
// the connection speaks another protocol.
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && !r.hijacked && (code >= 200 || code == http.StatusSwitchingProtocols) {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// ReadFrom keeps the underlying writer's io.ReaderFrom (sendfile on a
// *net.TCPConn) when it has one.
func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(writerOnly{r.ResponseWriter}, src)
	}
	r.bytes += n
	return n, err
}

// writerOnly hides everything but Write, so io.Copy does not call back
// into ReadFrom.
type writerOnly struct{ io.Writer }

// FlushError flushes through http.ResponseController (which prefers
// FlushError to Flush); a flush sends the headers, with 200 if none was
// set.
func (r *recorder) FlushError() error {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return http.NewResponseController(r.ResponseWriter).Flush()
}

// Flush implements http.Flusher; a writer that cannot flush is left alone.
func (r *recorder) Flush() { _ = r.FlushError() }

// Hijack hands the connection over. httputil.ReverseProxy hijacks on a 101
// from the target and writes that response itself on the raw connection,
// so no WriteHeader is seen: a hijack with no status yet is a protocol
// switch (RFC 9110 §15.2.2), counted as 101.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(r.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	r.hijacked = true
	if r.status == 0 {
		r.status = http.StatusSwitchingProtocols
	}
	return conn, brw, nil
}

// finalStatus is the status to report for the request once the handler is
// done: StatusClientGone when the client went away first, 500 when the
// handler panicked before writing a status, otherwise the status written
// (200 if none, as net/http sends).
//
// The client went away when the handler said so in in.ClientGone, or when
// the request's context was canceled (net/http cancels it when the client
// closes the connection or, in HTTP/2, resets the stream) before any status
// was written.
func (r *recorder) finalStatus(req *http.Request, in *reqinfo.Info, panicked bool) int {
	switch {
	case in != nil && in.ClientGone:
		return StatusClientGone
	case r.status == 0 && errors.Is(req.Context().Err(), context.Canceled):
		return StatusClientGone
	case r.status == 0 && panicked:
		return http.StatusInternalServerError
	case r.status == 0:
		return http.StatusOK
	}
	return r.status
}
