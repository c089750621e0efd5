// Package suite runs the benchmark matrix: every scenario against every
// peer, repeated, each run on a freshly started peer pinned to the proxy's
// CPUs while the load generator and the backend share the other CPUs, and
// collects one report.Sample per run.
//
// It owns the list of scenarios and the order of runs; it must not know
// how a peer is configured (package peers), how a tool's output is parsed
// (package load) or how results are rendered (package report).
package suite

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/handoff-proxy/handoff/bench/load"
	"github.com/handoff-proxy/handoff/bench/peers"
	"github.com/handoff-proxy/handoff/bench/pin"
	"github.com/handoff-proxy/handoff/bench/procstat"
	"github.com/handoff-proxy/handoff/bench/report"
	"github.com/handoff-proxy/handoff/bench/selfcert"
	"github.com/handoff-proxy/handoff/pkg/origin"
)

// Tools that drive a scenario.
const (
	ToolWrk    = "wrk"
	ToolH2load = "h2load"
	ToolWS     = "ws"
	ToolTCP    = "tcp"
	ToolRate   = "rate"
	ToolH3     = "h3"
)

// Scenario is one kind of traffic.
type Scenario struct {
	// Name is the stable identifier (JSON, -scenarios flag).
	Name string
	// Title is what the table shows.
	Title string
	// Cap is what a peer needs to run it.
	Cap peers.Capability
	// Tool drives it.
	Tool string
	// Path requested (HTTP scenarios).
	Path string
	// TLS reports whether the scenario goes to the peer's TLS endpoint.
	TLS bool
	// Headers added to each request (wrk).
	Headers []string
	// PostBody is the size of a POST body; zero means GET.
	PostBody int
	// Encoding is the Content-Encoding the peer must answer with,
	// checked once before the run, so that a peer that does not
	// compress is never measured as if it did. Empty means no check.
	Encoding string
}

// Scenarios returns every scenario in report order.
func Scenarios() []Scenario {
	return []Scenario{
		{Name: "h1-get-0b", Title: "HTTP/1.1 keep-alive GET 0 B", Cap: peers.CapHTTP, Tool: ToolWrk, Path: origin.PathEmpty},
		{Name: "h1-get-1k", Title: "HTTP/1.1 keep-alive GET 1 KiB", Cap: peers.CapHTTP, Tool: ToolWrk, Path: origin.Path1K},
		{Name: "h1-get-100k", Title: "HTTP/1.1 keep-alive GET 100 KiB", Cap: peers.CapHTTP, Tool: ToolWrk, Path: origin.Path100K},
		// RFC 9112 §9.6: "Connection: close" makes every response end its
		// connection; wrk then opens a new one for the next request.
		// wrk2-style open loop: the same moderate rate for every peer, so
		// the percentiles compare added latency, not saturation.
		{Name: "h1-rate-1k", Title: "HTTP/1.1 GET 1 KiB at a constant rate (latency)", Cap: peers.CapHTTP, Tool: ToolRate, Path: origin.Path1K},
		{Name: "h1-newconn-1k", Title: "HTTP/1.1 new connection per request, 1 KiB", Cap: peers.CapHTTP, Tool: ToolWrk, Path: origin.Path1K, Headers: []string{"Connection: close"}},
		{Name: "h1-post-64k", Title: "HTTP/1.1 POST 64 KiB body", Cap: peers.CapHTTP, Tool: ToolWrk, Path: origin.PathPostSink, PostBody: 64 << 10},
		{Name: "h2c-get-1k", Title: "HTTP/2 h2c GET 1 KiB", Cap: peers.CapH2C, Tool: ToolH2load, Path: origin.Path1K},
		{Name: "h2-tls-get-1k", Title: "HTTP/2 TLS GET 1 KiB", Cap: peers.CapTLS, Tool: ToolH2load, Path: origin.Path1K, TLS: true},
		// HTTP/3 on the HTTPS port over UDP, driven by our quic-go
		// driver (bench/load/h3.go) with h2load's clients and streams.
		{Name: "h3-get-1k", Title: "HTTP/3 GET 1 KiB", Cap: peers.CapH3, Tool: ToolH3, Path: origin.Path1K, TLS: true},
		{Name: "tls-h1-get-1k", Title: "TLS termination, HTTP/1.1 keep-alive GET 1 KiB", Cap: peers.CapTLS, Tool: ToolWrk, Path: origin.Path1K, TLS: true},
		{Name: "cache-hit-1k", Title: "Cache hit 1 KiB", Cap: peers.CapCache, Tool: ToolWrk, Path: origin.PathCache1K},
		{Name: "cache-hit-100k", Title: "Cache hit 100 KiB", Cap: peers.CapCache, Tool: ToolWrk, Path: origin.PathCache100K},
		// A 100 KiB text body compressed by the proxy (the backend sends
		// it plain): handoff's route compression vs nginx gzip on, both at
		// gzip level 5; zstd is handoff only.
		{Name: "h1-gzip-100k", Title: "HTTP/1.1 keep-alive GET 100 KiB text, gzip by the proxy", Cap: peers.CapGzip, Tool: ToolWrk, Path: origin.PathText100K, Headers: []string{"Accept-Encoding: gzip"}, Encoding: "gzip"},
		{Name: "h1-zstd-100k", Title: "HTTP/1.1 keep-alive GET 100 KiB text, zstd by the proxy", Cap: peers.CapZstd, Tool: ToolWrk, Path: origin.PathText100K, Headers: []string{"Accept-Encoding: zstd"}, Encoding: "zstd"},
		{Name: "ws-echo", Title: "WebSocket echo (64 B messages)", Cap: peers.CapWebSocket, Tool: ToolWS, Path: origin.PathWebSocket},
		{Name: "l4-tcp", Title: "L4 TCP throughput", Cap: peers.CapTCP, Tool: ToolTCP},
		// handoff only: the same requests as h1-get-1k through a route
		// with a rate limit that never denies, so the difference to
		// handoff's h1-get-1k row in the same run is the limiter's cost.
		{Name: "h1-ratelimit-1k", Title: "HTTP/1.1 keep-alive GET 1 KiB through a rate-limited route", Cap: peers.CapRateLimit, Tool: ToolWrk, Path: origin.Path1K},
		{Name: "h1-ratelimit-redis-1k", Title: "HTTP/1.1 keep-alive GET 1 KiB through a rate-limited route (limit in Redis)", Cap: peers.CapRateLimitRedis, Tool: ToolWrk, Path: origin.Path1K},
	}
}

