// Package soak runs a long mixed load (keep-alive, new connections, slow
// clients, WebSocket) against one proxy while sampling its resident memory,
// goroutines and open file descriptors every second, and judges whether it
// reached a steady state and gave everything back once the load stopped.
//
// It must not know how the proxy was started; it gets an address, a PID and
// optionally a Prometheus /metrics URL.
package soak

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/handoff-proxy/handoff/bench/procstat"
)

// Phases of a soak.
const (
	PhaseBaseline = "baseline"
	PhaseLoad     = "load"
	PhaseSettle   = "settle"
)

// Mix is how many clients of each kind run during the load.
type Mix struct {
	// KeepAlive clients send GET /1k over one kept-alive connection each,
	// every KeepAliveEvery. Zero means 16.
	KeepAlive int
	// NewConn clients open a connection per GET /1k. Zero means 4.
	NewConn int
	// Slow clients trickle their request: headers one line per 200ms,
	// then (every other request) a 4 KiB POST body in 512-byte pieces.
	// Zero means 8.
	Slow int
	// WebSocket clients echo a 64-byte message every 20ms and reconnect
	// every 30s. Zero means 8.
	WebSocket int
	// Interval between requests of a keep-alive or new-connection client.
	// Zero means 5ms (about 200 requests per second per client).
	Interval time.Duration
}

func (m *Mix) defaults() {
	if m.KeepAlive == 0 {
		m.KeepAlive = 16
	}
	if m.NewConn == 0 {
		m.NewConn = 4
	}
	if m.Slow == 0 {
		m.Slow = 8
	}
	if m.WebSocket == 0 {
		m.WebSocket = 8
	}
	if m.Interval == 0 {
		m.Interval = 5 * time.Millisecond
	}
}

// Options configure Run.
type Options struct {
	// Addr is the proxy's HTTP listener (host:port). Required.
	Addr string
	// PID of the proxy process to sample (its whole tree). Required.
	PID int
	// MetricsURL is a Prometheus text endpoint with go_goroutines. Empty
	// means goroutines are not sampled (non-Go peers) and not judged.
	MetricsURL string
	// Duration of the load phase. Zero means 10m.
	Duration time.Duration
	// Baseline is how long the idle proxy is watched before the load; the
	// baseline is the median of its last three samples. Zero means 8s.
	Baseline time.Duration
	// SettleTimeout bounds the wait, after the load, for goroutines and
	// fds to return to baseline. Zero means 30s.
	SettleTimeout time.Duration
	// Every is the sampling interval. Zero means 1s.
	Every time.Duration
	// Mix of clients.
	Mix Mix
	// Thresholds of the verdict.
	Thresholds Thresholds
	// Progress receives a line every 10 samples. Nil discards.
	Progress io.Writer
	// Logger for diagnostics. Nil discards.
	Logger *slog.Logger
}

// Sample is one observation of the proxy.
type Sample struct {
	// At is the time since the soak started.
	At    time.Duration `json:"at_ns"`
	Phase string        `json:"phase"`
	// RSS is resident memory in bytes (sum over the process tree).
	RSS int64 `json:"rss_bytes"`
	// Goroutines from go_goroutines; -1 when not sampled.
	Goroutines float64 `json:"goroutines"`
	// FDs open in the process tree.
	FDs int `json:"fds"`
	// Requests and Failures completed so far by the load clients.
	Requests int64 `json:"requests"`
	Failures int64 `json:"failures"`
}

// Result is a whole soak.
type Result struct {
	Samples []Sample `json:"samples"`
	Verdict Verdict  `json:"verdict"`
	// FirstFailures holds up to ten client errors, for the report.
	FirstFailures []string `json:"first_failures,omitempty"`
}

