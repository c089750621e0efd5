// Package origin is the origin server that handoff's demo (`make run`),
// benchmarks and integration tests proxy to: one server, so that what a
// person tries, what the benchmarks measure and what the integration tests
// prove all end at the same code. It serves fixed-size bodies, a cacheable
// variant of them, a request sink for uploads, a slow path, a WebSocket
// echo, a request echo, and a raw TCP byte source for L4 scenarios. Every
// response names the origin in X-Backend.
//
// It must not know which proxy is in front of it.
package origin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Paths served by Handler.
const (
	PathEmpty      = "/0"
	Path1K         = "/1k"
	Path100K       = "/100k"
	PathCache1K    = "/cache/1k"
	PathCache100K  = "/cache/100k"
	PathText100K   = "/text/100k"
	PathPostSink   = "/echo-discard"
	PathWebSocket  = "/ws"
	PathSleep      = "/sleep"
	PathEcho       = "/echo"
	CacheMaxAgeSec = 3600
)

// HeaderOriginSeq numbers each cacheable response the backend generates.
const HeaderOriginSeq = "X-Origin-Seq"

// HeaderBackend is the response header in which the origin names itself.
const HeaderBackend = "X-Backend"

// Options configure Handler.
type Options struct {
	// Name is reported in HeaderBackend and in the body of "/". Empty
	// means "backend".
	Name string
	// Logger receives errors of WebSocket sessions. Nil discards.
	Logger *slog.Logger
}

// Handler serves:
//
//	GET  /                        "NAME\n" (and any path not listed here)
//	GET  /echo                    NAME, then the request line and the forwarding
//	                              headers it saw (for a person trying handoff)
//	GET  /sleep?ms=N              "NAME\n" after N milliseconds (an in-flight request)
//	GET  /0, /1k, /100k           bodies of 0, 1024 and 102400 bytes, not cacheable
//	GET  /cache/1k, /cache/100k   the same bodies with Cache-Control: public, max-age=3600
//	GET  /text/100k               102400 bytes of text/plain that compresses like
//	                              a log or an HTML page, not cacheable (compression)
//	POST /echo-discard            reads and discards the body, answers 200 with
//	                              X-Received-Bytes
//	GET  /ws                      WebSocket echo of every message
func Handler(o Options) http.Handler {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	name := o.Name
	if name == "" {
		name = "backend"
	}
	var seq atomic.Uint64
	body1k := makeBody(1 << 10)
	body100k := makeBody(100 << 10)
	mux := http.NewServeMux()
	fixed := func(body []byte, cacheable bool) http.HandlerFunc {
		cl := strconv.Itoa(len(body))
		return func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("Content-Type", "application/octet-stream")
			h.Set("Content-Length", cl)
			if cacheable {
				// RFC 9111 §5.2.2.9 and §5.2.2.1: shared caches may
				// store it and serve it fresh for max-age seconds.
				h.Set("Cache-Control", "public, max-age="+strconv.Itoa(CacheMaxAgeSec))
				// Numbers each response the origin generates, so that a
				// test can tell a cache hit (same number) from a miss.
				h.Set(HeaderOriginSeq, strconv.FormatUint(seq.Add(1), 10))
			} else {
				// RFC 9111 §5.2.2.5: no cache may store it.
				h.Set("Cache-Control", "no-store")
			}
			if r.Method == http.MethodHead {
				return
			}
			_, _ = w.Write(body)
		}
	}
	mux.HandleFunc("GET "+PathEmpty, fixed(nil, false))
	mux.HandleFunc("GET "+Path1K, fixed(body1k, false))
	mux.HandleFunc("GET "+Path100K, fixed(body100k, false))
	mux.HandleFunc("GET "+PathCache1K, fixed(body1k, true))
	mux.HandleFunc("GET "+PathCache100K, fixed(body100k, true))
	text100k := makeText(100 << 10)
	textCL := strconv.Itoa(len(text100k))
	mux.HandleFunc("GET "+PathText100K, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Content-Length", textCL)
		h.Set("Cache-Control", "no-store")
		if r.Method != http.MethodHead {
			_, _ = w.Write(text100k)
		}
	})
	mux.HandleFunc("POST "+PathPostSink, func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, "read body", http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Received-Bytes", strconv.FormatInt(n, 10))
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("GET "+PathSleep, func(w http.ResponseWriter, r *http.Request) {
		ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
		if err != nil || ms < 0 {
			http.Error(w, "ms: want a non-negative integer", http.StatusBadRequest)
			return
		}
		t := time.NewTimer(time.Duration(ms) * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, name)
	})
	mux.HandleFunc(PathEcho, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "%s\n%s %s %s\nHost: %s\nX-Forwarded-For: %s\nForwarded: %s\nVia: %s\nX-Request-Id: %s\n",
			name, r.Method, r.URL.RequestURI(), r.Proto, r.Host,
			r.Header.Get("X-Forwarded-For"), r.Header.Get("Forwarded"), r.Header.Get("Via"), r.Header.Get("X-Request-Id"))
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, name)
	})
	mux.HandleFunc("GET "+PathWebSocket, func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return // Accept already answered
		}
		defer c.CloseNow()
		if err := echo(r.Context(), c); err != nil && websocket.CloseStatus(err) == -1 && !errors.Is(err, context.Canceled) {
			log.Debug("websocket echo ended", "err", err)
		}
	})
	return named(name, mux)
}