func (s Scenario) unit() string {
	switch s.Tool {
	case ToolWS:
		return load.UnitMessages
	case ToolTCP:
		return load.UnitMiB
	default:
		return load.UnitRequests
	}
}

// Options configure Run.
type Options struct {
	// Peers to compare, in report order. Empty means all of peers.Specs.
	Peers []string
	// Scenarios by name. Empty means all.
	Scenarios []string
	// Duration measured per run. Zero means 10s.
	Duration time.Duration
	// Warmup before each measurement, on the same peer process. Zero
	// means 1s; negative means none.
	Warmup time.Duration
	// Repeat is how many times each scenario × peer runs. Zero means 3.
	Repeat int
	// Connections for wrk. Zero means 64.
	Connections int
	// H2Clients and H2Streams for h2load. Zero means 16 and 8.
	H2Clients, H2Streams int
	// WSConnections for the WebSocket driver. Zero means 64.
	WSConnections int
	// TCPConnections for the TCP driver. Zero means 8.
	TCPConnections int
	// Rate of the constant-rate scenario in requests per second. Zero
	// means 4000.
	Rate float64
	// ProxyCPUs runs the peers (taskset list). Empty means "0".
	ProxyCPUs string
	// LoadCPUs runs the load generator and the backend. Empty means "1".
	LoadCPUs string
	// Workers per peer. Zero means 1 (one per proxy CPU).
	Workers int
	// Nice is the nice(1) adjustment of the peers, the backend and the
	// load generators. Zero leaves the priority alone.
	Nice int
	// WorkDir holds configs, certificates and peer logs. Required.
	WorkDir string
	// BackendBinary is the bench backend executable. Required.
	BackendBinary string
	// DriverCommand runs the Go drivers: argv prefix to which
	// "ws|tcp FLAGS" is appended; it must print a load.Result as JSON.
	// Required for the ws and tcp scenarios.
	DriverCommand []string
	// HandoffBinary is handoff's executable. Empty means "bin/handoff".
	HandoffBinary string
	// NginxStream is nginx's stream module path; "" means none.
	NginxStream string
	// RedisBinary is redis-server, started for the scenarios that keep
	// a rate limit in Redis. Empty means "redis-server" from PATH.
	RedisBinary string
	// Progress receives one line per run. Nil discards.
	Progress io.Writer
	// Logger for diagnostics. Nil discards.
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.Duration == 0 {
		o.Duration = 10 * time.Second
	}
	if o.Warmup == 0 {
		o.Warmup = time.Second
	}
	if o.Repeat == 0 {
		o.Repeat = 3
	}
	if o.ProxyCPUs == "" {
		o.ProxyCPUs = "0"
	}
	if o.LoadCPUs == "" {
		o.LoadCPUs = "1"
	}
	if o.Workers == 0 {
		o.Workers = 1
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Rate == 0 {
		o.Rate = 4000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// plan is one run to do.
type plan struct {
	rep  int
	peer string
	sc   Scenario
}

// Run runs the matrix and returns the (summarized) results. A run that
// fails is recorded in its row and the matrix goes on; Run itself fails
// only when the harness cannot work at all (no backend, bad options).
func Run(ctx context.Context, o Options) (*report.Run, error) {
	o.defaults()
	scs, err := selectScenarios(o.Scenarios)
	if err != nil {
		return nil, err
	}
	stream := o.NginxStream
	specs := peers.Specs(stream)
	if len(o.Peers) > 0 {
		var sel []peers.Spec
		for _, name := range o.Peers {
			i := slices.IndexFunc(specs, func(s peers.Spec) bool { return s.Name == name })
			if i < 0 {
				return nil, fmt.Errorf("unknown peer %q", name)
			}
			sel = append(sel, specs[i])
		}
		specs = sel
	}

	res := &report.Run{Started: time.Now(), Settings: o.settings()}
	for _, sc := range scs {
		res.Scenarios = append(res.Scenarios, report.Scenario{Name: sc.Name, Title: sc.Title})
	}
	var plans []plan
	for _, spec := range specs {
		res.Peers = append(res.Peers, spec.Name)
	}
	// Rows first, in report order, with n/a reasons.
	for _, sc := range scs {
		for _, spec := range specs {
			reason, ok := spec.Caps[sc.Cap]
			if !ok {
				continue
			}
			row := res.Row(sc.Name, spec.Name, sc.unit())
			row.NA = reason
		}
	}
	redisNA := o.redisNA()
	// Repeats outermost and peers interleaved, so that a slow drift of
	// the machine (thermal, a neighbour) spreads over every peer.
	for rep := 1; rep <= o.Repeat; rep++ {
		for _, spec := range specs {
			for _, sc := range scs {
				if reason, ok := spec.Caps[sc.Cap]; ok && reason == "" {
					if sc.Cap == peers.CapRateLimitRedis && redisNA != "" {
						res.Row(sc.Name, spec.Name, sc.unit()).NA = redisNA
						continue
					}
					plans = append(plans, plan{rep: rep, peer: spec.Name, sc: sc})
				}
			}
		}
	}

	tlsDir := filepath.Join(o.WorkDir, "tls")
	if err := os.MkdirAll(tlsDir, 0o755); err != nil {
		return nil, fmt.Errorf("create work dir: %w", err)
	}
	files, err := selfcert.Write(tlsDir)
	if err != nil {
		return nil, err
	}
	be, stopBackend, err := StartBackend(ctx, BackendOptions{Binary: o.BackendBinary, TLS: files, Pin: pin.Options{CPUs: o.LoadCPUs, Nice: o.Nice}, LogPath: filepath.Join(o.WorkDir, "backend.log")})
	if err != nil {
		return nil, err
	}
	defer stopBackend()
	redisAddr := ""
	if slices.ContainsFunc(plans, func(p plan) bool { return p.sc.Cap == peers.CapRateLimitRedis }) {
		addr, stopRedis, err := StartRedis(ctx, RedisOptions{Binary: o.RedisBinary, Dir: o.WorkDir, Pin: pin.Options{CPUs: o.LoadCPUs, Nice: o.Nice}})
		if err != nil {
			return nil, err
		}
		defer stopRedis()
		redisAddr = addr
	}

	perRun := o.Duration + max(o.Warmup, 0) + 500*time.Millisecond
	fmt.Fprintf(o.Progress, "bench: %d runs (%d scenarios × %d peers × %d repeats, minus n/a), about %s\n",
		len(plans), len(scs), len(specs), o.Repeat, (time.Duration(len(plans)) * perRun).Round(time.Minute))

	failedPeer := map[string]error{} // peers that cannot start at all
	for i, p := range plans {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("bench interrupted: %w", err)
		}
		row := res.Row(p.sc.Name, p.peer, p.sc.unit())
		if err := failedPeer[p.peer]; err != nil {
			row.Failures = append(row.Failures, err.Error())
			continue
		}
		smp, err := o.runOne(ctx, p, be, files, redisAddr, i)
		prefix := fmt.Sprintf("[%d/%d] rep %d %-8s %-15s", i+1, len(plans), p.rep, p.peer, p.sc.Name)
		if err != nil {
			if errors.Is(err, peers.ErrNoBinary) {
				failedPeer[p.peer] = err
			}
			row.Failures = append(row.Failures, err.Error())
			fmt.Fprintf(o.Progress, "%s FAILED: %v\n", prefix, err)
			continue
		}
		row.Samples = append(row.Samples, smp)
		fmt.Fprintf(o.Progress, "%s %12.1f %s/s  p50 %.2fms  p99 %.2fms  cpu %.2fs  rss %.1fMiB  errors %d\n",
			prefix, smp.Rate, row.Unit, smp.P50Ms, smp.P99Ms, smp.CPUSeconds, float64(smp.PeakRSSBytes)/(1<<20), smp.Errors)
	}
	res.Finished = time.Now()
	res.Summarize()
	return res, nil
}

func (o *Options) settings() map[string]string {
	return map[string]string{
		"duration":   o.Duration.String(),
		"warmup":     o.Warmup.String(),
		"repeat":     strconv.Itoa(o.Repeat),
		"proxy_cpus": o.ProxyCPUs,
		"load_cpus":  o.LoadCPUs,
		"workers":    strconv.Itoa(o.Workers),
		"nice":       strconv.Itoa(o.Nice),
		"wrk_conns":  strconv.Itoa(cmpInt(o.Connections, 64)),
		"h2load":     fmt.Sprintf("%d clients × %d streams", cmpInt(o.H2Clients, 16), cmpInt(o.H2Streams, 8)),
		"ws_conns":   strconv.Itoa(cmpInt(o.WSConnections, 64)),
		"tcp_conns":  strconv.Itoa(cmpInt(o.TCPConnections, 8)),
		"rate":       strconv.FormatFloat(o.Rate, 'f', -1, 64) + " req/s",
	}
}

func selectScenarios(names []string) ([]Scenario, error) {
	all := Scenarios()
	if len(names) == 0 {
		return all, nil
	}
	var out []Scenario
	for _, n := range names {
		i := slices.IndexFunc(all, func(s Scenario) bool { return s.Name == n })
		if i < 0 {
			return nil, fmt.Errorf("unknown scenario %q", n)
		}
		out = append(out, all[i])
	}
	return out, nil
}

// runOne starts the peer, warms up, measures, and stops the peer.
func (o *Options) runOne(ctx context.Context, p plan, be peers.Backend, files selfcert.Files, redis string, seq int) (report.Sample, error) {
	dir := filepath.Join(o.WorkDir, fmt.Sprintf("%03d-%s-%s", seq, p.peer, p.sc.Name))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return report.Sample{}, fmt.Errorf("create run dir: %w", err)
	}
	proc, err := peers.Start(ctx, p.peer, peers.StartOptions{
		Dir: dir, Backend: be, TLS: files, Pin: pin.Options{CPUs: o.ProxyCPUs, Nice: o.Nice}, Workers: o.Workers,
		HandoffBinary: o.HandoffBinary, NginxStream: o.NginxStream, Logger: o.Logger,
		RateLimit: rateLimit(p.sc.Cap, redis), HTTP3: p.sc.Cap == peers.CapH3,
	})
	if err != nil {
		return report.Sample{}, err
	}
	defer proc.Stop()

	if p.sc.Encoding != "" {
		if err := checkEncoding(ctx, p.sc, proc.Endpoints); err != nil {
			return report.Sample{}, err
		}
	}
	if o.Warmup > 0 {
		if _, err := o.drive(ctx, p.sc, proc.Endpoints, dir, max(o.Warmup, time.Second)); err != nil {
			return report.Sample{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	var rd procstat.Reader
	var before procstat.Sample
	if proc.PID != 0 {
		if before, err = rd.Sample(proc.PID); err != nil {
			return report.Sample{}, fmt.Errorf("sample proxy: %w", err)
		}
	}
	r, err := o.drive(ctx, p.sc, proc.Endpoints, dir, o.Duration)
	if err != nil {
		return report.Sample{}, err
	}
	smp := report.Sample{
		Rate: r.Rate, Ops: r.Ops, Errors: r.Errors,
		P50Ms: float64(r.P50) / float64(time.Millisecond), P99Ms: float64(r.P99) / float64(time.Millisecond),
	}
	if proc.PID != 0 {
		after, err := rd.Sample(proc.PID)
		if err != nil {
			return report.Sample{}, fmt.Errorf("sample proxy: %w", err)
		}
		smp.CPUSeconds = (after.CPU - before.CPU).Seconds()
		smp.PeakRSSBytes = after.HWM
	}
	select {
	case <-proc.Done():
		return report.Sample{}, fmt.Errorf("%s exited during the run (log %s)", p.peer, proc.LogPath)
	default:
	}
	return smp, nil
}

// checkEncoding fetches the scenario's path once and fails unless the
// answer is a 200 with the scenario's Content-Encoding.
func checkEncoding(ctx context.Context, sc Scenario, ep peers.Endpoints) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ep.HTTP+sc.Path, nil)
	if err != nil {
		return fmt.Errorf("check encoding: %w", err)
	}
	for _, h := range sc.Headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	// DisableCompression: the check must see the encoding, not undo it.
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	res, err := tr.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("check encoding: %w", err)
	}
	defer res.Body.Close()
	n, _ := io.Copy(io.Discard, res.Body)
	if got := res.Header.Get("Content-Encoding"); res.StatusCode != http.StatusOK || got != sc.Encoding {
		return fmt.Errorf("check encoding: status %d, Content-Encoding %q; want 200 and %q", res.StatusCode, got, sc.Encoding)
	}
	if n >= 100<<10 {
		return fmt.Errorf("check encoding: %d bytes, not compressed", n)
	}
	return nil
}

// rateLimit is the rate limit a scenario of capability c puts on
// handoff's route; nil for every other scenario.
func rateLimit(c peers.Capability, redis string) *peers.RateLimit {
	switch c {
	case peers.CapRateLimit:
		return &peers.RateLimit{}
	case peers.CapRateLimitRedis:
		return &peers.RateLimit{Redis: redis}
	default:
		return nil
	}
}

// redisNA is why the Redis scenarios cannot run here; "" when they can.
func (o *Options) redisNA() string {
	bin := o.RedisBinary
	if bin == "" {
		bin = "redis-server"
	}
	if _, err := exec.LookPath(bin); err != nil {
		return "redis-server not installed"
	}
	return ""
}

// drive runs the scenario's tool once for d.
func (o *Options) drive(ctx context.Context, sc Scenario, ep peers.Endpoints, dir string, d time.Duration) (load.Result, error) {
	lp := pin.Options{CPUs: o.LoadCPUs, Nice: o.Nice}
	scheme, addr := "http", ep.HTTP
	switch {
	case sc.TLS:
		scheme, addr = "https", ep.HTTPS
	case sc.Cap == peers.CapH2C:
		addr = ep.H2C
	}
	url := scheme + "://" + addr + sc.Path
	switch sc.Tool {
	case ToolWrk:
		r, out, err := load.RunWrk(ctx, load.WrkOptions{
			URL: url, Connections: o.Connections, Duration: d, Headers: sc.Headers,
			PostBody: sc.PostBody, ScriptDir: dir, Pin: lp,
		})
		if err != nil {
			return r, fmt.Errorf("%w: %s", err, lastLine(out))
		}
		return r, nil
	case ToolH2load:
		r, out, err := load.RunH2load(ctx, load.H2loadOptions{
			URL: url, Clients: o.H2Clients, Streams: o.H2Streams, Duration: d, LogDir: dir, Pin: lp,
		})
		if err != nil {
			return r, fmt.Errorf("%w: %s", err, lastLine(out))
		}
		return r, nil
	case ToolWS:
		return o.runDriver(ctx, lp, "ws", "-url", "ws://"+ep.HTTP+sc.Path, "-conns", strconv.Itoa(cmpInt(o.WSConnections, 64)), "-duration", d.String())
	case ToolRate:
		return o.runDriver(ctx, lp, "rate", "-url", url, "-rate", strconv.FormatFloat(o.Rate, 'f', -1, 64), "-conns", strconv.Itoa(cmpInt(o.Connections, 64)), "-duration", d.String())
	case ToolH3:
		return o.runDriver(ctx, lp, "h3", "-url", url, "-conns", strconv.Itoa(cmpInt(o.H2Clients, 16)), "-streams", strconv.Itoa(cmpInt(o.H2Streams, 8)), "-duration", d.String())
	case ToolTCP:
		return o.runDriver(ctx, lp, "tcp", "-addr", ep.TCP, "-conns", strconv.Itoa(cmpInt(o.TCPConnections, 8)), "-duration", d.String())
	default:
		return load.Result{}, fmt.Errorf("unknown tool %q", sc.Tool)
	}
}

// runDriver runs a Go driver in its own process on the load CPUs, like
// wrk, so that its CPU never competes with the proxy.
func (o *Options) runDriver(ctx context.Context, lp pin.Options, args ...string) (load.Result, error) {
	if len(o.DriverCommand) == 0 {
		return load.Result{}, errors.New("no driver command configured")
	}
	argv := append(slices.Clone(o.DriverCommand[1:]), args...)
	cmd := pin.Command(ctx, lp, o.DriverCommand[0], argv...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return load.Result{}, fmt.Errorf("driver %s: %w: %s", args[0], err, lastLine(ee.Stderr))
		}
		return load.Result{}, fmt.Errorf("driver %s: %w", args[0], err)
	}
	var r load.Result
	if err := json.Unmarshal(out, &r); err != nil {
		return load.Result{}, fmt.Errorf("driver %s output: %w", args[0], err)
	}
	return r, nil
}

