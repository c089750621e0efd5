package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/handoff-proxy/handoff/pkg/config"

	"github.com/handoff-proxy/handoff/pkg/handofftest"
)

func TestIdleFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newActivity(time.Now)
		time.Sleep(3 * time.Second)
		if got := a.idleFor(); got != 3*time.Second {
			t.Fatalf("idle since start: %v, want 3s", got)
		}
		a.connOpened()
		time.Sleep(time.Minute)
		if got := a.idleFor(); got != 0 {
			t.Fatalf("with an open connection: idle %v, want 0", got)
		}
		a.requestStarted()
		a.connClosed()
		time.Sleep(time.Second)
		if a.idleFor() != 0 || a.shouldExitIdle(time.Millisecond) {
			t.Fatal("idle while a request is in flight (a hijacked WebSocket keeps its handler)")
		}
		a.requestDone()
		time.Sleep(4 * time.Second)
		if got := a.idleFor(); got != 4*time.Second {
			t.Fatalf("idle after the last request: %v, want 4s", got)
		}
		tests := []struct {
			name     string
			idleExit time.Duration
			want     bool
		}{
			{name: "never", idleExit: 0, want: false},
			{name: "not yet", idleExit: 5 * time.Second, want: false},
			{name: "exactly", idleExit: 4 * time.Second, want: true},
			{name: "past", idleExit: time.Second, want: true},
		}
		for _, tt := range tests {
			if got := a.shouldExitIdle(tt.idleExit); got != tt.want {
				t.Errorf("%s: shouldExitIdle(%v) = %v, want %v", tt.name, tt.idleExit, got, tt.want)
			}
		}
	})
}

func TestWaitFresh(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	tests := []struct {
		name    string
		freshMs int // when the last fresh connection reaches a handler; -1 never
		cancel  time.Duration
		want    time.Duration
	}{
		{name: "none waiting", freshMs: 0, want: 0},
		{name: "served after 40ms", freshMs: 40, want: 40 * time.Millisecond},
		{name: "never served: grace", freshMs: -1, want: freshGrace},
		{name: "deadline first", freshMs: -1, cancel: time.Second, want: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				fresh := func() int {
					if tt.freshMs >= 0 && time.Since(start) >= time.Duration(tt.freshMs)*time.Millisecond {
						return 0
					}
					return 1
				}
				ctx := context.Background()
				if tt.cancel > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.cancel)
					defer cancel()
				}
				waitFresh(ctx, fresh, 0, log)
				if got := time.Since(start); got != tt.want {
					t.Errorf("waited %v, want %v", got, tt.want)
				}
			})
		})
	}
}

// fakeProto is a protocol server that records the order of calls.
type fakeProto struct {
	mu    sync.Mutex
	calls *[]string
}

func (f *fakeProto) rec(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	*f.calls = append(*f.calls, s)
}
func (f *fakeProto) Serve(net.Listener) error           { return nil }
func (f *fakeProto) Quiesce()                           { f.rec("quiesce") }
func (f *fakeProto) Shutdown(ctx context.Context) error { f.rec("shutdown"); return nil }
func (f *fakeProto) Close() error                       { f.rec("close"); return nil }

// TestDrainOrder: listeners close first, then drain waits for the accept
// loops, then quiesces, then waits for fresh connections.
func TestDrainOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls []string
		p := &fakeProto{calls: &calls}
		accepted := make(chan struct{})
		var fresh atomic.Int64
		fresh.Store(2)
		go func() {
			time.Sleep(10 * time.Millisecond)
			p.rec("accept loops done")
			close(accepted)
			// Between two polls (every 5ms from 10ms on), so that
			// the answer does not depend on which wakes first.
			time.Sleep(22 * time.Millisecond)
			fresh.Store(0)
		}()
		d := &drainer{
			log:            slog.New(slog.DiscardHandler),
			closeListeners: func() { p.rec("close listeners") },
			accepted:       accepted,
			servers:        []drainable{p},
			fresh:          func() int { return int(fresh.Load()) },
		}
		start := time.Now()
		d.drain(context.Background())
		if got := time.Since(start); got != 35*time.Millisecond {
			t.Errorf("drain took %v, want 35ms (the first poll after the fresh connections were served)", got)
		}
		want := "close listeners,accept loops done,quiesce"
		if got := strings.Join(calls, ","); got != want {
			t.Errorf("order %q, want %q", got, want)
		}
	})
}

