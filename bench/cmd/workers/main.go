// Command workers measures handoff's two ways of running several worker
// processes on one port, as systemd would run them (systemd/README.md,
// "Workers"):
//
//   - shared: one listening socket inherited by every worker
//     (handoff@.service with Sockets=handoff.socket): one accept queue.
//   - reuseport: one SO_REUSEPORT socket per worker on the same address
//     (per-instance socket units with ReusePort=yes): the kernel hashes
//     each connection to one worker's queue.
//
// The launcher binds the sockets itself and hands them over with the same
// contract handoff uses on upgrade (activation.ChildEnviron: LISTEN_FDS,
// LISTEN_FDNAMES=http, HANDOFF_LISTEN_PPID, no LISTEN_PID). Workers run on
// core 0, wrk and the backend on core 1, as in the main matrix. For every
// mode it runs wrk keep-alive and wrk with "Connection: close" against a
// 1 KiB GET and reports the rate, p99 and each worker's share of the CPU
// the workers used (/proc/PID/stat), which shows how evenly the load spread.
//
// BENCH_DURATION (10s), BENCH_REPEAT (3), BENCH_WARMUP (1s) and BENCH_NICE (0)
// come from the environment like benchrun's.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/handoff-proxy/handoff/bench/load"
	"github.com/handoff-proxy/handoff/bench/pin"
	"github.com/handoff-proxy/handoff/bench/procstat"
	"github.com/handoff-proxy/handoff/bench/suite"
	"github.com/handoff-proxy/handoff/pkg/activation"
	"github.com/handoff-proxy/handoff/pkg/origin"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err := run(ctx, os.Args[1:], os.Stdout, os.Getenv)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "workers:", err)
		os.Exit(1)
	}
}

// options of one invocation.
type options struct {
	handoff, backend, out string
	workers, repeat, nice int
	duration, warmup      time.Duration
	workerCPUs, loadCPUs  string
}

func run(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("workers", flag.ContinueOnError)
	var o options
	fs.StringVar(&o.handoff, "handoff", "bin/handoff", "handoff binary")
	fs.StringVar(&o.backend, "backend", "bin/bench-backend", "bench backend binary")
	fs.StringVar(&o.out, "out", "bench/results/workers-"+time.Now().Format("20060102-150405"), "results directory")
	fs.IntVar(&o.workers, "n", 3, "worker processes")
	fs.StringVar(&o.workerCPUs, "worker-cpus", "0", "taskset CPU list of the workers")
	fs.StringVar(&o.loadCPUs, "load-cpus", "1", "taskset CPU list of wrk and the backend")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if o.duration, err = envDuration(getenv, "BENCH_DURATION", 10*time.Second); err != nil {
		return err
	}
	if o.warmup, err = envDuration(getenv, "BENCH_WARMUP", time.Second); err != nil {
		return err
	}
	if o.repeat, err = envInt(getenv, "BENCH_REPEAT", 3); err != nil {
		return err
	}
	if o.nice, err = envInt(getenv, "BENCH_NICE", 0); err != nil {
		return err
	}
	if o.workers < 1 || o.repeat < 1 {
		return errors.New("-n and BENCH_REPEAT must be at least 1")
	}
	// NOTIFY_SOCKET must be absolute (sd_notify(3)), and it lives in out.
	if o.out, err = filepath.Abs(o.out); err != nil {
		return err
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return fmt.Errorf("results directory: %w", err)
	}
	be, stopBackend, err := suite.StartBackend(ctx, suite.BackendOptions{
		Binary:  o.backend,
		Pin:     pin.Options{CPUs: o.loadCPUs, Nice: o.nice},
		LogPath: filepath.Join(o.out, "backend.log"),
	})
	if err != nil {
		return err
	}
	defer stopBackend()

	var cells []cell
	for _, mode := range []string{"shared", "reuseport"} {
		cs, err := o.runMode(ctx, mode, be.HTTP)
		if err != nil {
			return fmt.Errorf("mode %s: %w", mode, err)
		}
		cells = append(cells, cs...)
	}
	f, err := os.Create(filepath.Join(o.out, "workers.md"))
	if err != nil {
		return err
	}
	defer f.Close()
	head := fmt.Sprintf("%d handoff workers (GOMAXPROCS=1 each) on CPU %s, wrk (64 connections, 1 thread) and backend on CPU %s; 1 KiB GET; %d × %s after %s warm-up.\n\n",
		o.workers, o.workerCPUs, o.loadCPUs, o.repeat, o.duration, o.warmup)
	w := io.MultiWriter(f, stdout)
	if _, err := io.WriteString(w, head); err != nil {
		return err
	}
	if err := writeTable(w, cells); err != nil {
		return err
	}
	return f.Close()
}

