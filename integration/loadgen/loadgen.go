// Package loadgen drives HTTP load at a constant rate and accounts for every
// request's outcome precisely (ok, refused, reset, timeout, …), and provides
// the backend and probes the integration tests use inside a container
// network namespace.
//
// It knows nothing of handoff, systemd or containers: it speaks HTTP to a
// URL it is given.
package loadgen

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/handoff-proxy/handoff/pkg/origin"
)

// BackendHeader is the response header in which the origin names itself; Run
// counts successful responses by its value.
const BackendHeader = origin.HeaderBackend

// Outcome classifies one request.
type Outcome string

// Outcomes. Every request has exactly one.
const (
	OK Outcome = "ok"
	// Refused: connect(2) got ECONNREFUSED, nothing listened.
	Refused Outcome = "refused"
	// Reset: the peer aborted the connection (ECONNRESET, or EPIPE when
	// writing to it).
	Reset Outcome = "reset"
	// Timeout: no complete response within Options.Timeout.
	Timeout Outcome = "timeout"
	// EOF: the connection was closed before a complete response.
	EOF Outcome = "eof"
	// Status: a response arrived with a status other than 2xx.
	Status Outcome = "status"
	// Other: any other error (DNS, TLS, …).
	Other Outcome = "other"
)

// Classify maps a request error to its outcome; nil is OK. It inspects
// the error chain (errors.Is/As), never the message.
func Classify(err error) Outcome {
	switch {
	case err == nil:
		return OK
	case errors.Is(err, syscall.ECONNREFUSED):
		return Refused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return Reset
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ETIMEDOUT):
		return Timeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return EOF
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return Timeout
	}
	return Other
}

// Options configures Run.
type Options struct {
	// URL every request GETs. Required.
	URL string
	// Rate in requests per second, kept constant whatever the latency
	// (open loop: a slow server does not slow the generator down). Zero
	// means 200.
	Rate int
	// Duration of the run. Zero means until ctx is done.
	Duration time.Duration
	// KeepAlive is the fraction (0 to 1) of requests sent on pooled
	// keep-alive connections; the others each open a new connection and
	// close it (Connection: close). Requests of both kinds interleave
	// evenly.
	KeepAlive float64
	// Timeout bounds each request, body included. Zero means 5s.
	Timeout time.Duration
	// MaxInFlight bounds concurrent requests; a request due while the
	// bound is reached is not sent and counts as Skipped. Zero means 2000.
	MaxInFlight int
	// InsecureTLS reports whether https certificates go unverified (the
	// tests use self-signed ones).
	InsecureTLS bool
	// Logger receives one line per failed request (at most MaxSamples).
	// Nil means discard.
	Logger *slog.Logger
}

// MaxSamples bounds Result.Samples.
const MaxSamples = 20

// Result counts what Run saw. Sent = OK + Failed; Failed is the sum of the
// non-OK outcomes in Outcomes.
type Result struct {
	URL      string            `json:"url"`
	Sent     int64             `json:"sent"`
	OK       int64             `json:"ok"`
	Failed   int64             `json:"failed"`
	Refused  int64             `json:"refused"`
	Reset    int64             `json:"reset"`
	Skipped  int64             `json:"skipped"`
	Outcomes map[Outcome]int64 `json:"outcomes"`
	// Statuses counts responses by status code.
	Statuses map[int]int64 `json:"statuses"`
	// Backends counts 2xx responses by BackendHeader.
	Backends map[string]int64 `json:"backends"`
	// Samples are the first failures, "outcome on CONNECTION: error",
	// CONNECTION being "new connection", "keep-alive connection" (a new
	// one for the pool) or "reused keep-alive connection".
	Samples []string `json:"samples,omitempty"`
	// Seconds the run lasted, and the latency distribution of OK
	// requests in milliseconds.
	Seconds float64 `json:"seconds"`
	P50ms   float64 `json:"p50_ms"`
	P99ms   float64 `json:"p99_ms"`
	MaxMs   float64 `json:"max_ms"`
}

