package rawsock

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/handoff-proxy/handoff/pkg/handofftest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair returns both ends of a loopback TCP connection: ours wrapped.
func pair(t *testing.T) (*Conn, *net.TCPConn) {
	c, peer := handofftest.TCPPair(t)
	return New(c), peer
}

func TestReadWrite(t *testing.T) {
	c, peer := pair(t)
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(peer, got); err != nil || string(got) != "ping" {
		t.Fatalf("peer read %q, %v", got, err)
	}
	if _, err := peer.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "pong" {
		t.Fatalf("read %q, %v", got, err)
	}
	peer.Close()
	if n, err := c.Read(got); n != 0 || err != io.EOF {
		t.Fatalf("after the peer closed: %d, %v; want 0, EOF", n, err)
	}
}

// A write larger than both socket buffers completes while the peer reads
// slowly: the write waits for room instead of failing with EAGAIN.
func TestWriteWaitsForRoom(t *testing.T) {
	for _, vec := range []bool{false, true} {
		c, peer := pair(t)
		want := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
		got := make(chan []byte, 1)
		go func() {
			var b bytes.Buffer
			buf := make([]byte, 8<<10)
			for b.Len() < len(want) {
				time.Sleep(100 * time.Microsecond)
				n, err := peer.Read(buf)
				b.Write(buf[:n])
				if err != nil {
					break
				}
			}
			got <- b.Bytes()
		}()
		var n int
		var err error
		if vec {
			n, err = c.Writev(want[:100], want[100:len(want)-7], want[len(want)-7:])
		} else {
			n, err = c.Write(want)
		}
		if err != nil || n != len(want) {
			t.Fatalf("writev %v: wrote %d of %d: %v", vec, n, len(want), err)
		}
		if b := <-got; !bytes.Equal(b, want) {
			t.Fatalf("writev %v: peer got %d bytes, not what was written", vec, len(b))
		}
	}
}

func TestWritevOrder(t *testing.T) {
	c, peer := pair(t)
	for _, bufs := range [][3]string{{"head ", "body", ""}, {"", "head ", "body"}, {"he", "ad bo", "dy"}, {"head body", "", ""}} {
		if n, err := c.Writev([]byte(bufs[0]), []byte(bufs[1]), []byte(bufs[2])); n != 9 || err != nil {
			t.Fatalf("writev %q: %d, %v", bufs, n, err)
		}
		got := make([]byte, 9)
		if _, err := io.ReadFull(peer, got); err != nil || string(got) != "head body" {
			t.Fatalf("writev %q: peer read %q, %v", bufs, got, err)
		}
	}
}

func TestDeadlines(t *testing.T) {
	c, _ := pair(t)
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past its deadline: %v; want a timeout", err)
	}
	// Nobody reads: the write fills both buffers and then times out.
	big := make([]byte, 64<<20)
	_ = c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	n, err := c.Write(big)
	if !errors.As(err, &ne) || !ne.Timeout() || n == 0 || n == len(big) {
		t.Fatalf("write past its deadline: %d, %v; want part written and a timeout", n, err)
	}
}

func TestErrorsHaveNetShapes(t *testing.T) {
	c, peer := pair(t)
	// SO_LINGER 0: the peer's close sends a reset (socket(7)).
	_ = peer.SetLinger(0)
	if _, err := peer.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	peer.Close()
	time.Sleep(20 * time.Millisecond)
	buf := make([]byte, 8)
	var err error
	for err == nil {
		_, err = c.Read(buf)
	}
	var op *net.OpError
	if !errors.Is(err, syscall.ECONNRESET) || !errors.As(err, &op) || op.Op != "read" {
		t.Fatalf("read after a reset: %#v; want a read *net.OpError around ECONNRESET", err)
	}
	_, err = c.Write([]byte("y"))
	if !errors.As(err, &op) || op.Op != "write" || !(errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)) {
		t.Fatalf("write after a reset: %v; want a write *net.OpError around EPIPE or ECONNRESET", err)
	}
	c.Close()
	if _, err := c.Read(buf); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after Close: %v; want net.ErrClosed", err)
	}
	if _, err := c.Write(buf); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after Close: %v; want net.ErrClosed", err)
	}
}

