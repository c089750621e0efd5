package l4

import (
	"context"
	"io"
	"net"
	"time"
)

// Mirroring: every byte a client sends is also queued to each mirror
// target. Each mirror has its own writer goroutine and a queue bounded by
// MirrorBuffer; the primary only ever appends to the queues and never
// waits on a mirror. A mirror that falls behind by more than its buffer
// is dropped (its connection closed and counted) and the primary goes
// on. What mirrors answer is read and discarded.

// mirrorFlushTimeout bounds how long a mirror may take to flush its queue
// after the client finished.
const mirrorFlushTimeout = 30 * time.Second

type mirrorSet struct {
	ms []*mirror
}

type mirror struct {
	p    *Proxy
	addr string
	src  net.Addr
	dst  net.Addr
	q    *queue
}

// startMirrors starts one writer per mirror target. The goroutines end
// when their queue is flushed after finish, on overflow, on error, or
// when ctx ends.
func (p *Proxy) startMirrors(ctx context.Context, src, dst net.Addr) *mirrorSet {
	set := &mirrorSet{}
	for _, a := range p.o.Mirrors {
		m := &mirror{p: p, addr: a, src: src, dst: dst, q: newQueue(p.o.MirrorBuffer)}
		set.ms = append(set.ms, m)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			m.run(ctx)
		}()
	}
	return set
}

// send queues a copy of b to every mirror still up, never blocking.
func (s *mirrorSet) send(b []byte) {
	c := append([]byte(nil), b...) // shared, read-only, by every mirror
	for _, m := range s.ms {
		if _, over := m.q.push(c); over {
			m.p.o.Observer.MirrorDropped(m.p.o.Listener, m.addr, "overflow")
			m.p.o.Logger.Debug("l4: mirror fell behind, dropped", "listener", m.p.o.Listener, "mirror", m.addr)
		}
	}
}

// finish tells the mirrors the client finished sending.
func (s *mirrorSet) finish() {
	for _, m := range s.ms {
		m.q.finish()
	}
}

// close is finish: mirrors flush in the background, bounded by
// mirrorFlushTimeout and their buffer.
func (s *mirrorSet) close() { s.finish() }

func (m *mirror) drop(reason string) {
	if m.q.drop() {
		m.p.o.Observer.MirrorDropped(m.p.o.Listener, m.addr, reason)
	}
}

func (m *mirror) run(ctx context.Context) {
	dctx, cancel := context.WithTimeout(ctx, m.p.o.ConnectTimeout)
	c, err := m.p.o.Dial(dctx, "tcp", m.addr)
	cancel()
	if err != nil {
		m.p.o.Logger.Debug("l4: mirror connect failed", "listener", m.p.o.Listener, "mirror", m.addr, "error", err)
		m.drop("error")
		return
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	go func() { _, _ = io.Copy(io.Discard, c) }() // ends when c is closed
	if m.p.o.SendProxy != "" {
		if err := WriteHeader(c, m.p.o.SendProxy, m.src, m.dst); err != nil {
			m.drop("error")
			return
		}
	}
	for {
		b, done, ok := m.q.next(ctx)
		if done {
			_ = c.SetWriteDeadline(time.Now().Add(mirrorFlushTimeout))
			closeWrite(c)
			return
		}
		if !ok {
			return
		}
		_ = c.SetWriteDeadline(time.Now().Add(mirrorFlushTimeout))
		if _, err := c.Write(b); err != nil {
			m.drop("error")
			return
		}
	}
}
