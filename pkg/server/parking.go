package server

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// parker keeps idle keep-alive connections of the HTTP/1.1 fast path
// without a goroutine each: their sockets wait in one epoll(7) set of its
// own (a socket may be in several), watched by one goroutine, and a
// connection gets a goroutine again when its next request arrives. An
// idle connection then costs its state and a timer, not a goroutine stack
// (nginx and HAProxy keep idle connections the same way).
//
// Exactly one of three things ends a parking, whichever removes the
// connection from the set first: readiness (wake), the idle timeout
// (expire), or close (quiesce and shutdown).
type parker struct {
	epfd int
	evfd int // eventfd that stops the loop

	mu     sync.Mutex
	parked map[uint64]*parkedConn
	next   uint64
	closed bool

	wake   func(fc *fastConn) // on the loop goroutine: start serving
	expire func(fc *fastConn) // idle timeout or close: end the connection

	done chan struct{}
}

type parkedConn struct {
	fc    *fastConn
	fd    int
	timer *time.Timer
}

func newParker(wake, expire func(*fastConn)) (*parker, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	p := &parker{epfd: epfd, evfd: evfd, parked: make(map[uint64]*parkedConn), wake: wake, expire: expire, done: make(chan struct{})}
	go p.loop()
	return p, nil
}

// errParkerClosed reports a parking refused because the server stops.
var errParkerClosed = errors.New("parker closed")

// park adds fc, whose socket has no unread data in handoff's buffers, to
// the set until it is readable or timeout passes.
func (p *parker) park(fc *fastConn, timeout time.Duration) error {
	fd, err := sockFD(fc.raw)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errParkerClosed
	}
	p.next++
	id := p.next
	pc := &parkedConn{fc: fc, fd: fd}
	// EPOLLONESHOT: one wake-up, then the socket is out of the set's
	// reports until removed; RDHUP/HUP/ERR wake it too (the read then
	// sees the close).
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT}
	ev.Fd, ev.Pad = int32(uint32(id)), int32(uint32(id>>32)) // epoll_data: the parking id
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl add: %w", err)
	}
	pc.timer = time.AfterFunc(timeout, func() {
		if p.take(id) != nil {
			p.expire(fc)
		}
	})
	p.parked[id] = pc
	return nil
}

// take removes the parking id and returns it, or nil when something else
// ended it first.
func (p *parker) take(id uint64) *parkedConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	pc := p.parked[id]
	if pc == nil {
		return nil
	}
	delete(p.parked, id)
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, pc.fd, nil)
	return pc
}

func (p *parker) loop() {
	defer close(p.done)
	events := make([]unix.EpollEvent, 128)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			return
		}
		for _, ev := range events[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if id == 0 {
				return // the eventfd: close
			}
			if pc := p.take(id); pc != nil {
				pc.timer.Stop()
				p.wake(pc.fc)
			}
		}
	}
}

// close ends every parking (expire) and stops the loop. Parking after
// close fails.
func (p *parker) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	var ended []*parkedConn
	for id, pc := range p.parked {
		delete(p.parked, id)
		_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, pc.fd, nil)
		ended = append(ended, pc)
	}
	p.mu.Unlock()
	for _, pc := range ended {
		// Taken out of the set here, so ours to end; a timer that
		// already fired finds nothing to take.
		pc.timer.Stop()
		p.expire(pc.fc)
	}
	var one [8]byte
	one[0] = 1
	_, _ = unix.Write(p.evfd, one[:])
	<-p.done
	unix.Close(p.epfd)
	unix.Close(p.evfd)
}

// sockFD is the file descriptor of c, valid while c is open.
func sockFD(c net.Conn) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, errors.New("connection has no file descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	fd := -1
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return 0, err
	}
	return fd, nil
}