// BackendOptions configure StartBackend.
type BackendOptions struct {
	// Binary of cmd/backend. Required.
	Binary string
	// TLS files for the backend's TLS listener.
	TLS selfcert.Files
	// Pin runs the backend on these CPUs.
	Pin pin.Options
	// LogPath receives the backend's stderr. Empty discards it.
	LogPath string
}

// StartBackend starts cmd/backend and reads the addresses it prints. The
// returned stop function terminates it and waits.
func StartBackend(ctx context.Context, o BackendOptions) (peers.Backend, func(), error) {
	args := []string{}
	if o.TLS.Cert != "" {
		args = append(args, "-cert", o.TLS.Cert, "-key", o.TLS.Key)
	}
	cmd := pin.Command(context.Background(), o.Pin, o.Binary, args...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return peers.Backend{}, nil, fmt.Errorf("backend stdout: %w", err)
	}
	if o.LogPath != "" {
		f, err := os.Create(o.LogPath)
		if err != nil {
			return peers.Backend{}, nil, fmt.Errorf("backend log: %w", err)
		}
		defer f.Close() // the child keeps its own copy
		cmd.Stderr = f
	}
	if err := cmd.Start(); err != nil {
		return peers.Backend{}, nil, fmt.Errorf("start backend: %w", err)
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		t := time.NewTimer(10 * time.Second)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			_ = cmd.Process.Kill()
			<-done
		}
	}
	type addrs struct {
		HTTP  string `json:"http"`
		HTTPS string `json:"https"`
		TCP   string `json:"tcp"`
	}
	lines := make(chan addrs, 1)
	errc := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if !sc.Scan() {
			errc <- fmt.Errorf("backend printed no addresses: %w", errors.Join(sc.Err(), io.ErrUnexpectedEOF))
			return
		}
		var a addrs
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			errc <- fmt.Errorf("backend addresses: %w", err)
			return
		}
		lines <- a
		_, _ = io.Copy(io.Discard, stdout)
	}()
	t := time.NewTimer(15 * time.Second)
	defer t.Stop()
	select {
	case a := <-lines:
		return peers.Backend{HTTP: a.HTTP, HTTPS: a.HTTPS, TCP: a.TCP}, stop, nil
	case err := <-errc:
		stop()
		return peers.Backend{}, nil, err
	case <-t.C:
		stop()
		return peers.Backend{}, nil, errors.New("backend did not start within 15s")
	case <-ctx.Done():
		stop()
		return peers.Backend{}, nil, fmt.Errorf("start backend: %w", ctx.Err())
	}
}

func lastLine(b []byte) string {
	lines := slices.DeleteFunc(strings.Split(string(b), "\n"), func(s string) bool { return strings.TrimSpace(s) == "" })
	if len(lines) == 0 {
		return "(no output)"
	}
	return strings.TrimSpace(lines[len(lines)-1])
}

func cmpInt(n, def int) int {
	if n == 0 {
		return def
	}
	return n
}
