package proxy

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/handofftest"
	"github.com/handoff-proxy/handoff/pkg/health"
	"github.com/handoff-proxy/handoff/pkg/reqinfo"
	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// recordHealth finds every target available and records the reports.
type recordHealth struct {
	mu      sync.Mutex
	reports []string // "<target index> <outcome> <status>"
	index   map[*upstream.Target]int
}

func newRecordHealth(p *upstream.Pool) *recordHealth {
	rh := &recordHealth{index: map[*upstream.Target]int{}}
	for i, t := range p.Targets() {
		rh.index[t] = i
	}
	return rh
}

func (h *recordHealth) Available(*upstream.Target) bool { return true }

func (h *recordHealth) Report(t *upstream.Target, r health.Result) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := string(rune('0'+h.index[t])) + " " + r.Outcome.String()
	if r.Status != 0 {
		s += " " + http.StatusText(r.Status)
	}
	h.reports = append(h.reports, s)
}

func (h *recordHealth) got() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.reports, ", ")
}

// newProxy builds a Handler over targets with a recording Health, for
// tests that call ServeHTTP directly.
func newProxy(t *testing.T, cfg config.Upstream, targets []string, logger *slog.Logger) (*Handler, *recordHealth) {
	t.Helper()
	for _, a := range targets {
		cfg.Targets = append(cfg.Targets, config.Target{Address: a})
	}
	pool, err := upstream.NewRegistry().NewPool("api", PoolSpec(cfg))
	if err != nil {
		t.Fatal(err)
	}
	trs := NewTransports(nil)
	t.Cleanup(trs.Close)
	if logger == nil {
		logger = handofftest.Logger(t)
	}
	rh := newRecordHealth(pool)
	h, err := New(Options{Pool: pool, Upstream: cfg, Selector: firstSelector{pool.Targets()}, Transports: trs, Health: rh, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	return h, rh
}

// serve sends one request through h and returns the recorder and the
// request's reqinfo.
func serve(t *testing.T, h *Handler, method string) (*httptest.ResponseRecorder, *reqinfo.Info) {
	t.Helper()
	ctx, info := reqinfo.With(ctxTimeout(t))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, "/", nil).WithContext(ctx))
	return rec, info
}

// diesAfterOne serves one keep-alive response on its first connection,
// then closes its listener (so a new dial is refused) and closes that
// connection as soon as the next request arrives on it, without an
// answer: the pooled connection is dead and the re-dial refused.
func diesAfterOne(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		ln.Close()
		_, _ = http.ReadRequest(br)
	}()
	return ln.Addr().String()
}

// TestDeadKeepAliveRedialRefused pins the bug where a GET whose pooled
// keep-alive connection had died, and whose re-dial was refused, got 502:
// the GotConn hook had marked it connected. Nothing of it reached a live
// server, so it is a connect failure, retried on another target. A POST
// on the dead connection was written, so it is not retried.
func TestDeadKeepAliveRedialRefused(t *testing.T) {
	tests := []struct {
		name        string
		method      string
		wantStatus  int
		wantRetries int
		wantReports string
	}{
		{name: "get", method: "GET", wantStatus: 200, wantRetries: 1, wantReports: "0 success OK, 0 connect_failed, 1 success OK"},
		{name: "post", method: "POST", wantStatus: 502, wantReports: "0 success OK, 0 failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			live := newBackend(t, http.HandlerFunc(echoHandler))
			h, rh := newProxy(t, config.Upstream{}, []string{diesAfterOne(t), live.Listener.Addr().String()}, nil)
			if rec, _ := serve(t, h, "GET"); rec.Code != 200 || rec.Body.String() != "ok" {
				t.Fatalf("first request: %d %q", rec.Code, rec.Body)
			}
			rec, info := serve(t, h, tt.method)
			if rec.Code != tt.wantStatus || info.Retries != tt.wantRetries {
				t.Errorf("got %d with %d retries, want %d with %d", rec.Code, info.Retries, tt.wantStatus, tt.wantRetries)
			}
			if got := rh.got(); got != tt.wantReports {
				t.Errorf("health heard %q, want %q", got, tt.wantReports)
			}
		})
	}
}

