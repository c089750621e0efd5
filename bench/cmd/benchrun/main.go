// Command benchrun runs the proxy benchmark matrix (see package suite) and
// writes results.json, results.md and chart.png into a results directory.
//
//	benchrun [run] [flags]       run the matrix (default)
//	benchrun report -in FILE     re-render the Markdown table and chart from a results.json
//	benchrun profile [flags]     CPU and allocation profiles of handoff in one scenario
//	benchrun drive ws|rate|tcp FLAGS  one Go load driver run, JSON result on stdout (used by run)
//
// Defaults come from the environment where the Makefile sets them:
// BENCH_DURATION (10s), BENCH_REPEAT (3), BENCH_WARMUP (1s).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/handoff-proxy/handoff/bench/load"
	"github.com/handoff-proxy/handoff/bench/peers"
	"github.com/handoff-proxy/handoff/bench/report"
	"github.com/handoff-proxy/handoff/bench/suite"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchrun: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return runMatrix(ctx, args, stdout, stderr, getenv)
	case "report":
		return runReport(ctx, args, stderr)
	case "drive":
		return runDrive(ctx, args, stdout, stderr)
	case "profile":
		return runProfile(ctx, args, stdout, stderr, getenv)
	default:
		return fmt.Errorf("unknown command %q (run, report, profile, drive)", cmd)
	}
}

func envDuration(getenv func(string) string, key string, def time.Duration) (time.Duration, error) {
	v := getenv(key)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", key, err)
	}
	return d, nil
}

