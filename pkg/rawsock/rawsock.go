// Package rawsock reads and writes a proxy's sockets with fewer system
// calls and less runtime work per call than net.Conn.
//
// Two costs of net.Conn show up in a proxy's profile:
//
//   - net.Conn.Read always tries read(2) before it waits for readability:
//     internal/poll resets the connection's readiness first (runtime
//     pollReset) and could otherwise miss an edge-triggered epoll(7)
//     event that came in between. A proxy that has just written a request
//     (or a response on a keep-alive connection) knows that the answer
//     cannot be there yet, so that first read fails with EAGAIN every
//     time: one read(2) in four per proxied request, against the two reads
//     of an event loop like HAProxy's. Conn.WriteWait writes inside
//     syscall.RawConn.Read, after the reset, so that any event the answer
//     causes is kept and waiting first is safe.
//   - Every read(2) and write(2) enters and leaves the scheduler's syscall
//     state. A write on loopback delivers the segment and wakes the reader
//     within the call, which takes long enough for sysmon to take the P
//     away and start another thread for it. On a non-blocking socket
//     neither call ever blocks, so Conn makes them as raw system calls
//     and waits (for readability, room, or the deadline) through the
//     runtime's poller as net.Conn does.
//
// Errors have the shapes net.Conn's have (*net.OpError around an
// *os.SyscallError, io.EOF, deadline and close errors from net.Conn
// itself), so callers test them the same way.
package rawsock

import (
	"io"
	"net"
	"os"
	"syscall"
)

// Conn wraps one connection. It allocates once, in New: Read, Write,
// Writev and WriteWait do not. Like a net.Conn, it may be read by one
// goroutine while another writes; reads (and writes) are not concurrent.
type Conn struct {
	net.Conn
	rc syscall.RawConn // nil: not a socket; every call goes to Conn

	rd, wr                  op // the state of the read and of the write in progress
	readFn, writeFn, waitFn func(uintptr) bool
	before                  func() bool // WriteWait's
	iov                     [3]syscall.Iovec
}

// op is one call's buffer, progress and outcome.
type op struct {
	p     []byte
	n     int
	errno syscall.Errno
	wait  bool // WriteWait: written, waiting for readability
	vec   int  // Writev: p is unused, iov[:vec] holds the buffers
}

// New wraps c; when c is not a socket (no syscall.Conn), the methods
// simply call c's.
func New(c net.Conn) *Conn {
	s := &Conn{Conn: c}
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			s.rc = rc
			s.readFn, s.writeFn, s.waitFn = s.read, s.write, s.writeThenWait
		}
	}
	return s
}

// NetConn returns the wrapped connection.
func (s *Conn) NetConn() net.Conn { return s.Conn }

