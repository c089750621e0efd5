package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/handoff-proxy/handoff/pkg/activation"
	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/server"
)

// adminFDName is the FileDescriptorName= of the admin socket.
const adminFDName = "admin"

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer, env []string) error {
	g := newGlobalFlags("serve", stderr)
	if err := g.parse(args); err != nil {
		return helpOr(err, stdout, g)
	}
	if g.fs.NArg() > 0 {
		return usagef("unexpected argument %q", g.fs.Arg(0))
	}
	getenv := envLookup(env)

	// sd_listen_fds(3): take the sockets systemd passed before anything
	// else, so their names can satisfy listeners without an address.
	passed, err := activation.Passed(activation.Options{Getenv: getenv, Unsetenv: os.Unsetenv, Pid: os.Getpid()})
	if err != nil {
		return fmt.Errorf("socket activation: %w", err)
	}
	defer passed.Close()
	quick := len(g.backends) > 0
	if quick {
		// Quick mode: a single unnamed fd serves the "http" listener.
		passed.RenameUnnamed("http")
	}

	opts := g.loadOptions(env, passed.Names())
	load := func() (*config.Config, error) {
		loaded, err := config.Load(opts)
		if err != nil {
			return nil, err
		}
		return loaded.Config, nil
	}
	loaded, err := config.Load(opts)
	if err != nil {
		return printConfigErrors(stderr, err)
	}
	cfg := loaded.Config
	logger := newLogger(stdout, cfg.Log)
	if len(loaded.Files) > 0 {
		logger.Info("config loaded", "files", loaded.Files)
	}

	wants := make([]activation.Want, 0, len(cfg.Listeners)+1)
	for _, l := range cfg.Listeners {
		wants = append(wants, activation.Want{Name: l.Name, Address: l.Address})
	}
	adminAddr := cfg.Admin.Listen
	if adminAddr != "off" || passed.Has(adminFDName) {
		if adminAddr == "off" {
			adminAddr = ""
		}
		wants = append(wants, activation.Want{Name: adminFDName, Address: adminAddr})
	}
	set, err := activation.Listen(passed, wants)
	if err != nil {
		return fmt.Errorf("listeners: %w", err)
	}
	defer set.Close()
	listeners := make(map[string]net.Listener, len(cfg.Listeners))
	for _, l := range cfg.Listeners {
		listeners[l.Name] = set.Listener(l.Name)
	}

	notifier, err := activation.NewNotifier(getenv("NOTIFY_SOCKET"))
	if err != nil {
		logger.Warn("sd_notify unavailable", "error", err)
	}
	srv, err := server.New(server.Options{
		Config:    cfg,
		Load:      load,
		Listeners: listeners,
		Admin:     set.Listener(adminFDName),
		Notifier:  notifier,
		Logger:    logger,
		Version:   version,
	})
	if err != nil {
		return err
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	loopCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	// SIGHUP reloads (the classic daemon convention; ExecReload= runs
	// `handoff reload`, which uses the admin API or this signal).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-loopCtx.Done():
				return
			case <-hup:
				rctx, rcancel := context.WithTimeout(loopCtx, 2*time.Minute)
				if _, err := srv.Reload(rctx); err != nil && !errors.Is(err, context.Canceled) {
					logger.Error("reload", "error", err)
				}
				rcancel()
			}
		}
	}()

	// sd_watchdog_enabled(3): ping at half WATCHDOG_USEC while the main
	// loop answers.
	wd, err := activation.NewWatchdog(activation.WatchdogOptions{
		Getenv:   getenv,
		Pid:      os.Getpid(),
		Notifier: notifier,
		Healthy:  srv.Healthy,
		Logger:   logger,
	})
	if err != nil {
		logger.Warn("watchdog disabled", "error", err)
	} else if wd != nil {
		wd.Start()
		defer wd.Close()
	}

	err = srv.Run(ctx)
	cancel()
	return err
}

// envLookup turns an environment list into a getenv func, so that run
// never reads the process environment behind its caller's back.
func envLookup(env []string) func(string) string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		for i := 0; i < len(kv); i++ {
			if kv[i] == '=' {
				m[kv[:i]] = kv[i+1:]
				break
			}
		}
	}
	return func(k string) string { return m[k] }
}
