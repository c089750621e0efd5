package reqinfo

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
)

// Recorder wraps a ResponseWriter to learn the status and body size of a
// response without hiding what the writer can do. http.ResponseController
// reaches the rest (deadlines, full duplex) through Unwrap; Flush, Hijack and
// ReadFrom are implemented here because many handlers still type-assert
// them instead of unwrapping, and because a hijack must be seen to be
// counted as 101.
//
// Both the access log and the metrics wrap the writer with their own
// Recorder, so that they can be stacked in either order.
type Recorder struct {
	http.ResponseWriter
	status   int // final status written; zero until then
	bytes    int64
	hijacked bool
}

var (
	_ http.Flusher  = (*Recorder)(nil)
	_ http.Hijacker = (*Recorder)(nil)
	_ io.ReaderFrom = (*Recorder)(nil)
)

// StatusClientGone is the status reported for a request whose client went
// away before the response was complete: 499, the nginx convention. It is
// never sent on the wire.
const StatusClientGone = 499

// NewRecorder wraps w.
func NewRecorder(w http.ResponseWriter) *Recorder {
	return &Recorder{ResponseWriter: w}
}

// Status is the final status written so far; zero when none yet.
func (r *Recorder) Status() int { return r.status }

// Bytes counts the response body bytes written (not what went over a
// hijacked connection).
func (r *Recorder) Bytes() int64 { return r.bytes }

// Unwrap lets http.NewResponseController reach the underlying writer.
func (r *Recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// WriteHeader records the first final status. RFC 9110 §15.2: 1xx
// responses are interim and another status follows, except 101 after which
// the connection speaks another protocol.
func (r *Recorder) WriteHeader(code int) {
	if r.status == 0 && !r.hijacked && (code >= 200 || code == http.StatusSwitchingProtocols) {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *Recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// ReadFrom keeps the underlying writer's io.ReaderFrom (sendfile on a
// *net.TCPConn) when it has one.
func (r *Recorder) ReadFrom(src io.Reader) (int64, error) {
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
func (r *Recorder) FlushError() error {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return http.NewResponseController(r.ResponseWriter).Flush()
}

// Flush implements http.Flusher; a writer that cannot flush is left alone.
func (r *Recorder) Flush() { _ = r.FlushError() }

// Hijack hands the connection over. httputil.ReverseProxy hijacks on a 101
// from the target and writes that response itself on the raw connection,
// so no WriteHeader is seen: a hijack with no status yet is a protocol
// switch (RFC 9110 §15.2.2), counted as 101.
func (r *Recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
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

// FinalStatus is the status to report for the request once the handler is
// done: StatusClientGone when the client went away first, 500 when the
// handler panicked before writing a status, otherwise the status written
// (200 if none, as net/http sends).
//
// The client went away when the handler said so in in.ClientGone, or when
// the request's context was canceled (net/http cancels it when the client
// closes the connection or, in HTTP/2, resets the stream) before any status
// was written.
func (r *Recorder) FinalStatus(req *http.Request, in *Info, panicked bool) int {
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