// scenarios: keep-alive and a new connection per request (RFC 9112 §9.6).
var scenarios = []struct {
	name    string
	headers []string
}{
	{"keepalive", nil},
	{"newconn", []string{"Connection: close"}},
}

func (o *options) runMode(ctx context.Context, mode, backend string) ([]cell, error) {
	files, addr, err := bindSockets(mode, o.workers)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(o.out, mode)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ws, err := o.startWorkers(ctx, dir, backend, files)
	// The workers hold their own copies; the launcher keeps none open, so
	// that in reuseport mode no socket without a worker takes connections.
	for _, f := range files {
		f.Close()
	}
	if err != nil {
		return nil, err
	}
	defer stopWorkers(ws)

	url := "http://" + addr + origin.Path1K
	lp := pin.Options{CPUs: o.loadCPUs, Nice: o.nice}
	var cells []cell
	for _, sc := range scenarios {
		c := cell{Mode: mode, Scenario: sc.name, WorkerCPU: make([]time.Duration, len(ws))}
		if o.warmup >= time.Second {
			if _, _, err := load.RunWrk(ctx, load.WrkOptions{URL: url, Duration: o.warmup, Headers: sc.headers, Pin: lp}); err != nil {
				return nil, fmt.Errorf("%s warm-up: %w", sc.name, err)
			}
		}
		for range o.repeat {
			before, err := cpuTimes(ws)
			if err != nil {
				return nil, err
			}
			res, _, err := load.RunWrk(ctx, load.WrkOptions{URL: url, Duration: o.duration, Headers: sc.headers, Pin: lp})
			if err != nil {
				return nil, fmt.Errorf("%s: %w", sc.name, err)
			}
			after, err := cpuTimes(ws)
			if err != nil {
				return nil, err
			}
			for i := range ws {
				c.WorkerCPU[i] += after[i] - before[i]
			}
			c.Rates = append(c.Rates, res.Rate)
			c.P99s = append(c.P99s, res.P99)
			c.Errors += res.Errors
		}
		cells = append(cells, c)
	}
	return cells, nil
}

