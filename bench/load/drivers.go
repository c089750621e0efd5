package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Window is the part of a run that is measured: Warmup first (traffic
// flows, nothing is counted), then Duration.
type Window struct {
	// Warmup before counting. Zero means none.
	Warmup time.Duration
	// Duration counted, at least 1s.
	Duration time.Duration
}

// WSOptions configure the WebSocket echo driver.
type WSOptions struct {
	// URL is a ws:// URL of an echo endpoint.
	URL string
	// Connections, each a closed loop of send-then-read-echo. Zero means 64.
	Connections int
	// MessageSize in bytes of each binary message. Zero means 64.
	MessageSize int
	Window
}

// RunWS opens Connections WebSockets and has each send a binary message
// and wait for its echo in a loop. One operation is one round trip; its
// latency runs from the write to the end of the echo.
func RunWS(ctx context.Context, o WSOptions) (Result, error) {
	if err := checkDuration(o.Duration); err != nil {
		return Result{}, fmt.Errorf("websocket: %w", err)
	}
	n := cmpInt(o.Connections, 64)
	size := cmpInt(o.MessageSize, 64)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	conns := make([]*websocket.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			_ = c.CloseNow()
		}
	}()
	for range n {
		dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
		c, _, err := websocket.Dial(dctx, o.URL, nil)
		dcancel()
		if err != nil {
			return Result{}, fmt.Errorf("dial websocket: %w", err)
		}
		conns = append(conns, c)
	}

	start := time.Now()
	from, to := start.Add(o.Warmup), start.Add(o.Warmup+o.Duration)
	lat := make([][]time.Duration, n)
	var errs atomic.Int64
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			msg := bytes.Repeat([]byte{'x'}, size)
			buf := make([]byte, 0, size)
			for {
				t0 := time.Now()
				if t0.After(to) || ctx.Err() != nil {
					return
				}
				if err := roundTrip(ctx, c, msg, &buf); err != nil {
					if ctx.Err() == nil {
						errs.Add(1)
					}
					return
				}
				if t1 := time.Now(); !t0.Before(from) && !t1.After(to) {
					lat[i] = append(lat[i], t1.Sub(t0))
				}
			}
		})
	}
	wg.Wait()
	r := summarize(UnitMessages, o.Duration, lat, errs.Load())
	if r.Ops == 0 {
		return r, fmt.Errorf("websocket: no round trip completed (%d errors)", r.Errors)
	}
	return r, nil
}

// errEcho is returned when the echo differs from what was sent.
var errEcho = errors.New("echo differs from message")

func roundTrip(ctx context.Context, c *websocket.Conn, msg []byte, buf *[]byte) error {
	if err := c.Write(ctx, websocket.MessageBinary, msg); err != nil {
		return fmt.Errorf("write message: %w", err)
	}
	_, rd, err := c.Reader(ctx)
	if err != nil {
		return fmt.Errorf("read echo: %w", err)
	}
	b := bytes.NewBuffer((*buf)[:0])
	if _, err := b.ReadFrom(rd); err != nil {
		return fmt.Errorf("read echo: %w", err)
	}
	*buf = b.Bytes()
	if !bytes.Equal(*buf, msg) {
		return errEcho
	}
	return nil
}

// TCPOptions configure the TCP throughput driver.
type TCPOptions struct {
	// Addr is host:port of a TCP service that streams bytes as soon as a
	// connection is open (the bench backend's source port, directly or
	// through an L4 proxy).
	Addr string
	// Connections read in parallel. Zero means 8.
	Connections int
	Window
}

// RunTCP reads from Connections TCP connections as fast as possible and
// reports MiB per second received during the window.
func RunTCP(ctx context.Context, o TCPOptions) (Result, error) {
	if err := checkDuration(o.Duration); err != nil {
		return Result{}, fmt.Errorf("tcp: %w", err)
	}
	n := cmpInt(o.Connections, 8)
	var d net.Dialer
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for range n {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c, err := d.DialContext(dctx, "tcp", o.Addr)
		cancel()
		if err != nil {
			return Result{}, fmt.Errorf("dial tcp: %w", err)
		}
		conns = append(conns, c)
	}
	var total atomic.Int64
	var errs atomic.Int64
	var stopping atomic.Bool
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			buf := make([]byte, 256<<10)
			for {
				k, err := c.Read(buf)
				total.Add(int64(k))
				if err != nil {
					if !stopping.Load() && !errors.Is(err, io.EOF) {
						errs.Add(1)
					}
					return
				}
			}
		})
	}
	stopAll := func() {
		stopping.Store(true)
		for _, c := range conns {
			_ = c.Close()
		}
		wg.Wait()
	}
	wait := func(d time.Duration) error {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	}
	if err := wait(o.Warmup); err != nil {
		stopAll()
		return Result{}, fmt.Errorf("tcp warm-up: %w", err)
	}
	before, t0 := total.Load(), time.Now()
	if err := wait(o.Duration); err != nil {
		stopAll()
		return Result{}, fmt.Errorf("tcp run: %w", err)
	}
	after, elapsed := total.Load(), time.Since(t0)
	stopAll()
	mib := float64(after-before) / (1 << 20)
	r := Result{Unit: UnitMiB, Ops: mib, Elapsed: elapsed, Rate: mib / elapsed.Seconds(), Errors: errs.Load()}
	if after == before {
		return r, fmt.Errorf("tcp: no byte received (%d errors)", r.Errors)
	}
	return r, nil
}
