// Command soak runs handoff (or another peer) under a sustained mixed load
// and checks that memory and goroutines reach a steady state and that
// nothing leaks after the load stops (see package soak). It writes
// soak.json, soak.md and soak.png and exits 1 when the verdict fails.
//
// The duration comes from -duration or the DURATION environment variable
// (make soak DURATION=10m).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/handoff-proxy/handoff/bench/peers"
	"github.com/handoff-proxy/handoff/bench/pin"
	"github.com/handoff-proxy/handoff/bench/selfcert"
	"github.com/handoff-proxy/handoff/bench/soak"
	"github.com/handoff-proxy/handoff/bench/suite"
)

// errVerdict marks a soak that ran but failed its criteria.
var errVerdict = errors.New("soak verdict: FAIL")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "soak: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	def := 10 * time.Minute
	if v := getenv("DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("parse DURATION: %w", err)
		}
		def = d
	}
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dur := fs.Duration("duration", def, "load phase (env DURATION)")
	peer := fs.String("peer", peers.Handoff, "peer to soak (handoff, haproxy, nginx, caddy)")
	handoff := fs.String("handoff", "bin/handoff", "handoff executable")
	backendBin := fs.String("backend", "bin/bench-backend", "bench backend executable")
	proxyCPUs := fs.String("proxy-cpus", "0", "CPUs of the proxy")
	loadCPUs := fs.String("load-cpus", "1", "CPUs of the clients and the backend")
	out := fs.String("out", "", "results directory (default bench/results/soak-YYYYMMDD-HHMMSS)")
	var mix soak.Mix
	fs.IntVar(&mix.KeepAlive, "keepalive", 16, "keep-alive clients")
	fs.IntVar(&mix.NewConn, "newconn", 4, "new-connection-per-request clients")
	fs.IntVar(&mix.Slow, "slow", 8, "slow clients")
	fs.IntVar(&mix.WebSocket, "ws", 8, "WebSocket clients")
	fs.DurationVar(&mix.Interval, "interval", 5*time.Millisecond, "pause between requests of a keep-alive or new-connection client")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("parse flags: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	// The clients run in this process: pin it like the load generators.
	if err := pinSelf(*loadCPUs); err != nil {
		return err
	}
	if *out == "" {
		*out = filepath.Join("bench", "results", "soak-"+time.Now().Format("20060102-150405"))
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("create results dir: %w", err)
	}
	work, err := os.MkdirTemp("", "handoff-soak-")
	if err != nil {
		return fmt.Errorf("create work dir: %w", err)
	}
	defer os.RemoveAll(work)
	if err := os.Chmod(work, 0o755); err != nil {
		return fmt.Errorf("chmod work dir: %w", err)
	}
	files, err := selfcert.Write(work)
	if err != nil {
		return err
	}
	for _, p := range []*string{handoff, backendBin} {
		if abs, err := filepath.Abs(*p); err == nil {
			*p = abs
		}
	}
	be, stopBackend, err := suite.StartBackend(ctx, suite.BackendOptions{
		Binary: *backendBin, TLS: files, Pin: pin.Options{CPUs: *loadCPUs}, LogPath: filepath.Join(work, "backend.log"),
	})
	if err != nil {
		return err
	}
	defer stopBackend()
	stream := ""
	if _, err := os.Stat(peers.NginxStreamModule); err == nil {
		stream = peers.NginxStreamModule
	}
	proc, err := peers.Start(ctx, *peer, peers.StartOptions{
		Dir: work, Backend: be, TLS: files, Pin: pin.Options{CPUs: *proxyCPUs}, HandoffBinary: *handoff,
		NginxStream: stream, Logger: log,
		// Idle upstream connections expire well inside the 30s settle
		// window, so a healthy pool is not mistaken for a leak.
		UpstreamIdle: 5 * time.Second,
	})
	if err != nil {
		return err
	}
	defer proc.Stop()
	metrics := ""
	if proc.Endpoints.Admin != "" {
		metrics = "http://" + proc.Endpoints.Admin + "/metrics"
	}
	fmt.Fprintf(stderr, "soak: %s pid %d for %s, samples every second\n", *peer, proc.PID, *dur)
	res, err := soak.Run(ctx, soak.Options{
		Addr: proc.Endpoints.HTTP, PID: proc.PID, MetricsURL: metrics, Duration: *dur, Mix: mix,
		Progress: stderr, Logger: log,
	})
	if err != nil {
		return err
	}
	title := fmt.Sprintf("%s, %s mixed load", *peer, *dur)
	if err := writeFile(filepath.Join(*out, "soak.json"), func(w io.Writer) error { return soak.WriteJSON(w, res) }); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(*out, "soak.md"), func(w io.Writer) error { return soak.WriteMarkdown(w, res, title) }); err != nil {
		return err
	}
	if _, err := soak.WritePlot(ctx, res, soak.PlotOptions{Dir: *out, Title: "Soak: " + title}); err != nil {
		fmt.Fprintf(stderr, "soak: plot not written: %v\n", err)
	}
	_ = soak.WriteMarkdown(stdout, res, title)
	fmt.Fprintf(stderr, "soak: results in %s\n", *out)
	if !res.Verdict.Pass {
		return errVerdict
	}
	return nil
}

func writeFile(path string, f func(io.Writer) error) error {
	file, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if err := f(file); err != nil {
		file.Close()
		return err
	}
	return file.Close()
}
