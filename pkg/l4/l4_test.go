package l4

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/handofftest"
)

// echoServer echoes every connection and half-closes after EOF.
func echoServer(t testing.TB) string {
	return handofftest.TCPServer(t, func(c net.Conn) {
		io.Copy(c, c)
		c.(*net.TCPConn).CloseWrite()
	})
}

// staticPicker picks the addresses in order, skipping tried ones.
type staticPicker []string

func (p staticPicker) Pick(_ netip.Addr, tried func(string) bool) (Target, bool) {
	for _, a := range p {
		if !tried(a) {
			return Target{Address: a}, true
		}
	}
	return Target{}, false
}

type countObserver struct {
	mu      sync.Mutex
	done    []ConnStats
	failed  atomic.Int64
	dropped atomic.Int64
}

func (o *countObserver) ConnDone(_ string, s ConnStats) {
	o.mu.Lock()
	o.done = append(o.done, s)
	o.mu.Unlock()
}
func (o *countObserver) ConnectFailed(string, string) { o.failed.Add(1) }
func (o *countObserver) MirrorDropped(string, string, string) {
	o.dropped.Add(1)
}

// proxyServer serves p on a port-0 listener relaying to pick.
func proxyServer(t testing.TB, p *Proxy, pick Picker) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); cancel(); wg.Wait(); p.Wait() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); p.ServeConn(ctx, c, pick) }()
		}
	}()
	return ln.Addr().String()
}

// roundTrip sends n random bytes, half-closes, and checks the echo.
func roundTrip(t testing.TB, addr string, n int) time.Duration {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(rand.Uint32())
	}
	start := time.Now()
	sent := sha256.New()
	go func() {
		for left := n; left > 0; left -= len(data) {
			b := data[:min(left, len(data))]
			sent.Write(b)
			if _, err := c.Write(b); err != nil {
				return
			}
		}
		c.(*net.TCPConn).CloseWrite()
	}()
	got := sha256.New()
	m, err := io.Copy(got, c)
	if err != nil || m != int64(n) {
		t.Fatalf("echo: %d bytes of %d, %v", m, n, err)
	}
	if !bytes.Equal(sent.Sum(nil), got.Sum(nil)) {
		t.Fatal("echoed bytes differ")
	}
	return time.Since(start)
}

func TestRelayLargeHalfClose(t *testing.T) {
	n := 64 << 20
	if testing.Short() {
		n = 8 << 20
	}
	obs := &countObserver{}
	p := NewProxy(ProxyOptions{Listener: "t", Observer: obs})
	addr := proxyServer(t, p, staticPicker{echoServer(t)})
	roundTrip(t, addr, n)
	time.Sleep(50 * time.Millisecond)
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.done) != 1 || obs.done[0].Up != int64(n) || obs.done[0].Down != int64(n) || obs.done[0].Result != "ok" {
		t.Fatalf("stats %+v", obs.done)
	}
}

func TestRelayRetriesDeadTarget(t *testing.T) {
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	obs := &countObserver{}
	p := NewProxy(ProxyOptions{Listener: "t", Observer: obs, ConnectTimeout: time.Second})
	addr := proxyServer(t, p, staticPicker{deadAddr, echoServer(t)})
	roundTrip(t, addr, 1000)
	if obs.failed.Load() != 1 {
		t.Fatalf("connect failures %d, want 1", obs.failed.Load())
	}
}

func TestRelayNoTargetResets(t *testing.T) {
	p := NewProxy(ProxyOptions{})
	addr := proxyServer(t, p, staticPicker{})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return // reset before connect returned: refused
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read succeeded on a connection with no target")
	}
}

func TestRelayIdleTimeout(t *testing.T) {
	p := NewProxy(ProxyOptions{IdleTimeout: 100 * time.Millisecond})
	addr := proxyServer(t, p, staticPicker{echoServer(t)})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF && err == nil {
		t.Fatalf("read: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("idle connection closed after %v", d)
	}
}

// TestMirrorStalledDoesNotSlowPrimary: a mirror that never reads is
// dropped once its buffer is full, and the primary transfer completes.
func TestMirrorStalledDoesNotSlowPrimary(t *testing.T) {
	stall, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stall.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := stall.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // never read
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	}()
	obs := &countObserver{}
	p := NewProxy(ProxyOptions{Observer: obs, Mirrors: []string{stall.Addr().String()}, MirrorBuffer: 1 << 20})
	addr := proxyServer(t, p, staticPicker{echoServer(t)})
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	d := roundTrip(t, addr, 64<<20)
	if obs.dropped.Load() != 1 {
		t.Fatalf("mirror drops %d, want 1", obs.dropped.Load())
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if after.HeapInuse > before.HeapInuse+32<<20 {
		t.Fatalf("heap grew from %d to %d", before.HeapInuse, after.HeapInuse)
	}
	t.Logf("64 MiB each way with a stalled mirror in %v", d)
}

func TestMirrorGetsEveryByte(t *testing.T) {
	sink, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := sink.Accept()
		if err != nil {
			return
		}
		h := sha256.New()
		io.Copy(h, c)
		c.Close()
		got <- h.Sum(nil)
	}()
	p := NewProxy(ProxyOptions{Mirrors: []string{sink.Addr().String()}})
	addr := proxyServer(t, p, staticPicker{echoServer(t)})
	c, _ := net.Dial("tcp", addr)
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<18)
	go func() { c.Write(data); c.(*net.TCPConn).CloseWrite() }()
	io.Copy(io.Discard, c)
	c.Close()
	want := sha256.Sum256(data)
	select {
	case h := <-got:
		if !bytes.Equal(h, want[:]) {
			t.Fatal("mirror bytes differ")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("mirror got no end of stream")
	}
}

// BenchmarkRelay measures throughput through the relay against a direct
// connection (splice on Linux), 256 MiB each way per iteration;
// -benchtime=4x gives the 1 GiB each way.
func BenchmarkRelay(b *testing.B) {
	n := 256 << 20
	echo := echoServer(b)
	p := NewProxy(ProxyOptions{})
	addr := proxyServer(b, p, staticPicker{echo})
	for _, bc := range []struct{ name, addr string }{{"direct", echo}, {"handoff", addr}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(2 * n))
			for b.Loop() {
				roundTrip(b, bc.addr, n)
			}
		})
	}
}