// rawEcho is a protocol server for a made-up line protocol: it proves
// that connection counting, drain and idle exit do not depend on HTTP.
type rawEcho struct {
	t  *connTracker
	wg sync.WaitGroup
}

func (e *rawEcho) Serve(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		if tc, ok := c.(*trackedConn); ok {
			tc.served.Store(true)
		}
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			defer c.Close()
			_, _ = io.Copy(c, c)
		}()
	}
}
func (e *rawEcho) Quiesce()                       {}
func (e *rawEcho) Shutdown(context.Context) error { e.wg.Wait(); return nil }
func (e *rawEcho) Close() error                   { return nil }

func TestTrackerCountsAnyProtocol(t *testing.T) {
	act := newActivity(time.Now)
	tr := newConnTracker(act)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &rawEcho{t: tr}
	done := make(chan error, 1)
	go func() { done <- e.Serve(tr.listener("raw", ln, false)) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("echo: %q %v", line, err)
	}
	if n := tr.open(); n != 1 {
		t.Errorf("open connections %d, want 1", n)
	}
	if act.idleFor() != 0 {
		t.Error("idle with an open connection")
	}
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for tr.open() != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := tr.open(); n != 0 {
		t.Errorf("open connections after close: %d", n)
	}
	ln.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Serve: %v", err)
	}
	_ = e.Shutdown(context.Background())
}

func TestStatusLine(t *testing.T) {
	tests := []struct {
		name string
		in   string
		code int
		ok   bool
	}{
		{name: "431", in: "HTTP/1.1 431 Request Header Fields Too Large\r\n", code: 431, ok: true},
		{name: "1.0", in: "HTTP/1.0 400 Bad Request\r\n", code: 400, ok: true},
		{name: "body", in: "hello world, no status", ok: false},
		{name: "short", in: "HTTP/1.1 4", ok: false},
		{name: "h2 frame", in: "\x00\x00\x12\x04\x00\x00\x00\x00\x00", ok: false},
		{name: "letters", in: "HTTP/1.1 abc x", ok: false},
	}
	for _, tt := range tests {
		code, ok := statusLine([]byte(tt.in))
		if code != tt.code || ok != tt.ok {
			t.Errorf("%s: statusLine = %d, %v; want %d, %v", tt.name, code, ok, tt.code, tt.ok)
		}
	}
}

func FuzzStatusLine(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\n"))
	f.Add([]byte("HTTP/1.1 4"))
	f.Fuzz(func(t *testing.T, b []byte) {
		code, ok := statusLine(b)
		if ok && (code < 0 || code > 999) {
			t.Fatalf("code %d out of range", code)
		}
	})
}

