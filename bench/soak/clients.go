package soak

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/coder/websocket"
)

// start launches every client; they return when ctx is done.
func (l *load) start(ctx context.Context) {
	keep := &http.Transport{MaxIdleConnsPerHost: l.mix.KeepAlive, MaxIdleConns: l.mix.KeepAlive, IdleConnTimeout: time.Minute}
	fresh := &http.Transport{DisableKeepAlives: true}
	for range l.mix.KeepAlive {
		l.wg.Go(func() { l.getLoop(ctx, keep) })
	}
	for range l.mix.NewConn {
		l.wg.Go(func() { l.getLoop(ctx, fresh) })
	}
	for i := range l.mix.Slow {
		l.wg.Go(func() { l.slowLoop(ctx, i) })
	}
	for i := range l.mix.WebSocket {
		// Staggered so that reconnects are spread over the period instead
		// of making the goroutine count a sawtooth.
		first := wsReconnect * time.Duration(i+1) / time.Duration(l.mix.WebSocket)
		l.wg.Go(func() { l.wsLoop(ctx, first) })
	}
	// Close the pools once the clients are done so that the proxy sees
	// every client connection go away.
	l.wg.Go(func() {
		<-ctx.Done()
		keep.CloseIdleConnections()
		fresh.CloseIdleConnections()
	})
}

// pause waits d or until ctx is done; it reports whether to go on.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// done counts a finished operation: a failure only if the load was not
// being stopped (a request cut by the end of the soak is not the proxy's
// fault).
func (l *load) done(ctx context.Context, err error) {
	if err == nil {
		l.requests.Add(1)
		return
	}
	if ctx.Err() != nil {
		return
	}
	l.requests.Add(1)
	l.fail(err)
}

func (l *load) getLoop(ctx context.Context, tr *http.Transport) {
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	url := "http://" + l.addr + "/1k"
	for pause(ctx, l.mix.Interval) {
		l.done(ctx, get(ctx, client, url, 1024))
	}
}

func get(ctx context.Context, c *http.Client, url string, want int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return fmt.Errorf("read body of %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK || n != int64(want) {
		return fmt.Errorf("get %s: status %d, %d bytes", url, resp.StatusCode, n)
	}
	return nil
}

// Slow client pacing: well inside handoff's 10s ReadHeader default, so a
// correct proxy never times these out.
const (
	slowStep        = 200 * time.Millisecond
	slowHeaderLines = 8
	slowBody        = 4 << 10
	slowBodyPiece   = 512
)

func (l *load) slowLoop(ctx context.Context, i int) {
	post := i%2 == 1
	for pause(ctx, slowStep) {
		l.done(ctx, l.slowOnce(ctx, post))
		post = !post
	}
}

// slowOnce sends one request the way a slow mobile client does: the
// request line, then a header every 200ms, then for a POST the body in
// 512-byte pieces every 200ms; then reads the response.
func (l *load) slowOnce(ctx context.Context, post bool) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", l.addr)
	if err != nil {
		return fmt.Errorf("slow client dial: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))

	var head bytes.Buffer
	if post {
		head.WriteString("POST /echo-discard HTTP/1.1\r\nContent-Length: " + strconv.Itoa(slowBody) + "\r\n")
	} else {
		head.WriteString("GET /1k HTTP/1.1\r\n")
	}
	head.WriteString("Host: " + l.addr + "\r\n")
	if _, err := c.Write(head.Bytes()); err != nil {
		return fmt.Errorf("slow client write: %w", err)
	}
	for i := range slowHeaderLines {
		if !pause(ctx, slowStep) {
			return ctx.Err()
		}
		if _, err := fmt.Fprintf(c, "X-Slow-%d: %s\r\n", i, bytes.Repeat([]byte{'s'}, 32)); err != nil {
			return fmt.Errorf("slow client header: %w", err)
		}
	}
	if _, err := io.WriteString(c, "Connection: close\r\n\r\n"); err != nil {
		return fmt.Errorf("slow client end of headers: %w", err)
	}
	if post {
		piece := bytes.Repeat([]byte{'p'}, slowBodyPiece)
		for range slowBody / slowBodyPiece {
			if !pause(ctx, slowStep) {
				return ctx.Err()
			}
			if _, err := c.Write(piece); err != nil {
				return fmt.Errorf("slow client body: %w", err)
			}
		}
	}
	method := http.MethodGet
	if post {
		method = http.MethodPost
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		return fmt.Errorf("slow client read response: %w", err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return fmt.Errorf("slow client read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("slow client: status %d", resp.StatusCode)
	}
	return nil
}

// WebSocket pacing.
const (
	wsEvery     = 20 * time.Millisecond
	wsReconnect = 30 * time.Second
)

func (l *load) wsLoop(ctx context.Context, first time.Duration) {
	url := "ws://" + l.addr + "/ws"
	msg := bytes.Repeat([]byte{'w'}, 64)
	for life := first; ctx.Err() == nil; life = wsReconnect {
		err := l.wsSession(ctx, url, msg, life)
		if err != nil {
			l.done(ctx, err)
			pause(ctx, time.Second)
		}
	}
}

// wsSession echoes messages on one connection for life, then closes
// it cleanly (RFC 6455 §7: close handshake), so that the proxy's tunnel
// teardown is exercised too. Each echo counts as a request.
func (l *load) wsSession(ctx context.Context, url string, msg []byte, life time.Duration) error {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	c, _, err := websocket.Dial(dctx, url, nil)
	cancel()
	if err != nil {
		return fmt.Errorf("websocket dial: %w", err)
	}
	defer c.CloseNow()
	end := time.Now().Add(life)
	for time.Now().Before(end) {
		if !pause(ctx, wsEvery) {
			return nil
		}
		octx, ocancel := context.WithTimeout(ctx, 10*time.Second)
		err := echoOnce(octx, c, msg)
		ocancel()
		if err != nil {
			return err
		}
		l.done(ctx, nil)
	}
	if err := c.Close(websocket.StatusNormalClosure, "reconnect"); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("websocket close: %w", err)
	}
	return nil
}

func echoOnce(ctx context.Context, c *websocket.Conn, msg []byte) error {
	if err := c.Write(ctx, websocket.MessageBinary, msg); err != nil {
		return fmt.Errorf("websocket write: %w", err)
	}
	_, got, err := c.Read(ctx)
	if err != nil {
		return fmt.Errorf("websocket read: %w", err)
	}
	if !bytes.Equal(got, msg) {
		return errors.New("websocket echo differs")
	}
	return nil
}