// Run sends GET requests to opts.URL at a constant rate until
// opts.Duration elapsed or ctx is done, waits for the requests in flight
// (each bounded by opts.Timeout), and returns the counts. Cancelling ctx
// stops sending; it does not abort requests already sent.
func Run(ctx context.Context, opts Options) (Result, error) {
	if opts.URL == "" {
		return Result{}, errors.New("loadgen: no URL")
	}
	if opts.KeepAlive < 0 || opts.KeepAlive > 1 {
		return Result{}, fmt.Errorf("loadgen: keep-alive fraction %v not in [0,1]", opts.KeepAlive)
	}
	rate := opts.Rate
	if rate <= 0 {
		rate = 200
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	maxInFlight := opts.MaxInFlight
	if maxInFlight <= 0 {
		maxInFlight = 2000
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if _, err := http.NewRequest(http.MethodGet, opts.URL, nil); err != nil {
		return Result{}, fmt.Errorf("loadgen: parse url: %w", err)
	}

	pooled := newTransport(opts.InsecureTLS, false)
	fresh := newTransport(opts.InsecureTLS, true)
	defer pooled.CloseIdleConnections()
	acc := newAccount(opts.URL, log)

	interval := time.Second / time.Duration(rate)
	start := time.Now()
	var (
		wg       sync.WaitGroup
		inFlight atomic.Int64
	)
	timer := time.NewTimer(0)
	defer timer.Stop()
	// Keep-alive and new-connection requests interleave: request i uses
	// a pooled connection when the running share of pooled requests is
	// below opts.KeepAlive.
	var pooledSent int64
loop:
	for i := int64(0); ; i++ {
		due := start.Add(time.Duration(i) * interval)
		if opts.Duration > 0 && due.Sub(start) >= opts.Duration {
			break
		}
		timer.Reset(time.Until(due))
		select {
		case <-ctx.Done():
			break loop
		case <-timer.C:
		}
		if inFlight.Load() >= int64(maxInFlight) {
			acc.skip()
			continue
		}
		tr := fresh
		if float64(pooledSent) < opts.KeepAlive*float64(i+1) {
			tr = pooled
			pooledSent++
		}
		inFlight.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer inFlight.Add(-1)
			acc.record(send(opts.URL, tr, timeout))
		}()
	}
	wg.Wait()
	return acc.result(time.Since(start)), nil
}

func newTransport(insecure, fresh bool) *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		DisableKeepAlives:   fresh,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     30 * time.Second,
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: insecure}, //nolint:gosec // test servers use self-signed certificates
		// Plain HTTP/1.1: the proxy's h2 paths are tested elsewhere, and
		// HTTP/1.1 exercises keep-alive versus new connections.
		ForceAttemptHTTP2: false,
	}
}

// attempt is the result of one request.
type attempt struct {
	err     error
	status  int
	backend string
	latency time.Duration
	// conn describes the connection used: new, keep-alive, reused.
	conn string
}

func send(url string, tr *http.Transport, timeout time.Duration) attempt {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// Which connection the request went out on, for the failure samples:
	// a failure on a reused keep-alive connection and one on a new
	// connection have different causes.
	conn := "new connection"
	if !tr.DisableKeepAlives {
		conn = "keep-alive connection"
	}
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		if info.Reused {
			conn = "reused keep-alive connection"
		}
	}})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return attempt{err: err}
	}
	t0 := time.Now()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return attempt{err: err, conn: conn}
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return attempt{err: fmt.Errorf("read body: %w", err), status: resp.StatusCode, conn: conn}
	}
	return attempt{status: resp.StatusCode, backend: resp.Header.Get(BackendHeader), latency: time.Since(t0), conn: conn}
}

// account accumulates attempts; safe for concurrent use.
type account struct {
	mu        sync.Mutex
	log       *slog.Logger
	res       Result
	latencies []time.Duration
}

func newAccount(url string, log *slog.Logger) *account {
	return &account{log: log, res: Result{
		URL:      url,
		Outcomes: map[Outcome]int64{},
		Statuses: map[int]int64{},
		Backends: map[string]int64{},
	}}
}

func (a *account) skip() {
	a.mu.Lock()
	a.res.Skipped++
	a.mu.Unlock()
}

func (a *account) record(at attempt) {
	o := Classify(at.err)
	if o == OK && (at.status < 200 || at.status > 299) {
		o = Status
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	r := &a.res
	r.Sent++
	r.Outcomes[o]++
	if at.status != 0 {
		r.Statuses[at.status]++
	}
	switch o {
	case OK:
		r.OK++
		r.Backends[at.backend]++
		a.latencies = append(a.latencies, at.latency)
		return
	case Refused:
		r.Refused++
	case Reset:
		r.Reset++
	}
	r.Failed++
	if len(r.Samples) < MaxSamples {
		msg := fmt.Sprintf("status %d", at.status)
		if at.err != nil {
			msg = at.err.Error()
		}
		r.Samples = append(r.Samples, fmt.Sprintf("%s on %s: %s", o, at.conn, msg))
		a.log.Warn("request failed", "outcome", string(o), "conn", at.conn, "detail", msg)
	}
}

func (a *account) result(elapsed time.Duration) Result {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.res
	r.Seconds = elapsed.Seconds()
	if n := len(a.latencies); n > 0 {
		l := slices.Clone(a.latencies)
		slices.Sort(l)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		r.P50ms = ms(l[n/2])
		r.P99ms = ms(l[min(n-1, n*99/100)])
		r.MaxMs = ms(l[n-1])
	}
	return r
}
