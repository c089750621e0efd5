// Package coalesce wraps a connection that carries many independent
// exchanges at once (an HTTP/2 connection) so that it costs fewer system
// calls: writes return once their bytes are queued and a writer goroutine
// sends everything queued so far in one write(2); reads are served from a
// buffer filled by one read(2).
//
// It exists because net/http's HTTP/2 server flushes every response on
// its own, and its HEADERS and DATA frames separately when the handler
// waits for the HEADERS frame (x/net http2 server.go writeHeaders), and
// reads each frame header (9 bytes) and payload in two reads. With many
// streams finishing at about the same time, those writes are loopback or
// network sends of a hundred bytes each; gathered, they are one.
//
// It does not know HTTP: it only changes when bytes cross the socket, not
// which bytes or in what order.
package coalesce

import (
	"bufio"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Options tune a Conn; zero values take the defaults.
type Options struct {
	// MaxPending bounds the bytes queued and not yet written; a Write
	// that would queue more waits until the writer has caught up
	// (backpressure as a blocking write gives). 0 = 256 KiB.
	MaxPending int
	// ReadBuffer is the size of the read buffer; 0 = 4 KiB (the frames
	// of many requests; larger reads bypass it), < 0 reads straight
	// from the connection.
	ReadBuffer int
	// CloseFlush bounds how long Close waits for queued bytes to be
	// written before closing. 0 = 1 s.
	CloseFlush time.Duration
	// Later makes writes go straight through until Start: for a
	// connection that is known to carry many exchanges only after a
	// negotiation (TLS ALPN choosing h2).
	Later bool
	// Buffers recycles write buffers; share one between the
	// connections of a listener. Nil means the Conn's own.
	Buffers *Buffers
}

// Buffers recycles the write buffers of Conns: a connection gives its
// buffers back whenever everything queued is written, so that an idle
// one holds none, and the next burst does not allocate them again.
type Buffers struct{ p sync.Pool }

// writeBuffer is the size a write buffer starts with: the responses of
// a few streams.
const writeBuffer = 16 << 10

func (b *Buffers) get() *[]byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return v
	}
	buf := make([]byte, 0, writeBuffer)
	return &buf
}

// put keeps buf unless a burst grew it past max.
func (b *Buffers) put(buf *[]byte, max int) {
	if cap(*buf) <= max {
		*buf = (*buf)[:0]
		b.p.Put(buf)
	}
}

// Conn is a net.Conn whose writes are coalesced. Write errors surface on
// a later Write (or Close): once the writer fails, the connection is
// closed underneath so that the reader sees the failure too.
type Conn struct {
	net.Conn
	br         *bufio.Reader
	maxPending int
	closeFlush time.Duration

	on atomic.Bool // writes are coalesced

	mu      sync.Mutex
	cond    sync.Cond // signalled when pending shrinks or the writer stops
	bufs    *Buffers
	pending *[]byte // nil when nothing is queued
	spare   *[]byte
	writing bool // the writer goroutine is scheduled or running
	err     error
	closed  bool
}

// New wraps c.
func New(c net.Conn, o Options) *Conn {
	cc := &Conn{Conn: c, maxPending: o.MaxPending, closeFlush: o.CloseFlush, bufs: o.Buffers}
	if cc.bufs == nil {
		cc.bufs = &Buffers{}
	}
	if cc.maxPending <= 0 {
		cc.maxPending = 256 << 10
	}
	if cc.closeFlush <= 0 {
		cc.closeFlush = time.Second
	}
	switch {
	case o.ReadBuffer == 0:
		cc.br = bufio.NewReaderSize(c, 4<<10)
	case o.ReadBuffer > 0:
		cc.br = bufio.NewReaderSize(c, o.ReadBuffer)
	}
	cc.cond.L = &cc.mu
	cc.on.Store(!o.Later)
	return cc
}

// Start coalesces the writes from now on (see Options.Later). It must
// not race with a Write.
func (c *Conn) Start() { c.on.Store(true) }

// NetConn returns the connection underneath (as tls.Conn does).
func (c *Conn) NetConn() net.Conn { return c.Conn }

// Read reads from the buffer, filling it with one read when it is empty.
func (c *Conn) Read(p []byte) (int, error) {
	if c.br == nil {
		return c.Conn.Read(p)
	}
	return c.br.Read(p)
}

// Write queues b; it blocks only while MaxPending bytes are already
// queued. The returned error is that of an earlier write, or
// net.ErrClosed after Close.
func (c *Conn) Write(b []byte) (int, error) {
	if !c.on.Load() {
		return c.Conn.Write(b)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.queued() >= c.maxPending && c.err == nil && !c.closed {
		c.cond.Wait()
	}
	switch {
	case c.err != nil:
		return 0, c.err
	case c.closed:
		return 0, net.ErrClosed
	}
	if c.pending == nil {
		c.pending, c.spare = c.spare, nil
		if c.pending == nil {
			c.pending = c.bufs.get()
		}
	}
	*c.pending = append(*c.pending, b...)
	if !c.writing {
		c.writing = true
		go c.writer()
	}
	return len(b), nil
}

// writer writes what is queued until nothing is. It first yields, so that
// the goroutines about to queue more (other streams' responses, the
// frame after this one) run before the write rather than after it.
func (c *Conn) writer() {
	runtime.Gosched()
	c.mu.Lock()
	for c.queued() > 0 && c.err == nil {
		buf := c.pending
		c.pending = nil
		c.mu.Unlock()
		_, err := c.Conn.Write(*buf)
		c.mu.Lock()
		*buf = (*buf)[:0]
		if c.spare == nil {
			c.spare = buf
		} else {
			c.bufs.put(buf, c.maxPending)
		}
		if err != nil {
			c.err = err
			// The reader of the connection learns of it as it would
			// of a failed write on a plain one: the peer is gone.
			_ = c.Conn.Close()
		}
		c.cond.Broadcast()
	}
	c.writing = false
	// An idle connection keeps no write buffers.
	for _, b := range []**[]byte{&c.pending, &c.spare} {
		if *b != nil {
			c.bufs.put(*b, c.maxPending)
			*b = nil
		}
	}
	c.cond.Broadcast()
	c.mu.Unlock()
}

func (c *Conn) queued() int {
	if c.pending == nil {
		return 0
	}
	return len(*c.pending)
}

// Flush waits until everything queued has been written (or the writer
// failed) and returns the writer's error.
func (c *Conn) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.writing {
		c.cond.Wait()
	}
	return c.err
}

// Close writes what is queued, for at most CloseFlush, then closes the
// connection: an HTTP/2 server closes right after queueing a GOAWAY,
// which must still reach the peer (RFC 9113 §6.8).
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return net.ErrClosed
	}
	c.closed = true
	if c.writing {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(c.closeFlush))
		for c.writing {
			c.cond.Wait()
		}
	}
	c.cond.Broadcast()
	c.mu.Unlock()
	return c.Conn.Close()
}