// Run samples the baseline, runs the load for Duration while sampling,
// stops the load, samples until the proxy settles or SettleTimeout passes,
// and judges the samples. A cancelled ctx ends the soak early with an
// error.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Addr == "" || o.PID == 0 {
		return nil, errors.New("soak: Addr and PID are required")
	}
	o.Mix.defaults()
	if o.Duration == 0 {
		o.Duration = 10 * time.Minute
	}
	if o.Baseline == 0 {
		o.Baseline = 8 * time.Second
	}
	if o.SettleTimeout == 0 {
		o.SettleTimeout = 30 * time.Second
	}
	if o.Every == 0 {
		o.Every = time.Second
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	th := o.Thresholds.withDefaults()

	s := &sampler{o: o, start: time.Now(), metrics: &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}}
	defer s.metrics.CloseIdleConnections()
	res := &Result{}
	tick := time.NewTicker(o.Every)
	defer tick.Stop()
	sampleUntil := func(phase string, until time.Time, stop func([]Sample) bool) error {
		for {
			smp, err := s.sample(ctx, phase)
			if err != nil {
				return err
			}
			res.Samples = append(res.Samples, smp)
			if len(res.Samples)%10 == 0 {
				fmt.Fprintf(o.Progress, "soak: %6s %-8s rss %6.1f MiB  goroutines %5.0f  fds %4d  requests %d  failures %d\n",
					smp.At.Round(time.Second), phase, float64(smp.RSS)/(1<<20), smp.Goroutines, smp.FDs, smp.Requests, smp.Failures)
			}
			if (stop != nil && stop(res.Samples)) || !time.Now().Before(until) {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("soak interrupted: %w", ctx.Err())
			case <-tick.C:
			}
		}
	}

	if err := sampleUntil(PhaseBaseline, time.Now().Add(o.Baseline), nil); err != nil {
		return nil, err
	}
	baseline := baselineOf(res.Samples)

	ld := newLoad(o.Addr, o.Mix, o.Logger)
	s.load = ld
	loadCtx, stopLoad := context.WithCancel(ctx)
	ld.start(loadCtx)
	err := sampleUntil(PhaseLoad, time.Now().Add(o.Duration), nil)
	stopLoad()
	// Keep sampling while the clients wind down.
	clientsDone := make(chan struct{})
	go func() { ld.wait(); close(clientsDone) }()
	defer func() { <-clientsDone }()
	if err != nil {
		return nil, err
	}
	settled := func(ss []Sample) bool {
		select {
		case <-clientsDone:
		default:
			return false
		}
		last := ss[len(ss)-1]
		return last.Phase == PhaseSettle && th.settled(baseline, last)
	}
	if err := sampleUntil(PhaseSettle, time.Now().Add(o.SettleTimeout), settled); err != nil {
		return nil, err
	}
	<-clientsDone
	res.FirstFailures = ld.firstFailures()
	res.Verdict = Evaluate(res.Samples, th)
	return res, nil
}

// sampler reads the proxy's state.
type sampler struct {
	o       Options
	start   time.Time
	rd      procstat.Reader
	metrics *http.Client
	load    *load
}

func (s *sampler) sample(ctx context.Context, phase string) (Sample, error) {
	ps, err := s.rd.Sample(s.o.PID)
	if err != nil {
		return Sample{}, fmt.Errorf("sample proxy: %w", err)
	}
	smp := Sample{At: time.Since(s.start), Phase: phase, RSS: ps.RSS, FDs: ps.FDs, Goroutines: -1}
	if s.o.MetricsURL != "" {
		g, err := s.goroutines(ctx)
		if err != nil {
			return Sample{}, err
		}
		smp.Goroutines = g
	}
	if s.load != nil {
		smp.Requests, smp.Failures = s.load.requests.Load(), s.load.failures.Load()
	}
	return smp, nil
}

func (s *sampler) goroutines(ctx context.Context) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.o.MetricsURL, nil)
	if err != nil {
		return 0, fmt.Errorf("metrics request: %w", err)
	}
	resp, err := s.metrics.Do(req)
	if err != nil {
		return 0, fmt.Errorf("scrape metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("scrape metrics: status %d", resp.StatusCode)
	}
	v, ok, err := ParseMetric(resp.Body, "go_goroutines")
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("scrape metrics: no go_goroutines: %w", ErrFormat)
	}
	return v, nil
}

// ErrFormat is returned (wrapped) when metrics text does not parse.
var ErrFormat = errors.New("unexpected metrics format")

// ParseMetric returns the value of the unlabelled sample name in the
// Prometheus text exposition format ("name value [timestamp]"); ok is false
// when it is absent.
func ParseMetric(r io.Reader, name string) (value float64, ok bool, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		rest, found := strings.CutPrefix(line, name)
		if !found || rest == "" || (rest[0] != ' ' && rest[0] != '\t') {
			continue // another metric sharing the prefix, or labelled
		}
		f := strings.Fields(rest)
		if len(f) < 1 || len(f) > 2 {
			return 0, false, fmt.Errorf("metric %s: %q: %w", name, line, ErrFormat)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, false, fmt.Errorf("metric %s value %q: %w", name, f[0], ErrFormat)
		}
		return v, true, nil
	}
	if err := sc.Err(); err != nil {
		return 0, false, fmt.Errorf("read metrics: %w", err)
	}
	return 0, false, nil
}

// load is the set of running clients.
type load struct {
	addr     string
	mix      Mix
	log      *slog.Logger
	wg       sync.WaitGroup
	requests atomic.Int64
	failures atomic.Int64

	mu       sync.Mutex
	failMsgs []string
}

func newLoad(addr string, mix Mix, log *slog.Logger) *load {
	return &load{addr: addr, mix: mix, log: log}
}

func (l *load) fail(err error) {
	l.failures.Add(1)
	l.mu.Lock()
	if len(l.failMsgs) < 10 {
		l.failMsgs = append(l.failMsgs, err.Error())
	}
	l.mu.Unlock()
	l.log.Warn("soak request failed", "err", err)
}

func (l *load) firstFailures() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.failMsgs...)
}

// wait blocks until every client returned.
func (l *load) wait() { l.wg.Wait() }
