package l4

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Target is one upstream target chosen for a connection.
type Target struct {
	// Address to dial, "host:port".
	Address string
	// Report is told the dial's outcome: nil when connected. Nil means
	// nobody listens (health).
	Report func(err error)
	// Release ends the connection's claim on the target (in-flight
	// count). Nil means nothing to release.
	Release func()
}

// Picker chooses the target of one connection attempt.
type Picker interface {
	// Pick returns a target for a connection from client (the zero
	// Addr when unknown), skipping every address for which tried
	// reports true. ok is false when no target is eligible.
	Pick(client netip.Addr, tried func(addr string) bool) (t Target, ok bool)
}

// ConnStats describes one relayed connection when it ended.
type ConnStats struct {
	// Target is the address the connection was relayed to; empty when
	// no target could be reached.
	Target string
	// Up counts bytes from the client to the target, Down the other way.
	Up, Down int64
	Duration time.Duration
	// Result is "ok", "idle_timeout", "no_target", "connect_failed" or
	// "error" or "proxy_header" (a PROXY header missing or refused).
	Result string
}

// Observer receives what the relay does, for metrics. Methods are
// called concurrently.
type Observer interface {
	// ConnDone is called once per relayed connection, when it ended.
	ConnDone(listener string, s ConnStats)
	// ConnectFailed is called for each failed dial to target.
	ConnectFailed(listener, target string)
	// MirrorDropped is called when a mirror connection is given up:
	// reason is "overflow" (it fell behind by more than its buffer) or
	// "error" (dial or write failed).
	MirrorDropped(listener, mirror, reason string)
}

