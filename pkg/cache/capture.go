package cache

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
)

// mode is what a captureWriter does with the response once it knows the
// status and header.
type mode int

const (
	// passThrough sends the response on to the client and keeps a copy
	// of the body up to the limit, to store.
	passThrough mode = iota
	// absorb keeps the response from the client (a 304 or an error the
	// cache answers itself); the body is kept up to the limit.
	absorb
)

// captureWriter sits between the cache and the next handler (the
// forwarder). At WriteHeader it asks decide what to do, and keeps the
// body while it fits in limit bytes.
type captureWriter struct {
	w      http.ResponseWriter // nil for background refreshes
	header http.Header
	decide func(status int, h http.Header) mode
	limit  int64

	status  int
	mode    mode
	body    []byte
	overrun bool // the body exceeded limit: not stored
	wrote   bool
}

func newCapture(w http.ResponseWriter, limit int64, decide func(int, http.Header) mode) *captureWriter {
	return &captureWriter{w: w, header: http.Header{}, decide: decide, limit: limit}
}

func (c *captureWriter) Header() http.Header { return c.header }

func (c *captureWriter) WriteHeader(status int) {
	if c.wrote {
		return
	}
	if status >= 100 && status < 200 {
		// 1xx (e.g. 103 Early Hints) pass through and do not end the header.
		if c.w != nil && status != http.StatusSwitchingProtocols {
			copyHeader(c.w.Header(), c.header)
			c.w.WriteHeader(status)
		}
		return
	}
	c.wrote, c.status = true, status
	if cl, err := strconv.ParseInt(c.header.Get("Content-Length"), 10, 64); err == nil && cl > c.limit {
		c.overrun = true // never buffer what is known to be too large
	}
	c.mode = c.decide(status, c.header)
	if c.mode == passThrough && c.w != nil {
		copyHeader(c.w.Header(), c.header)
		c.w.WriteHeader(status)
	}
}

func (c *captureWriter) Write(p []byte) (int, error) {
	if !c.wrote {
		c.WriteHeader(http.StatusOK)
	}
	if !c.overrun {
		if int64(len(c.body)+len(p)) > c.limit {
			c.overrun, c.body = true, nil
		} else {
			c.body = append(c.body, p...)
		}
	}
	if c.mode == passThrough && c.w != nil {
		return c.w.Write(p)
	}
	return len(p), nil
}

// Flush passes a flush on when the response goes to the client.
func (c *captureWriter) Flush() {
	if !c.wrote {
		c.WriteHeader(http.StatusOK)
	}
	if c.mode == passThrough && c.w != nil {
		_ = http.NewResponseController(c.w).Flush()
	}
}

// Unwrap lets http.ResponseController reach the client's writer.
func (c *captureWriter) Unwrap() http.ResponseWriter { return c.w }

// Hijack is refused while the cache captures: a cached route does not
// upgrade connections (the forwarder sends a 101 only through Hijack).
func (c *captureWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return nil, nil, http.ErrNotSupported
}

// complete reports whether the whole body was kept and matches a declared
// Content-Length (a truncated upstream body is never stored).
func (c *captureWriter) complete() bool {
	if !c.wrote || c.overrun {
		return false
	}
	if cl := c.header.Get("Content-Length"); cl != "" {
		n, err := strconv.ParseInt(cl, 10, 64)
		return err == nil && n == int64(len(c.body))
	}
	return true
}

func copyHeader(dst, src http.Header) {
	for k, vs := range src {
		dst[k] = vs
	}
}

// statusWriter records the status the next handler sent, calling onStatus
// before passing the header on (for invalidation after unsafe methods).
type statusWriter struct {
	http.ResponseWriter
	onStatus func(int)
	done     bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.done && code >= 200 {
		s.done = true
		s.onStatus(code)
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	if !s.done {
		s.WriteHeader(http.StatusOK)
	}
	return s.ResponseWriter.Write(p)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusWriter) Flush() { _ = http.NewResponseController(s.ResponseWriter).Flush() }