// WriteWait returns once the answer is there: the next Read gets it
// without waiting.
func TestWriteWait(t *testing.T) {
	c, peer := pair(t)
	go func() {
		b := make([]byte, 5)
		if _, err := io.ReadFull(peer, b); err != nil {
			return
		}
		time.Sleep(30 * time.Millisecond)
		_, _ = peer.Write([]byte("answer to " + string(b)))
	}()
	start := time.Now()
	if err := c.WriteWait([]byte("hello"), nil); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 25*time.Millisecond {
		t.Fatalf("WriteWait returned after %v, before the answer was sent", waited)
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Millisecond)) // the answer is there already
	got := make([]byte, 64)
	n, err := c.Read(got)
	if err != nil || string(got[:n]) != "answer to hello" {
		t.Fatalf("read %q, %v", got[:n], err)
	}
}

// The read deadline bounds WriteWait, and the next Read reports it.
func TestWriteWaitDeadline(t *testing.T) {
	c, peer := pair(t)
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if err := c.WriteWait([]byte("unanswered"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after an unanswered WriteWait: %v; want the deadline", err)
	}
	got := make([]byte, 10)
	if _, err := io.ReadFull(peer, got); err != nil || string(got) != "unanswered" {
		t.Fatalf("peer read %q, %v", got, err)
	}
}

// A message larger than the send buffer is written whole (the rest the
// usual way) and the answer still read.
func TestWriteWaitLarge(t *testing.T) {
	c, peer := pair(t)
	want := bytes.Repeat([]byte("z"), 8<<20)
	go func() {
		_, _ = io.CopyN(io.Discard, peer, int64(len(want)))
		_, _ = peer.Write([]byte("done"))
	}()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := c.WriteWait(want, nil); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "done" {
		t.Fatalf("read %q, %v", got, err)
	}
}

// A connection that is no socket goes through its own methods.
func TestNotASocket(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := New(a)
	go func() {
		buf := make([]byte, 9)
		_, _ = io.ReadFull(b, buf)
		_, _ = b.Write(buf)
	}()
	if n, err := c.Writev([]byte("head "), []byte("body"), nil); n != 9 || err != nil {
		t.Fatalf("writev on a pipe: %d, %v", n, err)
	}
	got := make([]byte, 9)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "head body" {
		t.Fatalf("read on a pipe: %q, %v", got, err)
	}
}

func TestNoAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates; make unit runs this test without it")
	}
	c, peer := pair(t)
	msg, buf := []byte("request"), make([]byte, 64)
	go func() {
		b := make([]byte, 64)
		for {
			n, err := peer.Read(b)
			if err != nil {
				return
			}
			if _, err := peer.Write(b[:n]); err != nil {
				return
			}
		}
	}()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	allocs := testing.AllocsPerRun(200, func() {
		if err := c.WriteWait(msg, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Writev(msg[:3], msg[3:5], msg[5:]); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per exchange, want 0", allocs)
	}
}

// before runs once the write is done, and false skips the wait.
func TestWriteWaitBefore(t *testing.T) {
	c, peer := pair(t)
	calls := 0
	start := time.Now()
	err := c.WriteWait([]byte("hello"), func() bool {
		calls++
		got := make([]byte, 5)
		_ = peer.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := io.ReadFull(peer, got); err != nil {
			t.Errorf("the message was not all written before: %v", err)
		}
		return false
	})
	if err != nil || calls != 1 {
		t.Fatalf("WriteWait: %v after %d calls of before", err, calls)
	}
	if waited := time.Since(start); waited > time.Second {
		t.Fatalf("WriteWait waited %v although before said not to", waited)
	}
}

// A Close from another goroutine ends the wait.
func TestWriteWaitClosed(t *testing.T) {
	c, _ := pair(t)
	go func() {
		time.Sleep(20 * time.Millisecond)
		c.Close()
	}()
	if err := c.WriteWait([]byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after the wait was closed: %v; want net.ErrClosed", err)
	}
}
