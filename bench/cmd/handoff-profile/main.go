// Command handoff-profile is handoff's server (package server) run in a
// process that can be profiled: `benchrun profile` starts it in place of
// bin/handoff with the same -c config, drives one scenario at it, and
// brackets the measurement with signals:
//
//	SIGUSR1  start the CPU profile and snapshot the allocation profile
//	SIGUSR2  stop the CPU profile and write the allocation profile again
//
// so that `go tool pprof -diff_base` shows only what the measured load
// allocated. SIGTERM and SIGINT stop the server.
//
// It serves plain listeners it binds itself (no socket activation, no
// sd_notify, no reload): only the request path matters here.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "handoff-profile: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("handoff-profile", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "", "config file (required)")
	cpuPath := fs.String("cpuprofile", "cpu.pprof", "CPU profile written between SIGUSR1 and SIGUSR2")
	allocsPath := fs.String("allocsprofile", "allocs.pprof", "allocation profile written at SIGUSR2; the one at SIGUSR1 goes to the same name with a -base suffix")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("parse flags: %w", err)
	}
	if *cfgPath == "" {
		return errors.New("-c is required")
	}
	loaded, err := config.Load(config.LoadOptions{File: *cfgPath})
	if err != nil {
		return fmt.Errorf("load config: %w", err)
	}
	cfg := loaded.Config
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	listeners := map[string]net.Listener{}
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for _, l := range cfg.Listeners {
		ln, err := net.Listen("tcp", l.Address)
		if err != nil {
			return fmt.Errorf("listen %s: %w", l.Name, err)
		}
		listeners[l.Name] = ln
	}
	var admin net.Listener
	if cfg.Admin.Listen != "off" {
		if admin, err = net.Listen("tcp", cfg.Admin.Listen); err != nil {
			return fmt.Errorf("listen admin: %w", err)
		}
	}
	srv, err := server.New(server.Options{Config: cfg, Listeners: listeners, Admin: admin, Logger: log, Version: "profile"})
	if err != nil {
		return fmt.Errorf("new server: %w", err)
	}
	listeners = nil // the server owns them now

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	prof := &profiler{cpuPath: *cpuPath, allocsPath: *allocsPath, log: log}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	for {
		select {
		case err := <-done:
			prof.stop()
			return err
		case s := <-sigs:
			if s == syscall.SIGUSR1 {
				prof.start()
			} else {
				prof.stop()
			}
		}
	}
}

// profiler brackets one measurement.
type profiler struct {
	cpuPath, allocsPath string
	log                 *slog.Logger
	cpu                 *os.File
}

func (p *profiler) start() {
	if p.cpu != nil {
		return
	}
	if err := writeProfile("allocs", p.allocsPath+"-base"); err != nil {
		p.log.Error("allocation profile", "err", err)
	}
	f, err := os.Create(p.cpuPath)
	if err != nil {
		p.log.Error("cpu profile", "err", err)
		return
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		p.log.Error("cpu profile", "err", err)
		return
	}
	p.cpu = f
}

func (p *profiler) stop() {
	if p.cpu == nil {
		return
	}
	pprof.StopCPUProfile()
	if err := p.cpu.Close(); err != nil {
		p.log.Error("cpu profile", "err", err)
	}
	p.cpu = nil
	if err := writeProfile("allocs", p.allocsPath); err != nil {
		p.log.Error("allocation profile", "err", err)
	}
}

func writeProfile(name, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("write %s profile: %w", name, err)
	}
	return f.Close()
}