// TestServerAnswersAreLoggedAndCounted: a request net/http refuses
// without calling a handler (oversized headers: 431; malformed: 400) gets
// an access-log line and a handoff_requests_total count like any other.
func TestServerAnswersAreLoggedAndCounted(t *testing.T) {
	backend := echoBackend(t, "b")
	cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, hostOf(backend))
	on := true
	cfg.Log.Access = &on
	cfg.Limits.MaxHeaderBytes = 1024
	var buf syncBuffer
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{Config: cfg, Listeners: map[string]net.Listener{"http": ln}, Logger: handofftest.Logger(t),
		AccessLogger: slog.New(slog.NewJSONHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()

	tests := []struct {
		name string
		req  string
		want int
	}{
		{name: "oversized headers", req: "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 8<<10) + "\r\n\r\n", want: 431},
		{name: "malformed", req: "GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", want: 400},
		{name: "normal", req: "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", want: 200},
	}
	for _, tt := range tests {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, tt.req); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		res.Body.Close()
		c.Close()
		if res.StatusCode != tt.want {
			t.Fatalf("%s: status %d, want %d", tt.name, res.StatusCode, tt.want)
		}
	}
	var got []string
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		got = got[:0]
		for _, code := range []string{"431", "400", "200"} {
			if strings.Contains(buf.String(), `"status":`+code) {
				got = append(got, code)
			}
		}
		if len(got) == 3 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if len(got) != 3 {
		t.Errorf("access log has statuses %v, want 431, 400 and 200:\n%s", got, buf.String())
	}
	if n := strings.Count(buf.String(), `"msg":"request"`); n != 3 {
		t.Errorf("%d access-log lines, want exactly 3 (no double count):\n%s", n, buf.String())
	}
	var mb bytes.Buffer
	rec := &bufResponse{h: http.Header{}, b: &mb}
	srv.metrics.Handler().ServeHTTP(rec, mustReq(t, "/metrics"))
	for _, code := range []string{"431", "400"} {
		if !strings.Contains(mb.String(), `handoff_requests_total{code="`+code+`",route="",upstream=""} 1`) {
			t.Errorf("no handoff_requests_total count for %s:\n%s", code, grepLines(mb.String(), "handoff_requests_total"))
		}
	}
}

// TestAcceptErrorsAreLoggedAndCounted: accept failures (EMFILE) are
// warnings, rate-limited, and counted.
func TestAcceptErrorsAreLoggedAndCounted(t *testing.T) {
	var buf syncBuffer
	s := &Server{log: slog.New(slog.NewTextHandler(&buf, nil)), now: time.Now, acceptLog: rateLimitedLog{interval: time.Hour}}
	s.metrics = newTestMetrics()
	act := newActivity(time.Now)
	tr := newConnTracker(act)
	tr.acceptFailed = s.acceptFailed
	ln := tr.listener("http", &failingListener{n: 5}, true)
	for range 5 {
		if _, err := ln.Accept(); err == nil {
			t.Fatal("Accept succeeded")
		}
	}
	if n := strings.Count(buf.String(), "accept failed"); n != 1 {
		t.Errorf("%d warn lines for 5 failures in one interval, want 1:\n%s", n, buf.String())
	}
	if !strings.Contains(buf.String(), "level=WARN") {
		t.Errorf("accept failure not logged at warn: %s", buf.String())
	}
	var mb bytes.Buffer
	s.metrics.Handler().ServeHTTP(&bufResponse{h: http.Header{}, b: &mb}, mustReq(t, "/metrics"))
	if !strings.Contains(mb.String(), `handoff_accept_errors_total{listener="http"} 5`) {
		t.Errorf("accept errors not counted:\n%s", grepLines(mb.String(), "accept"))
	}
}

type failingListener struct{ n int }

func (l *failingListener) Accept() (net.Conn, error) {
	return nil, &net.OpError{Op: "accept", Net: "tcp", Err: errors.New("too many open files")}
}
func (l *failingListener) Close() error   { return nil }
func (l *failingListener) Addr() net.Addr { return &net.TCPAddr{} }

// TestReloadResultHasTime: the outcome of POST /api/v1/reload carries the
// time the reload finished (it was the zero time when set in a defer).
func TestReloadResultHasTime(t *testing.T) {
	backend := echoBackend(t, "b")
	cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, hostOf(backend))
	r := serve(t, cfg, func() (*config.Config, error) { return cfg, nil })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := r.srv.Reload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.At.IsZero() {
		t.Fatalf("reload result has no time: %+v", res)
	}
	if last, ok := r.srv.LastReload(); !ok || !last.At.Equal(res.At) {
		t.Fatalf("LastReload %+v, want %+v", last, res)
	}
}

func TestLastReloadTimestampSetAtStart(t *testing.T) {
	backend := echoBackend(t, "b")
	cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, hostOf(backend))
	r := serve(t, cfg, nil)
	var mb bytes.Buffer
	r.srv.metrics.Handler().ServeHTTP(&bufResponse{h: http.Header{}, b: &mb}, mustReq(t, "/metrics"))
	line := grepLines(mb.String(), "handoff_config_last_reload_success_timestamp_seconds ")
	if line == "" || strings.HasSuffix(strings.TrimSpace(line), " 0") {
		t.Fatalf("last reload timestamp after start: %q", line)
	}
}

// TestTrackedHotPathDoesNotAllocate: what every request and every write
// on a traffic connection pays for tracking must not allocate.
func TestTrackedHotPathDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector; make unit runs this without -race")
	}
	act := newActivity(time.Now)
	tr := newConnTracker(act)
	tc := &trackedConn{Conn: discardConn{}, t: tr, sniff: true}
	tc.handlers.Store(1)
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	body := []byte("some body bytes")
	var gs generations
	gs.current.Store(&generation{idle: make(chan struct{})})
	ctx := context.WithValue(context.Background(), connKey{}, tc)
	allocs := testing.AllocsPerRun(1000, func() {
		markServed(ctx)
		act.requestStarted()
		g := gs.acquire()
		_, _ = tc.Write(resp)
		_, _ = tc.Write(body)
		g.release()
		act.requestDone()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per request, want 0", allocs)
	}
}

type discardConn struct{ net.Conn }

func (discardConn) Write(b []byte) (int, error) { return len(b), nil }