// ProxyOptions configure a Proxy.
type ProxyOptions struct {
	// Listener names the listener, in metrics and logs.
	Listener string
	// ConnectTimeout bounds one dial. Zero means 5s.
	ConnectTimeout time.Duration
	// IdleTimeout closes a connection after no byte moved either way
	// for between IdleTimeout and twice that (each direction checks at
	// its own deadline, so that the zero-copy path needs no per-read
	// bookkeeping). Zero means 1h; negative means never.
	IdleTimeout time.Duration
	// SendProxy is the PROXY protocol version sent to targets before
	// any byte of the client: "v1", "v2", or empty for none.
	SendProxy string
	// Mirrors receive a copy of every byte clients send (see mirror.go).
	// Empty means none.
	Mirrors []string
	// MirrorBuffer bounds what each mirror may lag behind, in bytes.
	// Zero means 4 MiB.
	MirrorBuffer int
	// Observer receives stats. Nil means nobody.
	Observer Observer
	// Logger for connection errors. Nil discards.
	Logger *slog.Logger
	// Dial opens connections to targets and mirrors. Nil means a
	// net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Proxy relays TCP connections to targets. It is safe for concurrent use.
type Proxy struct {
	o ProxyOptions
	// wg counts mirror goroutines, which may outlive their connection
	// while they flush what they were sent.
	wg sync.WaitGroup
}

// Wait waits until every mirror connection has flushed or given up.
func (p *Proxy) Wait() { p.wg.Wait() }

// NewProxy returns a Proxy; options are filled with their defaults.
func NewProxy(o ProxyOptions) *Proxy {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 5 * time.Second
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = time.Hour
	}
	if o.MirrorBuffer <= 0 {
		o.MirrorBuffer = 4 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Dial == nil {
		var d net.Dialer
		o.Dial = d.DialContext
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	return &Proxy{o: o}
}

type nopObserver struct{}

func (nopObserver) ConnDone(string, ConnStats)           {}
func (nopObserver) ConnectFailed(string, string)         {}
func (nopObserver) MirrorDropped(string, string, string) {}

// ErrNoTarget means no target of the pool could be reached.
var ErrNoTarget = errors.New("no target available")

// ServeConn relays client to a target that pick chooses, until both
// directions ended, the idle timeout fired or ctx ended. It closes
// client. The client's address is client.RemoteAddr() (the PROXY protocol
// source when the listener accepts it).
func (p *Proxy) ServeConn(ctx context.Context, client net.Conn, pick Picker) error {
	start := time.Now()
	defer client.Close()
	st := ConnStats{}
	if err := Handshake(client); err != nil {
		st.Result = "proxy_header"
		p.o.Observer.ConnDone(p.o.Listener, st)
		closeNow(client)
		return err
	}
	defer func() {
		st.Duration = time.Since(start)
		p.o.Observer.ConnDone(p.o.Listener, st)
	}()
	addr := addrOf(client.RemoteAddr())
	up, t, err := p.connect(ctx, addr, pick)
	if err != nil {
		st.Result = "connect_failed"
		if errors.Is(err, ErrNoTarget) {
			st.Result = "no_target"
		}
		closeNow(client)
		return err
	}
	defer up.Close()
	if t.Release != nil {
		defer t.Release()
	}
	st.Target = t.Address
	if p.o.SendProxy != "" {
		if err := WriteHeader(up, p.o.SendProxy, client.RemoteAddr(), client.LocalAddr()); err != nil {
			st.Result = "error"
			return fmt.Errorf("send proxy header to %s: %w", t.Address, err)
		}
	}
	var mirrors *mirrorSet
	if len(p.o.Mirrors) > 0 {
		mirrors = p.startMirrors(ctx, client.RemoteAddr(), client.LocalAddr())
		defer mirrors.close()
	}
	st.Up, st.Down, st.Result, err = p.relay(ctx, client, up, mirrors)
	return err
}

// connect dials targets until one answers; every target is tried at most
// once, and nothing of the client was read yet, so a retry is safe.
func (p *Proxy) connect(ctx context.Context, client netip.Addr, pick Picker) (net.Conn, Target, error) {
	var tried []string
	isTried := func(a string) bool {
		for _, x := range tried {
			if x == a {
				return true
			}
		}
		return false
	}
	var last error
	for {
		t, ok := pick.Pick(client, isTried)
		if !ok {
			if last != nil {
				return nil, Target{}, fmt.Errorf("%w: last dial: %w", ErrNoTarget, last)
			}
			return nil, Target{}, ErrNoTarget
		}
		tried = append(tried, t.Address)
		dctx, cancel := context.WithTimeout(ctx, p.o.ConnectTimeout)
		c, err := p.o.Dial(dctx, "tcp", t.Address)
		cancel()
		if t.Report != nil {
			t.Report(err)
		}
		if err == nil {
			return c, t, nil
		}
		if t.Release != nil {
			t.Release()
		}
		p.o.Observer.ConnectFailed(p.o.Listener, t.Address)
		p.o.Logger.Debug("l4: connect failed", "listener", p.o.Listener, "target", t.Address, "error", err)
		last = err
		if ctx.Err() != nil {
			return nil, Target{}, fmt.Errorf("connect to %s: %w", t.Address, ctx.Err())
		}
	}
}

// relay copies both ways concurrently. A direction that reaches EOF
// half-closes its destination (CloseWrite, so a client that shut down
// its sending side still gets the whole answer); an error in either
// direction, the idle timeout or ctx ends both.
func (p *Proxy) relay(ctx context.Context, client, up net.Conn, mirrors *mirrorSet) (upN, downN int64, result string, err error) {
	rc, rt := rawConn(client), rawConn(up)
	idle := &idleState{timeout: p.o.IdleTimeout}
	idle.last[0].Store(time.Now().UnixNano())
	idle.last[1].Store(time.Now().UnixNano())
	stop := context.AfterFunc(ctx, func() { closeBoth(client, up) })
	defer stop()
	var wg sync.WaitGroup
	var upErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		upN, upErr = p.copyDir(idle, 0, rt, rc, mirrors)
		if upErr != nil {
			closeBoth(client, up)
		}
	}()
	downN, err = p.copyDir(idle, 1, rc, rt, nil)
	if err != nil {
		closeBoth(client, up)
	}
	wg.Wait()
	if err == nil {
		err = upErr
	}
	switch {
	case idle.fired.Load():
		return upN, downN, "idle_timeout", nil
	case ctx.Err() != nil:
		return upN, downN, "error", ctx.Err()
	case err != nil:
		return upN, downN, "error", err
	}
	return upN, downN, "ok", nil
}

// chunk is how much one splice call may move before the copy loop looks
// at the clock again (io.Copy on an *io.LimitedReader of a *net.TCPConn
// still splices: net/splice_linux.go unwraps it).
const chunk = 1 << 20

// idleState is the idle timeout shared by the two directions: last[i] is
// the last time direction i moved a byte (or MaxInt64 once it ended
// cleanly, which makes it count as idle for ever).
type idleState struct {
	timeout time.Duration
	last    [2]atomic.Int64
	fired   atomic.Bool
}

// copyDir copies src to dst in chunks until EOF, then half-closes dst.
// dir is 0 for client to target, 1 for target to client.
func (p *Proxy) copyDir(idle *idleState, dir int, dst, src net.Conn, mirrors *mirrorSet) (int64, error) {
	var total int64
	var buf []byte
	if mirrors != nil {
		buf = make([]byte, 64<<10)
	}
	for {
		if idle.timeout > 0 {
			_ = src.SetReadDeadline(time.Now().Add(idle.timeout))
		}
		var n int64
		var err error
		if mirrors != nil {
			n, err = copyTee(dst, src, buf, mirrors)
		} else {
			n, err = io.Copy(dst, &io.LimitedReader{R: src, N: chunk})
		}
		total += n
		now := time.Now()
		if n > 0 {
			idle.last[dir].Store(now.UnixNano())
		}
		switch {
		case err == nil && (n == chunk || mirrors != nil):
			continue // a full chunk: more may follow
		case err == nil && mirrors == nil, errors.Is(err, io.EOF):
			// EOF: the source shut down its sending side.
			idle.last[dir].Store(1<<63 - 1)
			closeWrite(dst)
			if mirrors != nil {
				mirrors.finish()
			}
			return total, nil
		case errors.Is(err, os.ErrDeadlineExceeded) && idle.timeout > 0:
			mine := now.UnixNano() - idle.last[dir].Load()
			other := idle.last[1-dir].Load()
			otherIdle := other == 1<<63-1 || now.UnixNano()-other >= 2*int64(idle.timeout)
			if n == 0 && mine >= int64(idle.timeout) && otherIdle {
				idle.fired.Store(true)
				return total, err
			}
			continue
		default:
			return total, err
		}
	}
}

// copyTee copies one read of src to dst and to the mirrors.
func copyTee(dst, src net.Conn, buf []byte, mirrors *mirrorSet) (int64, error) {
	var total int64
	for total < chunk {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return total, werr
			}
			mirrors.send(buf[:n])
			total += int64(n)
		}
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// rawConn returns the *net.TCPConn under c's wrappers, so that io.Copy
// between two of them splices (net.TCPConn.ReadFrom). A wrapper exposes
// what it wraps with NetConn() (like crypto/tls.Conn). A PROXY protocol
// connection reads exactly its header, so what is under it is bare.
func rawConn(c net.Conn) net.Conn {
	for {
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = u.NetConn()
	}
	return c
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = c.Close()
}

func closeBoth(a, b net.Conn) {
	_ = a.Close()
	_ = b.Close()
}

// closeNow closes c with a reset (SO_LINGER 0), a clear refusal the
// peer sees at once instead of an orderly end of stream.
func closeNow(c net.Conn) {
	if tc, ok := rawConn(c).(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// addrOf returns the IP of a, or the zero Addr.
func addrOf(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	if a == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