// named sets HeaderBackend on every response.
func named(name string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(HeaderBackend, name)
		next.ServeHTTP(w, r)
	})
}

func echo(ctx context.Context, c *websocket.Conn) error {
	for {
		typ, rd, err := c.Reader(ctx)
		if err != nil {
			return fmt.Errorf("read message: %w", err)
		}
		wr, err := c.Writer(ctx, typ)
		if err != nil {
			return fmt.Errorf("start echo: %w", err)
		}
		if _, err := io.Copy(wr, rd); err != nil {
			return fmt.Errorf("copy echo: %w", err)
		}
		if err := wr.Close(); err != nil {
			return fmt.Errorf("finish echo: %w", err)
		}
	}
}

// makeText returns n bytes of text with the redundancy of real text
// (repeated words, varying numbers), so that compressors work about as
// hard as on a log or a page: a repeated alphabet would compress to
// almost nothing and measure nothing.
func makeText(n int) []byte {
	words := []string{"handoff", "proxy", "request", "upstream", "target", "GET", "POST", "/api/v1/items",
		"status", "200", "latency", "bytes", "client", "cache", "hit", "miss", "route", "default"}
	b := make([]byte, 0, n+64)
	x := uint32(2463534242)
	for len(b) < n {
		// xorshift32 (Marsaglia 2003): deterministic, no allocation.
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b = append(b, words[x%uint32(len(words))]...)
		if x%7 == 0 {
			b = strconv.AppendUint(b, uint64(x%100000), 10)
		}
		if x%11 == 0 {
			b = append(b, '\n')
		} else {
			b = append(b, ' ')
		}
	}
	return b[:n]
}

func makeBody(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b
}

// SourceChunk is how many bytes Source writes per call.
const SourceChunk = 64 << 10

// Source streams bytes to every connection accepted on ln until the client
// closes it or Close is called: the far end of the L4 throughput scenario.
type Source struct {
	ln     net.Listener
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewSource starts serving ln. Close stops it.
func NewSource(ln net.Listener) *Source {
	s := &Source{ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Go(s.accept)
	return s
}

func (s *Source) accept() {
	chunk := makeBody(SourceChunk)
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return // listener closed by Close
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() {
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				_ = c.Close()
			}()
			for {
				if _, err := c.Write(chunk); err != nil {
					return
				}
			}
		})
	}
}

// Close stops accepting, closes every connection and waits for the
// writers to return.
func (s *Source) Close() error {
	s.mu.Lock()
	s.closed = true
	err := s.ln.Close()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("close source listener: %w", err)
	}
	return nil
}

// NewHTTPServer returns the server the backend runs: HTTP/1.1 and, on
// plain listeners, HTTP/2 with prior knowledge (RFC 9113 §3.3) so that the
// direct h2c scenario has something to talk to; HTTP/2 over TLS comes from
// ALPN. Timeouts are generous: the load generators keep connections busy.
func NewHTTPServer(h http.Handler) *http.Server {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	return &http.Server{
		Handler:           h,
		Protocols:         &p,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
		// Keep the backend's logs out of the measurements.
		ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelError),
	}
}
