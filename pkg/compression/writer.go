package compression

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// DefaultMinSize is the smallest body compressed when Options.MinSize is
// zero: below about 1 KiB the coding's framing eats most of the gain
// (nginx's gzip_min_length defaults to 20; Caddy's encode to 512).
const DefaultMinSize = 1024

// Options configure a Compressor.
type Options struct {
	// Codings offered, in order of preference. Empty means Codings().
	Codings []string
	// MinSize is the smallest body, in bytes, that is compressed. Zero
	// means DefaultMinSize.
	MinSize int
}

// Compressor compresses the responses of one route. It keeps pools of
// encoders, so it should live as long as the config that built it; it
// starts no goroutines.
type Compressor struct {
	codings []string
	minSize int
	gzip    sync.Pool
	zstd    sync.Pool
	brotli  sync.Pool
}

// New returns a Compressor; an unknown coding is an error.
func New(o Options) (*Compressor, error) {
	c := &Compressor{codings: o.Codings, minSize: o.MinSize}
	if len(c.codings) == 0 {
		c.codings = Codings()
	}
	for _, name := range c.codings {
		if !slices.Contains(Codings(), name) {
			return nil, fmt.Errorf("unknown coding %q (have: %s)", name, strings.Join(Codings(), ", "))
		}
	}
	if c.minSize <= 0 {
		c.minSize = DefaultMinSize
	}
	return c, nil
}

// Handler compresses the responses of next for clients that accept it.
func (c *Compressor) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		coding := ""
		if r.Method != http.MethodHead {
			coding = Negotiate(r.Header["Accept-Encoding"], c.codings)
		}
		cw := &writer{ResponseWriter: w, c: c, coding: coding}
		completed := false
		defer func() {
			if completed {
				cw.finish()
			} else {
				cw.abort() // a panic (http.ErrAbortHandler): never end the stream cleanly
			}
		}()
		next.ServeHTTP(cw, r)
		completed = true
	})
}

// BrotliLevel is the brotli quality used: 4 gives a smaller body than
// gzip's default at a similar speed; the default quality (6) and above
// cost several times the CPU per byte for a few percent, which suits
// precompressed static files, not a proxy compressing on the fly.
const BrotliLevel = 4

// GzipLevel is the gzip level used: klauspost/compress's default, 5.
const GzipLevel = 5

// encoder is a gzip, zstd or brotli stream writer.
type encoder interface {
	io.WriteCloser
	Flush() error
	Reset(io.Writer)
}

type zstdEncoder struct{ *zstd.Encoder }

func (z zstdEncoder) Reset(w io.Writer) { z.Encoder.Reset(w) }

func (c *Compressor) get(coding string, w io.Writer) encoder {
	switch coding {
	case Gzip:
		if e, ok := c.gzip.Get().(*gzip.Writer); ok {
			e.Reset(w)
			return e
		}
		e, _ := gzip.NewWriterLevel(w, GzipLevel) // the level is valid
		return e
	case Brotli:
		if e, ok := c.brotli.Get().(*brotli.Writer); ok {
			e.Reset(w)
			return e
		}
		return brotli.NewWriterLevel(w, BrotliLevel)
	default:
		if e, ok := c.zstd.Get().(zstdEncoder); ok {
			e.Reset(w)
			return e
		}
		// One block at a time on the caller's goroutine (no encoder
		// goroutines to own), and a 1 MiB window, well within the 8 MiB
		// that RFC 9659 §3 lets HTTP clients insist on.
		e, _ := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithWindowSize(1<<20), zstd.WithLowerEncoderMem(true)) // the options are valid
		return zstdEncoder{e}
	}
}

func (c *Compressor) put(coding string, e encoder) {
	e.Reset(io.Discard) // drop the reference to the client's writer
	switch coding {
	case Gzip:
		c.gzip.Put(e)
	case Brotli:
		c.brotli.Put(e)
	default:
		c.zstd.Put(e)
	}
}

// states of a writer
const (
	undecided   = iota // buffering until MinSize bytes, a flush or the end
	passthrough        // writing as is
	compressing
)

// writer decides, once it knows the header and enough of the body,
// whether to compress; until then it holds the status and the body.
type writer struct {
	http.ResponseWriter
	c      *Compressor
	coding string // negotiated; "" for identity
	state  int
	status int // held status; 0 before WriteHeader
	buf    bytes.Buffer
	enc    encoder
}