func runMatrix(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	dur, err := envDuration(getenv, "BENCH_DURATION", 10*time.Second)
	if err != nil {
		return err
	}
	warm, err := envDuration(getenv, "BENCH_WARMUP", time.Second)
	if err != nil {
		return err
	}
	nice := 0
	if v := getenv("BENCH_NICE"); v != "" {
		if nice, err = strconv.Atoi(v); err != nil || nice < -20 || nice > 19 {
			return fmt.Errorf("parse BENCH_NICE %q: want -20..19", v)
		}
	}
	rep := 3
	if v := getenv("BENCH_REPEAT"); v != "" {
		if rep, err = strconv.Atoi(v); err != nil || rep < 1 {
			return fmt.Errorf("parse BENCH_REPEAT %q: want a positive integer", v)
		}
	}
	fs := flag.NewFlagSet("benchrun run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o suite.Options
	fs.DurationVar(&o.Duration, "duration", dur, "measured time per run (env BENCH_DURATION)")
	fs.DurationVar(&o.Warmup, "warmup", warm, "warm-up per run, negative for none (env BENCH_WARMUP)")
	fs.IntVar(&o.Repeat, "repeat", rep, "repeats per scenario and peer (env BENCH_REPEAT)")
	peerList := fs.String("peers", "", "comma-separated peers (default: direct,handoff,haproxy,nginx,caddy,varnish)")
	scList := fs.String("scenarios", "", "comma-separated scenarios (default: all; see -list)")
	list := fs.Bool("list", false, "list scenarios and exit")
	fs.IntVar(&o.Connections, "conns", 64, "wrk connections")
	fs.IntVar(&o.H2Clients, "h2-clients", 16, "h2load clients")
	fs.IntVar(&o.H2Streams, "h2-streams", 8, "h2load concurrent streams per client")
	fs.IntVar(&o.WSConnections, "ws-conns", 64, "WebSocket connections")
	fs.IntVar(&o.TCPConnections, "tcp-conns", 8, "TCP connections for L4")
	fs.Float64Var(&o.Rate, "rate", 4000, "requests per second of the constant-rate latency scenario")
	fs.StringVar(&o.ProxyCPUs, "proxy-cpus", "0", "CPUs of the proxy under test (taskset list)")
	fs.StringVar(&o.LoadCPUs, "load-cpus", "1", "CPUs of the load generator and the backend")
	fs.IntVar(&o.Workers, "workers", 1, "workers per peer (nginx worker_processes, HAProxy nbthread, GOMAXPROCS)")
	fs.IntVar(&o.Nice, "nice", nice, "nice(1) adjustment of peers, backend and load generators, -20..19 (env BENCH_NICE)")
	fs.StringVar(&o.HandoffBinary, "handoff", "bin/handoff", "handoff executable")
	fs.StringVar(&o.BackendBinary, "backend", "bin/bench-backend", "bench backend executable (bench/cmd/backend)")
	out := fs.String("out", "", "results directory (default bench/results/run-YYYYMMDD-HHMMSS)")
	keep := fs.Bool("keep-work", false, "keep the work directory (configs, peer logs)")
	verbose := fs.Bool("v", false, "debug logging")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("parse flags: %w", err)
	}
	if *list {
		for _, s := range suite.Scenarios() {
			fmt.Fprintf(stdout, "%-16s %s\n", s.Name, s.Title)
		}
		return nil
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	o.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	o.Progress = stderr
	o.Peers = splitList(*peerList)
	o.Scenarios = splitList(*scList)
	if _, err := os.Stat(peers.NginxStreamModule); err == nil {
		o.NginxStream = peers.NginxStreamModule
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	o.DriverCommand = []string{self, "drive"}
	for _, p := range []*string{&o.HandoffBinary, &o.BackendBinary} {
		if abs, err := filepath.Abs(*p); err == nil {
			*p = abs
		}
	}
	if *out == "" {
		*out = filepath.Join("bench", "results", "run-"+time.Now().Format("20060102-150405"))
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("create results dir: %w", err)
	}
	work, err := os.MkdirTemp("", "handoff-bench-")
	if err != nil {
		return fmt.Errorf("create work dir: %w", err)
	}
	// Peers drop privileges (nginx workers, varnish) and must traverse it.
	if err := os.Chmod(work, 0o755); err != nil {
		return fmt.Errorf("chmod work dir: %w", err)
	}
	if *keep {
		fmt.Fprintf(stderr, "benchrun: work directory %s kept\n", work)
	} else {
		defer os.RemoveAll(work)
	}
	o.WorkDir = work
	// bin/ is shared with whoever else builds in this tree: benchmark a
	// private copy so that every run measures the same handoff.
	if _, err := os.Stat(o.HandoffBinary); err == nil {
		cp := filepath.Join(work, "handoff")
		if err := copyFile(o.HandoffBinary, cp); err != nil {
			return err
		}
		o.HandoffBinary = cp
	}
	host := hostInfo(ctx, o.HandoffBinary)

	loadBefore := loadAvg()
	res, err := suite.Run(ctx, o)
	if err != nil {
		return err
	}
	res.Host = host
	// Other work on the machine shows up as spread: say how busy it was.
	res.Host["loadavg_start"], res.Host["loadavg_end"] = loadBefore, loadAvg()
	if err := writeOutputs(ctx, res, *out, stderr); err != nil {
		return err
	}
	md, err := os.ReadFile(filepath.Join(*out, "results.md"))
	if err == nil {
		fmt.Fprintf(stdout, "%s\n", md)
	}
	fmt.Fprintf(stderr, "benchrun: results in %s\n", *out)
	return nil
}

func writeOutputs(ctx context.Context, res *report.Run, dir string, stderr io.Writer) error {
	write := func(name string, f func(io.Writer, *report.Run) error) error {
		file, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
		if err := f(file, res); err != nil {
			file.Close()
			return err
		}
		return file.Close()
	}
	if err := write("results.json", report.WriteJSON); err != nil {
		return err
	}
	if err := write("results.md", report.WriteMarkdown); err != nil {
		return err
	}
	if _, err := report.WriteChart(ctx, res, report.ChartOptions{Dir: dir}); err != nil {
		// The table and JSON are the results; the chart is a view.
		fmt.Fprintf(stderr, "benchrun: chart not written: %v\n", err)
	}
	return nil
}

func runReport(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("benchrun report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := fs.String("in", "", "results.json to render (required)")
	out := fs.String("out", "", "output directory (default: the directory of -in)")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("parse flags: %w", err)
	}
	if *in == "" {
		return errors.New("report: -in is required")
	}
	f, err := os.Open(*in)
	if err != nil {
		return fmt.Errorf("open results: %w", err)
	}
	defer f.Close()
	res, err := report.ReadJSON(f)
	if err != nil {
		return err
	}
	res.Summarize()
	if *out == "" {
		*out = filepath.Dir(*in)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("create output dir: %w", err)
	}
	return writeOutputs(ctx, res, *out, stderr)
}

func runDrive(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("drive: want ws, rate, tcp or h3")
	}
	kind := args[0]
	fs := flag.NewFlagSet("benchrun drive "+kind, flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "ws:// URL of the echo endpoint (ws), http:// URL to GET (rate), https:// URL to GET over HTTP/3 (h3)")
	streams := fs.Int("streams", 0, "requests in flight per connection (h3; default 8)")
	rate := fs.Float64("rate", 4000, "requests per second (rate)")
	addr := fs.String("addr", "", "host:port of the byte source (tcp)")
	conns := fs.Int("conns", 0, "connections (default 64 for ws and rate, 8 for tcp, 16 for h3)")
	size := fs.Int("size", 64, "message size in bytes (ws)")
	dur := fs.Duration("duration", 10*time.Second, "measured duration")
	warm := fs.Duration("warmup", 0, "warm-up before measuring")
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("parse flags: %w", err)
	}
	w := load.Window{Warmup: *warm, Duration: *dur}
	var (
		r   load.Result
		err error
	)
	switch kind {
	case "ws":
		r, err = load.RunWS(ctx, load.WSOptions{URL: *url, Connections: *conns, MessageSize: *size, Window: w})
	case "rate":
		r, err = load.RunRate(ctx, load.RateOptions{URL: *url, Rate: *rate, Connections: *conns, Window: w})
	case "tcp":
		r, err = load.RunTCP(ctx, load.TCPOptions{Addr: *addr, Connections: *conns, Window: w})
	case "h3":
		r, err = load.RunH3(ctx, load.H3Options{URL: *url, Clients: *conns, Streams: *streams, Window: w})
	default:
		return fmt.Errorf("drive: unknown driver %q", kind)
	}
	if err != nil {
		return err
	}
	if err := json.NewEncoder(stdout).Encode(r); err != nil {
		return fmt.Errorf("print result: %w", err)
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// hostInfo records what the numbers depend on: kernel, CPU, tool versions.
func hostInfo(ctx context.Context, handoff string) map[string]string {
	h := map[string]string{}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h["kernel"] = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				h["cpu"] = strings.TrimSpace(v)
				break
			}
		}
	}
	h["cpus"] = strconv.Itoa(numCPU())
	version := func(name string, argv ...string) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		out, _ := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
		if line := firstLine(out); line != "" {
			h[name] = line
		}
	}
	version("haproxy", "haproxy", "-v")
	version("nginx", "nginx", "-v")
	version("caddy", "caddy", "version")
	version("varnish", "varnishd", "-V")
	version("wrk", "wrk", "-v")
	version("h2load", "h2load", "--version")
	version("handoff", handoff, "version")
	version("go", "go", "version")
	return h
}