// bindSockets returns n listening sockets' files: in shared mode n copies
// of one socket, in reuseport mode n SO_REUSEPORT sockets bound to the same
// 127.0.0.1 port. It returns the address they listen on.
func bindSockets(mode string, n int) ([]*os.File, string, error) {
	var lc net.ListenConfig
	if mode == "reuseport" {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	addr := "127.0.0.1:0"
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	for i := range n {
		if mode == "shared" && i > 0 {
			files = append(files, files[0])
			continue
		}
		l, err := lc.Listen(context.Background(), "tcp", addr)
		if err != nil {
			closeAll()
			return nil, "", fmt.Errorf("listen %s: %w", addr, err)
		}
		addr = l.Addr().String()
		f, err := l.(*net.TCPListener).File()
		l.Close() // f is a dup and keeps the socket
		if err != nil {
			closeAll()
			return nil, "", fmt.Errorf("listener file: %w", err)
		}
		files = append(files, f)
	}
	return files, addr, nil
}

// worker is one running handoff process.
type worker struct {
	cmd  *exec.Cmd
	done chan struct{}
}

const workerConfig = `listeners:
  - name: http
    protocol: http
routes:
  - name: all
    upstream: backend
upstreams:
  backend:
    strategy: round_robin
    targets:
      - address: "%s"
    max_idle_per_target: 512
log:
  level: warn
  access: false
`

// startWorkers starts one handoff per file, each with that file as fd 3
// named "http", and waits for every worker's READY=1 on its own
// NOTIFY_SOCKET.
func (o *options) startWorkers(ctx context.Context, dir, backend string, files []*os.File) ([]*worker, error) {
	cfg := filepath.Join(dir, "handoff.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, workerConfig, backend), 0o644); err != nil {
		return nil, err
	}
	// HANDOFF_* variables are a config layer of handoff's: the file alone
	// configures the workers.
	base := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "HANDOFF_") })
	var ws []*worker
	for i, f := range files {
		sockPath := filepath.Join(dir, fmt.Sprintf("notify-%d.sock", i))
		_ = os.Remove(sockPath)
		notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
		if err != nil {
			stopWorkers(ws)
			return nil, fmt.Errorf("notify socket: %w", err)
		}
		env, err := activation.ChildEnviron(base, os.Getpid(), []activation.NamedFile{{Name: "http", File: f}})
		if err != nil {
			notify.Close()
			stopWorkers(ws)
			return nil, err
		}
		env = append(env, "GOMAXPROCS=1", "NOTIFY_SOCKET="+sockPath)
		logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("handoff-%d.log", i)))
		if err != nil {
			notify.Close()
			stopWorkers(ws)
			return nil, err
		}
		cmd := pin.Command(context.Background(), pin.Options{CPUs: o.workerCPUs, Nice: o.nice},
			o.handoff, "serve", "-c", cfg, "--admin", "off", "--log-level", "warn")
		cmd.Env, cmd.ExtraFiles = env, []*os.File{f}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			notify.Close()
			stopWorkers(ws)
			return nil, fmt.Errorf("start worker %d: %w", i, err)
		}
		logf.Close()
		w := &worker{cmd: cmd, done: make(chan struct{})}
		go func() { _ = cmd.Wait(); close(w.done) }()
		ws = append(ws, w)
		err = waitReady(ctx, notify, w.done, 20*time.Second)
		notify.Close()
		if err != nil {
			stopWorkers(ws)
			return nil, fmt.Errorf("worker %d: %w (log: %s)", i, err, logf.Name())
		}
	}
	return ws, nil
}

// waitReady reads sd_notify datagrams until one carries READY=1.
func waitReady(ctx context.Context, c *net.UnixConn, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 4096)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("exited before READY=1")
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := c.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			return fmt.Errorf("read notify socket: %w", err)
		}
		if slices.Contains(strings.Split(string(buf[:n]), "\n"), "READY=1") {
			return nil
		}
	}
	return fmt.Errorf("no READY=1 within %s", timeout)
}

func stopWorkers(ws []*worker) {
	for _, w := range ws {
		_ = w.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, w := range ws {
		select {
		case <-w.done:
		case <-time.After(15 * time.Second):
			_ = w.cmd.Process.Kill()
			<-w.done
		}
	}
}

// cpuTimes samples each worker's CPU time so far.
func cpuTimes(ws []*worker) ([]time.Duration, error) {
	var r procstat.Reader
	out := make([]time.Duration, len(ws))
	for i, w := range ws {
		s, err := r.Sample(w.cmd.Process.Pid)
		if err != nil {
			return nil, fmt.Errorf("sample worker %d: %w", i, err)
		}
		out[i] = s.CPU
	}
	return out, nil
}

func envDuration(getenv func(string) string, key string, def time.Duration) (time.Duration, error) {
	v := getenv(key)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", key, err)
	}
	return d, nil
}

func envInt(getenv func(string) string, key string, def int) (int, error) {
	v := getenv(key)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", key, err)
	}
	return n, nil
}