// TestRetryOn: what each retry_on entry retries, for which methods, and
// what Health hears about each attempt.
func TestRetryOn(t *testing.T) {
	tests := []struct {
		name        string
		retryOn     []string
		method      string
		targets     []string // "hang", "500", "503", "dead", "live"
		wantStatus  int
		wantBody    string
		wantRetries int
		wantReports string
	}{
		{name: "timeout retried for get", method: "GET", targets: []string{"hang", "live"},
			wantStatus: 200, wantRetries: 1, wantReports: "0 timeout, 1 success OK"},
		{name: "timeout not retried for post", method: "POST", targets: []string{"hang", "live"},
			wantStatus: 504, wantReports: "0 timeout"},
		{name: "timeout not retried unless listed", retryOn: []string{"connect_failure"}, method: "GET", targets: []string{"hang", "live"},
			wantStatus: 504, wantReports: "0 timeout"},
		{name: "5xx not retried by default", method: "GET", targets: []string{"500", "live"},
			wantStatus: 500, wantBody: "from 500", wantReports: "0 success Internal Server Error"},
		{name: "5xx retried with status_5xx", retryOn: []string{"status_5xx"}, method: "GET", targets: []string{"500", "live"},
			wantStatus: 200, wantRetries: 1, wantReports: "0 success Internal Server Error, 1 success OK"},
		{name: "5xx not retried for post", retryOn: []string{"status_5xx"}, method: "POST", targets: []string{"500", "live"},
			wantStatus: 500, wantBody: "from 500", wantReports: "0 success Internal Server Error"},
		{name: "last 5xx kept when the retry fails", retryOn: []string{"connect_failure", "status_5xx"}, method: "GET", targets: []string{"503", "dead"},
			wantStatus: 503, wantBody: "from 503", wantRetries: 1, wantReports: "0 success Service Unavailable, 1 connect_failed"},
		{name: "5xx after 5xx: the last one", retryOn: []string{"status_5xx"}, method: "GET", targets: []string{"500", "503"},
			wantStatus: 503, wantBody: "from 503", wantRetries: 1, wantReports: "0 success Internal Server Error, 1 success Service Unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			block := make(chan struct{})
			var targets []string
			for _, k := range tt.targets {
				var hf http.HandlerFunc
				switch k {
				case "dead":
					targets = append(targets, deadAddr(t))
					continue
				case "hang":
					hf = func(http.ResponseWriter, *http.Request) { <-block }
				case "500", "503":
					code := map[string]int{"500": 500, "503": 503}[k]
					hf = func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code); io.WriteString(w, "from "+k) }
				default:
					hf = echoHandler
				}
				targets = append(targets, newBackend(t, hf).Listener.Addr().String())
			}
			t.Cleanup(func() { close(block) })
			cfg := config.Upstream{RetryOn: tt.retryOn, Timeouts: config.UpstreamTimeouts{ResponseHeader: 100 * time.Millisecond}}
			h, rh := newProxy(t, cfg, targets, nil)
			rec, info := serve(t, h, tt.method)
			if rec.Code != tt.wantStatus || info.Retries != tt.wantRetries {
				t.Errorf("got %d with %d retries, want %d with %d", rec.Code, info.Retries, tt.wantStatus, tt.wantRetries)
			}
			if tt.wantBody != "" && rec.Body.String() != tt.wantBody {
				t.Errorf("body %q, want %q", rec.Body, tt.wantBody)
			}
			if got := rh.got(); got != tt.wantReports {
				t.Errorf("health heard %q, want %q", got, tt.wantReports)
			}
		})
	}
}

// signalHandler is a slog handler that closes ch on the first record
// with message msg.
type signalHandler struct {
	slog.Handler
	msg  string
	once *sync.Once
	ch   chan struct{}
}

func (h signalHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h signalHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.once.Do(func() { close(h.ch) })
	}
	return h.Handler.Handle(ctx, r)
}

// TestSingleTargetStillStarting: the only target refuses the first dial
// and starts listening during the backoff; the request gets 200, not
// 502, and Health hears one success.
func TestSingleTargetStillStarting(t *testing.T) {
	addr := deadAddr(t)
	refused := make(chan struct{})
	logger := slog.New(signalHandler{Handler: handofftest.Logger(t).Handler(), msg: "upstream connect failed, trying the same target again", once: &sync.Once{}, ch: refused})
	h, rh := newProxy(t, config.Upstream{}, []string{addr}, logger)
	started := make(chan struct{})
	go func() {
		defer close(started)
		select {
		case <-refused:
		case <-time.After(10 * time.Second):
			return
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("listen again on %s: %v", addr, err)
			return
		}
		s := httptest.NewUnstartedServer(http.HandlerFunc(echoHandler))
		s.Listener.Close()
		s.Listener = ln
		s.Config.ErrorLog = testStdLogger(t)
		s.Start()
		t.Cleanup(s.Close)
	}()
	rec, info := serve(t, h, "POST")
	<-started
	if rec.Code != 200 || info.Retries != 1 {
		t.Errorf("got %d with %d retries, want 200 with 1", rec.Code, info.Retries)
	}
	if got := rh.got(); got != "0 success OK" {
		t.Errorf("health heard %q, want one success", got)
	}
}

// TestSingleTargetDown: a single target that stays down is tried
// Retries+1 times with backoff and reported once.
func TestSingleTargetDown(t *testing.T) {
	h, rh := newProxy(t, config.Upstream{Retries: intp(2)}, []string{deadAddr(t)}, nil)
	start := time.Now()
	rec, info := serve(t, h, "GET")
	if rec.Code != 502 || info.Retries != 2 {
		t.Errorf("got %d with %d retries, want 502 with 2", rec.Code, info.Retries)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("two retries took %v, want backoff of at least 150ms", d)
	}
	if got := rh.got(); got != "0 connect_failed" {
		t.Errorf("health heard %q, want one connect failure", got)
	}
}

func TestRetryBudget(t *testing.T) {
	tests := []struct {
		name     string
		ratio    float64
		requests int
		advance  time.Duration // before withdrawing
		want     int           // retries allowed
	}{
		{name: "minimum without traffic", ratio: 0.2, want: budgetMinRetries},
		{name: "twenty percent of 100 plus the minimum", ratio: 0.2, requests: 100, want: 30},
		{name: "zero percent is the minimum", ratio: 0, requests: 100, want: budgetMinRetries},
		{name: "requests age out of the window", ratio: 0.5, requests: 100, advance: budgetWindow * time.Second, want: budgetMinRetries},
		{name: "requests within the window count", ratio: 0.5, requests: 100, advance: (budgetWindow - 1) * time.Second, want: 60},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Unix(1_000_000, 0)
			b := newRetryBudget(tt.ratio, func() time.Time { return now })
			for range tt.requests {
				b.request()
			}
			now = now.Add(tt.advance)
			got := 0
			for b.withdraw() {
				got++
				if got > 10_000 {
					t.Fatal("budget never runs out")
				}
			}
			if got != tt.want {
				t.Errorf("allowed %d retries, want %d", got, tt.want)
			}
		})
	}
}