// copyFile copies an executable.
func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return fmt.Errorf("read %s: %w", from, err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", to, err)
	}
	return nil
}

// loadAvg is the first three fields of /proc/loadavg (proc(5)).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func firstLine(b []byte) string {
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(line)
}

func numCPU() int {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return 0
	}
	n := 0
	for part := range strings.SplitSeq(strings.TrimSpace(string(b)), ",") {
		lo, hi, found := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(lo)
		if !found {
			if err1 == nil {
				n++
			}
			continue
		}
		c, err2 := strconv.Atoi(hi)
		if err1 == nil && err2 == nil && c >= a {
			n += c - a + 1
		}
	}
	return n
}

func runProfile(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	dur, err := envDuration(getenv, "BENCH_DURATION", 15*time.Second)
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("benchrun profile", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o suite.ProfileOptions
	fs.StringVar(&o.Scenario, "scenario", "", "scenario to profile (default: the worst for handoff vs HAProxy in -from, else h1-get-1k)")
	from := fs.String("from", "", "results.json whose worst handoff scenario is profiled")
	fs.DurationVar(&o.Duration, "duration", dur, "profiled load (env BENCH_DURATION)")
	fs.DurationVar(&o.Warmup, "warmup", 2*time.Second, "warm-up before profiling")
	fs.IntVar(&o.Connections, "conns", 64, "wrk connections")
	fs.StringVar(&o.ProxyCPUs, "proxy-cpus", "0", "CPUs of handoff")
	fs.StringVar(&o.LoadCPUs, "load-cpus", "1", "CPUs of the load generator and the backend")
	fs.StringVar(&o.Profiler, "profiler", "bin/handoff-profile", "bench/cmd/handoff-profile executable")
	fs.StringVar(&o.BackendBinary, "backend", "bin/bench-backend", "bench backend executable")
	fs.StringVar(&o.OutDir, "out", "", "profile directory (default bench/results/profile-SCENARIO-YYYYMMDD-HHMMSS)")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("parse flags: %w", err)
	}
	if o.Scenario == "" && *from != "" {
		f, err := os.Open(*from)
		if err != nil {
			return fmt.Errorf("open results: %w", err)
		}
		res, err := report.ReadJSON(f)
		f.Close()
		if err != nil {
			return err
		}
		res.Summarize()
		o.Scenario = suite.Worst(res)
	}
	if o.Scenario == "" {
		o.Scenario = "h1-get-1k"
	}
	for _, p := range []*string{&o.Profiler, &o.BackendBinary} {
		if abs, err := filepath.Abs(*p); err == nil {
			*p = abs
		}
	}
	if o.OutDir == "" {
		o.OutDir = filepath.Join("bench", "results", "profile-"+o.Scenario+"-"+time.Now().Format("20060102-150405"))
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	o.DriverCommand = []string{self, "drive"}
	o.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	work, err := os.MkdirTemp("", "handoff-profile-")
	if err != nil {
		return fmt.Errorf("create work dir: %w", err)
	}
	defer os.RemoveAll(work)
	if err := os.Chmod(work, 0o755); err != nil {
		return fmt.Errorf("chmod work dir: %w", err)
	}
	o.WorkDir = work
	r, err := suite.Profile(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "profiled %s: %.1f %s/s, p50 %v, p99 %v, errors %d\nprofiles and summaries in %s\n",
		o.Scenario, r.Rate, r.Unit, r.P50, r.P99, r.Errors, o.OutDir)
	return nil
}