func (w *writer) WriteHeader(code int) {
	if w.state != undecided || w.status != 0 {
		w.ResponseWriter.WriteHeader(code) // let net/http complain about a second one
		return
	}
	if code < 200 {
		w.ResponseWriter.WriteHeader(code) // 1xx: informational, or 101 for a tunnel
		return
	}
	w.status = code
	if !w.eligible() {
		w.decide(false)
		return
	}
	if n, err := strconv.ParseInt(w.Header().Get("Content-Length"), 10, 64); err == nil {
		w.decide(w.coding != "" && n >= int64(w.c.minSize))
	}
}

// eligible reports whether the response as its header stands could be
// compressed for some client, and adds Vary: Accept-Encoding if so
// (RFC 9110 §12.5.5: the choice depends on that request field).
func (w *writer) eligible() bool {
	h := w.Header()
	switch {
	case w.status == http.StatusNoContent, w.status == http.StatusNotModified,
		w.status == http.StatusPartialContent, h.Get("Content-Range") != "":
		return false // no body, or a range of the identity representation
	case h.Get("Content-Encoding") != "" && !strings.EqualFold(h.Get("Content-Encoding"), "identity"):
		return false // never encode twice
	case hasToken(h.Values("Cache-Control"), "no-transform"):
		return false // RFC 9111 §5.2.2.6
	case !Compressible(h.Get("Content-Type")):
		return false
	}
	if !hasToken(h.Values("Vary"), "accept-encoding") && !hasToken(h.Values("Vary"), "*") {
		h.Add("Vary", "Accept-Encoding")
	}
	return true
}

func hasToken(values []string, tok string) bool {
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			t, _, _ = strings.Cut(t, "=")
			if strings.EqualFold(strings.TrimSpace(t), tok) {
				return true
			}
		}
	}
	return false
}

// decide writes the held header and starts passing through or
// compressing, then writes what was buffered.
func (w *writer) decide(compress bool) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	h := w.Header()
	if compress {
		w.state = compressing
		h.Set("Content-Encoding", w.coding)
		h.Del("Content-Length")
		h.Del("Accept-Ranges")
		// The compressed body is another representation: a strong
		// validator of the identity one must not describe it (RFC 9110
		// §8.8.3); a weak one still serves If-None-Match.
		if et := h.Get("Etag"); et != "" && !strings.HasPrefix(et, "W/") {
			h.Set("Etag", "W/"+et)
		}
	} else {
		w.state = passthrough
	}
	w.ResponseWriter.WriteHeader(w.status)
	if compress {
		w.enc = w.c.get(w.coding, w.ResponseWriter)
	}
	if w.buf.Len() > 0 {
		_, _ = w.write(w.buf.Bytes()) // an error shows again on the next Write
		w.buf.Reset()
	}
}

func (w *writer) Write(p []byte) (int, error) {
	if w.state == undecided {
		if w.status == 0 {
			w.WriteHeader(http.StatusOK)
		}
		if w.state == undecided {
			if w.buf.Len()+len(p) < w.c.minSize {
				w.buf.Write(p) // not yet enough to be worth compressing
				return len(p), nil
			}
			w.decide(w.coding != "") // sends what was held; p follows without a copy
		}
	}
	return w.write(p)
}

func (w *writer) write(p []byte) (int, error) {
	if w.state == compressing {
		return w.enc.Write(p)
	}
	return w.ResponseWriter.Write(p)
}

// Flush sends what is buffered at once: a stream (SSE) that flushes
// before MinSize bytes is compressed from here on, since it has no
// length to compare, and each flush ends a compressed block.
func (w *writer) Flush() {
	_ = w.FlushError()
}

// FlushError is Flush for http.ResponseController.
func (w *writer) FlushError() error {
	if w.state == undecided {
		if w.status == 0 {
			w.WriteHeader(http.StatusOK)
		}
		if w.state == undecided {
			w.decide(w.coding != "")
		}
	}
	if w.state == compressing {
		if err := w.enc.Flush(); err != nil {
			return err
		}
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach Hijack and deadlines.
func (w *writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// finish ends the response after the handler returned normally: a body
// that stayed under MinSize goes out as is.
func (w *writer) finish() {
	switch w.state {
	case undecided:
		if w.status == 0 && w.buf.Len() == 0 {
			return // nothing was written; net/http sends its own 200
		}
		w.decide(false) // net/http adds the length of a short, unflushed body
	case compressing:
		_ = w.enc.Close() // the client may have gone; nothing to tell
		w.c.put(w.coding, w.enc)
		w.enc = nil
	}
}

// abort drops the encoder without ending its stream, so that the client
// sees a truncated body rather than a complete-looking one.
func (w *writer) abort() {
	if w.enc != nil {
		w.c.put(w.coding, w.enc)
		w.enc = nil
	}
}
