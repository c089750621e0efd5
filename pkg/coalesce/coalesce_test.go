package coalesce

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/handoff-proxy/handoff/pkg/handofftest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair returns a coalescing Conn and the peer's end of a loopback TCP
// connection.
func pair(t *testing.T, o Options) (*Conn, net.Conn) {
	t.Helper()
	c, peer := handofftest.TCPPair(t)
	cc := New(c, o)
	t.Cleanup(func() {
		cc.Close()
		peer.Close()
	})
	return cc, peer
}

func TestConcurrentWritesStayWholeAndInOrder(t *testing.T) {
	tests := []struct {
		name string
		o    Options
	}{
		{name: "defaults"},
		{name: "tiny pending bound", o: Options{MaxPending: 64}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, peer := pair(t, tt.o)
			const writers, msgs = 8, 500
			var wg sync.WaitGroup
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range msgs {
						// A frame: length, writer, sequence, padding.
						body := bytes.Repeat([]byte{byte(w)}, 1+(i*7)%300)
						f := binary.BigEndian.AppendUint32(nil, uint32(8+len(body)))
						f = binary.BigEndian.AppendUint32(f, uint32(w))
						f = binary.BigEndian.AppendUint32(f, uint32(i))
						if _, err := c.Write(append(f, body...)); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			next := make([]uint32, writers)
			errc := make(chan error, 1)
			go func() {
				for range writers * msgs {
					var h [4]byte
					if _, err := io.ReadFull(peer, h[:]); err != nil {
						errc <- err
						return
					}
					f := make([]byte, binary.BigEndian.Uint32(h[:]))
					if _, err := io.ReadFull(peer, f); err != nil {
						errc <- err
						return
					}
					w, i := binary.BigEndian.Uint32(f), binary.BigEndian.Uint32(f[4:])
					if w >= writers || i != next[w] {
						errc <- fmt.Errorf("frame from writer %d seq %d, want seq %d", w, i, next[w])
						return
					}
					for _, b := range f[8:] {
						if b != byte(w) {
							errc <- fmt.Errorf("writer %d seq %d: interleaved byte %d", w, i, b)
							return
						}
					}
					next[w]++
				}
				errc <- nil
			}()
			wg.Wait()
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestWriteBlocksWhilePendingIsFull(t *testing.T) {
	c, peer := pair(t, Options{MaxPending: 1 << 10})
	// Fill the socket buffers and then the pending queue: the peer
	// does not read.
	chunk := make([]byte, 64<<10)
	done := make(chan int64)
	go func() {
		var n int64
		for i := 0; i < 400; i++ { // 25 MiB, more than loopback buffers hold
			k, err := c.Write(chunk)
			n += int64(k)
			if err != nil {
				break
			}
		}
		done <- n
	}()
	select {
	case n := <-done:
		t.Fatalf("all writes returned (%d bytes) while the peer read nothing", n)
	case <-time.After(300 * time.Millisecond):
	}
	got, err := io.Copy(io.Discard, io.LimitReader(peer, 400*int64(len(chunk))))
	if err != nil {
		t.Fatal(err)
	}
	if n := <-done; n != got {
		t.Fatalf("writes returned %d bytes, peer read %d", n, got)
	}
}

func TestCloseWritesWhatIsQueued(t *testing.T) {
	c, peer := pair(t, Options{})
	want := bytes.Repeat([]byte("goaway "), 10000)
	if _, err := c.Write(want); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(peer)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("peer read %d bytes, want %d", len(got), len(want))
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v, want net.ErrClosed", err)
	}
}

func TestWriteErrorSurfaces(t *testing.T) {
	c, peer := pair(t, Options{})
	// An RST from the peer: unread data in its receive queue makes
	// close(2) reset the connection.
	if _, err := peer.Write([]byte("unread")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	peer.(*net.TCPConn).SetLinger(0)
	peer.Close()
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		_, err = c.Write(make([]byte, 16<<10))
		if err == nil {
			err = c.Flush()
		}
	}
	if err == nil {
		t.Fatal("writes to a reset connection kept succeeding")
	}
	// The reader sees it too: the connection was closed underneath.
	buf := make([]byte, 100)
	for {
		if _, rerr := c.Read(buf); rerr != nil {
			break
		}
	}
}

func TestReads(t *testing.T) {
	tests := []struct {
		name string
		o    Options
	}{
		{name: "buffered"},
		{name: "small buffer", o: Options{ReadBuffer: 16}},
		{name: "unbuffered", o: Options{ReadBuffer: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, peer := pair(t, tt.o)
			want := bytes.Repeat([]byte("0123456789"), 5000)
			go func() {
				peer.Write(want)
				peer.(*net.TCPConn).CloseWrite()
			}()
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("read %d bytes, want %d", len(got), len(want))
			}
		})
	}
}

func TestLaterWritesGoStraightThroughUntilStart(t *testing.T) {
	tests := []struct {
		name         string
		start        bool
		wantFirstErr bool // the first Write after the close fails itself
	}{
		{name: "before start", wantFirstErr: true},
		{name: "after start", start: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := pair(t, Options{Later: true})
			if tt.start {
				c.Start()
			}
			c.Conn.Close() // underneath: a write to it fails at once
			_, err := c.Write([]byte("x"))
			if got := err != nil; got != tt.wantFirstErr {
				t.Fatalf("first write error %v, want an error: %v", err, tt.wantFirstErr)
			}
			if !tt.wantFirstErr {
				if err := c.Flush(); err == nil {
					t.Fatal("queued write to a closed connection: Flush reported no error")
				}
			}
		})
	}
}
