package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/handoff-proxy/handoff/pkg/origin"

	"github.com/handoff-proxy/handoff/pkg/handofftest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestClassify(t *testing.T) {
	opErr := func(errno syscall.Errno) error {
		return &url.Error{Op: "Get", URL: "http://x", Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", errno)}}
	}
	tests := []struct {
		name string
		err  error
		want Outcome
	}{
		{name: "nil", err: nil, want: OK},
		{name: "refused", err: opErr(syscall.ECONNREFUSED), want: Refused},
		{name: "reset", err: opErr(syscall.ECONNRESET), want: Reset},
		{name: "broken pipe", err: opErr(syscall.EPIPE), want: Reset},
		{name: "deadline", err: fmt.Errorf("get: %w", context.DeadlineExceeded), want: Timeout},
		{name: "net timeout", err: &net.OpError{Op: "read", Err: timeoutErr{}}, want: Timeout},
		{name: "eof", err: fmt.Errorf("read: %w", io.EOF), want: EOF},
		{name: "unexpected eof", err: io.ErrUnexpectedEOF, want: EOF},
		{name: "other", err: errors.New("tls: bad certificate"), want: Other},
		{name: "text is not enough", err: errors.New("connection refused"), want: Other},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.err); got != tt.want {
				t.Errorf("Classify(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

// closedAddr returns an address nothing listens on.
func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// resetServer reads each request's head, then aborts the connection with
// an RST (SO_LINGER 0, tcp(7)).
func resetServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil || line == "\r\n" {
						break
					}
				}
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

func TestRunOutcomes(t *testing.T) {
	ok := httptest.NewServer(origin.Handler(origin.Options{Name: "alpha"}))
	t.Cleanup(ok.Close)
	unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	t.Cleanup(unavailable.Close)
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); hang.Close() })

	tests := []struct {
		name    string
		url     string
		timeout time.Duration
		want    Outcome
	}{
		{name: "ok", url: ok.URL + "/", want: OK},
		{name: "refused", url: "http://" + closedAddr(t) + "/", want: Refused},
		{name: "reset", url: "http://" + resetServer(t) + "/", want: Reset},
		{name: "status", url: unavailable.URL + "/", want: Status},
		{name: "timeout", url: hang.URL + "/", timeout: 100 * time.Millisecond, want: Timeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Run(context.Background(), Options{
				URL: tt.url, Rate: 200, Duration: 200 * time.Millisecond,
				KeepAlive: 0.5, Timeout: tt.timeout, Logger: handofftest.Logger(t),
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%+v", res)
			if res.Sent < 20 {
				t.Fatalf("sent %d requests in 200ms at 200/s, want about 40", res.Sent)
			}
			if got := res.Outcomes[tt.want]; got != res.Sent {
				t.Errorf("outcomes %v: want all %d %q", res.Outcomes, res.Sent, tt.want)
			}
			if res.OK+res.Failed != res.Sent {
				t.Errorf("ok %d + failed %d != sent %d", res.OK, res.Failed, res.Sent)
			}
			wantRefused, wantReset := int64(0), int64(0)
			switch tt.want {
			case Refused:
				wantRefused = res.Sent
			case Reset:
				wantReset = res.Sent
			case OK:
				if res.Backends["alpha"] != res.Sent {
					t.Errorf("backends %v, want all alpha", res.Backends)
				}
			}
			for _, smp := range res.Samples {
				if !strings.HasPrefix(smp, string(tt.want)+" on new connection: ") && !strings.HasPrefix(smp, string(tt.want)+" on keep-alive connection: ") && !strings.HasPrefix(smp, string(tt.want)+" on reused keep-alive connection: ") {
					t.Errorf("sample %q does not say outcome and connection", smp)
				}
			}
			if res.Refused != wantRefused || res.Reset != wantReset {
				t.Errorf("refused %d reset %d, want %d %d", res.Refused, res.Reset, wantRefused, wantReset)
			}
		})
	}
}

func TestRunKeepAliveMix(t *testing.T) {
	tests := []struct {
		name      string
		keepAlive float64
		// wantNew reports the new connections expected as a function
		// of requests sent: min and max.
		minNew, maxNew func(sent int64) int64
	}{
		{name: "all new", keepAlive: 0,
			minNew: func(s int64) int64 { return s }, maxNew: func(s int64) int64 { return s }},
		{name: "all pooled", keepAlive: 1,
			minNew: func(int64) int64 { return 1 }, maxNew: func(s int64) int64 { return 5 }},
		{name: "half", keepAlive: 0.5,
			minNew: func(s int64) int64 { return s / 2 }, maxNew: func(s int64) int64 { return s/2 + 6 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var conns atomic.Int64
			srv := httptest.NewUnstartedServer(origin.Handler(origin.Options{Name: "b"}))
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					conns.Add(1)
				}
			}
			srv.Start()
			t.Cleanup(srv.Close)
			res, err := Run(context.Background(), Options{URL: srv.URL, Rate: 100, Duration: 300 * time.Millisecond, KeepAlive: tt.keepAlive})
			if err != nil {
				t.Fatal(err)
			}
			if res.OK != res.Sent {
				t.Fatalf("%+v: want every request ok", res)
			}
			n := conns.Load()
			if n < tt.minNew(res.Sent) || n > tt.maxNew(res.Sent) {
				t.Errorf("%d connections for %d requests, want %d..%d", n, res.Sent, tt.minNew(res.Sent), tt.maxNew(res.Sent))
			}
		})
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	srv := httptest.NewServer(origin.Handler(origin.Options{}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(150*time.Millisecond, cancel)
	start := time.Now()
	res, err := Run(ctx, Options{URL: srv.URL, Rate: 100})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Run took %v after cancel at 150ms", d)
	}
	if res.Sent == 0 || res.OK != res.Sent {
		t.Errorf("%+v: want some requests, all ok", res)
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{name: "no url", opts: Options{}},
		{name: "keep-alive above 1", opts: Options{URL: "http://127.0.0.1:1/", KeepAlive: 1.5}},
		{name: "bad url", opts: Options{URL: "http://[::1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Run(context.Background(), tt.opts); err == nil {
				t.Error("want an error")
			}
		})
	}
}

func TestRunSkipsAboveMaxInFlight(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	time.AfterFunc(300*time.Millisecond, func() { close(release) })
	res, err := Run(context.Background(), Options{URL: srv.URL, Rate: 100, Duration: 200 * time.Millisecond, MaxInFlight: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 3 || res.Skipped < 10 {
		t.Errorf("%+v: want 3 sent and the rest skipped", res)
	}
}