// Read reads like net.Conn.Read.
func (s *Conn) Read(p []byte) (int, error) {
	if s.rc == nil || len(p) == 0 {
		return s.Conn.Read(p)
	}
	s.rd = op{p: p}
	err := s.rc.Read(s.readFn)
	n, errno := s.rd.n, s.rd.errno
	s.rd.p = nil
	switch {
	case err != nil:
		// The deadline passed or the connection was closed while
		// waiting: net.Conn reports that in its own words at once.
		return s.Conn.Read(p)
	case errno != 0:
		return 0, s.opError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (s *Conn) read(fd uintptr) bool {
	p := s.rd.p
	for {
		n, e := sysRead(fd, p)
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		case 0:
			s.rd.n = n
		default:
			s.rd.errno = e
		}
		return true
	}
}

// Write writes all of p like net.Conn.Write, waiting for room in the send
// buffer (up to the write deadline) when it is full.
func (s *Conn) Write(p []byte) (int, error) {
	if s.rc == nil || len(p) == 0 {
		return s.Conn.Write(p)
	}
	s.wr = op{p: p}
	_ = s.rc.Write(s.writeFn)
	return s.finishWrite()
}

// Writev writes a, b and c (any of them may be empty), in that order, in
// one writev(2) where the send buffer has room for them, as net.Buffers
// does for a *net.TCPConn.
func (s *Conn) Writev(a, b, c []byte) (int, error) {
	bufs := [3][]byte{a, b, c}
	if s.rc == nil {
		return s.writeRest(&bufs, 0)
	}
	k, total := 0, 0
	for _, p := range bufs {
		if len(p) > 0 {
			s.iov[k] = syscall.Iovec{Base: &p[0]}
			s.iov[k].SetLen(len(p))
			k++
			total += len(p)
		}
	}
	if k == 0 {
		return 0, nil
	}
	s.wr = op{vec: k}
	_ = s.rc.Write(s.writeFn)
	n, errno := s.wr.n, s.wr.errno
	s.wr, s.iov = op{}, [3]syscall.Iovec{}
	if errno != 0 {
		return n, s.opError("writev", errno)
	}
	if n < total {
		// A partial write (or the poller's error): the rest as plain
		// writes, which report the poller's error in net.Conn's words.
		return s.writeRest(&bufs, n)
	}
	return n, nil
}

// writeRest writes what follows the first n bytes of bufs with Write,
// skipping empty buffers (a Write of nothing may block: net.Pipe), and
// returns the count with n.
func (s *Conn) writeRest(bufs *[3][]byte, n int) (int, error) {
	written := n
	for _, p := range bufs {
		if n >= len(p) {
			n -= len(p)
			continue
		}
		m, err := s.Write(p[n:])
		written += m
		n = 0
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// finishWrite ends a write whose state is in s.wr. Whatever is left
// unwritten (the poller gave up: deadline, close) goes to net.Conn.
func (s *Conn) finishWrite() (int, error) {
	n, errno, p := s.wr.n, s.wr.errno, s.wr.p
	s.wr = op{}
	switch {
	case errno != 0:
		return n, s.opError("write", errno)
	case n < len(p):
		// The deadline passed or the connection was closed while waiting
		// for room: net.Conn reports it and writes what it can.
		m, err := s.Conn.Write(p[n:])
		return n + m, err
	}
	return n, nil
}

// write is the RawConn.Write callback: false waits for room.
func (s *Conn) write(fd uintptr) bool {
	if s.wr.vec > 0 {
		return s.writev(fd)
	}
	return s.writeAll(fd)
}

// writeAll writes s.wr.p from s.wr.n on; false means the send buffer is
// full.
func (s *Conn) writeAll(fd uintptr) bool {
	for s.wr.n < len(s.wr.p) {
		q := s.wr.p[s.wr.n:]
		n, e := sysWrite(fd, q)
		switch e {
		case 0:
			s.wr.n += n
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			s.wr.errno = e
			return true
		}
	}
	return true
}

// writev makes one writev(2) of s.iov; whatever it leaves is written by
// Writev afterwards.
func (s *Conn) writev(fd uintptr) bool {
	for {
		n, e := sysWritev(fd, s.iov[:s.wr.vec])
		switch e {
		case 0:
			s.wr.n = n
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		default:
			s.wr.errno = e
		}
		return true
	}
}

// WriteWait writes p and returns once the connection has something to
// read, or its read deadline passed, or it was closed: the next Read
// tells which. Its error is the write's. The read deadline must be set
// before: WriteWait waits without a bound otherwise.
//
// When before is not nil it is called once all of p was written, just
// before the wait (with the connection's read side held, so that a Close
// from another goroutine ends the wait rather than hitting a reused
// descriptor); false skips the wait.
func (s *Conn) WriteWait(p []byte, before func() bool) error {
	if s.rc == nil || len(p) == 0 {
		_, err := s.Write(p)
		return err
	}
	s.wr = op{p: p}
	s.before = before
	// An error here is the read side's (deadline, closed): the caller's
	// next Read meets it again and reports it.
	_ = s.rc.Read(s.waitFn)
	s.before = nil
	if s.wr.wait {
		s.wr = op{}
		return nil
	}
	// The send buffer filled up (or the write failed): the rest goes the
	// usual way, and the caller's next Read waits as usual.
	_, err := s.finishWrite()
	return err
}

// writeThenWait is the RawConn.Read callback of WriteWait: the first call
// writes, and returns false to wait when all was written; the call after
// the wait ends it.
func (s *Conn) writeThenWait(fd uintptr) bool {
	if s.wr.wait {
		return true
	}
	if !s.writeAll(fd) || s.wr.errno != 0 {
		return true
	}
	s.wr.wait = true
	return s.before != nil && !s.before()
}

func (s *Conn) opError(call string, errno syscall.Errno) error {
	op := "read"
	if call != "read" {
		op = "write"
	}
	return &net.OpError{Op: op, Net: s.LocalAddr().Network(), Source: s.LocalAddr(), Addr: s.RemoteAddr(), Err: os.NewSyscallError(call, errno)}
}
