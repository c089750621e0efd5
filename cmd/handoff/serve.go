package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/handoff-proxy/handoff/pkg/activation"
	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/server"
	"github.com/handoff-proxy/handoff/pkg/upgrade"
)

// adminFDName is the FileDescriptorName= of the admin socket.
const adminFDName = "admin"

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer, env []string) error {
	g := newGlobalFlags("serve", usageText, stderr)
	if err := g.parse(args); err != nil {
		return helpOr(err, stdout, g)
	}
	if g.fs.NArg() > 0 {
		return usagef("unexpected argument %q", g.fs.Arg(0))
	}
	getenv := envLookup(env)
	actEnv := activation.Env{Getenv: getenv}
	quick := len(g.backends) > 0

	// sd_listen_fds(3): the names of the sockets systemd (or an upgrading
	// parent) passed decide which listeners may go without an address, so
	// read them before loading the config; take the sockets after.
	opts, err := g.loadOptions(env)
	if err != nil {
		return err
	}
	passed := opts.ActivatedNames
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
	for _, w := range loaded.Warnings {
		logger.Warn("config", "warning", w.Error())
	}

	wants := make([]activation.Want, 0, len(cfg.Listeners)+1)
	for _, l := range cfg.Listeners {
		wants = append(wants, activation.Want{Name: l.Name, Address: l.Address})
	}
	adminAddr := cfg.Admin.Listen
	if adminAddr == config.AdminOff {
		adminAddr = ""
	}
	if adminAddr != "" || slices.Contains(passed, adminFDName) {
		wants = append(wants, activation.Want{Name: adminFDName, Address: adminAddr})
	}
	lopts := activation.Options{
		// The real process environment: Listen unsets LISTEN_* so
		// that children do not inherit them.
		Env:    activation.Env{Getenv: getenv},
		Logger: logger,
	}
	if quick {
		// Quick mode: a single unnamed fd serves the "http" listener.
		lopts.SingleUnnamed = config.QuickListener
	}
	set, err := activation.Listen(ctx, lopts, wants)
	if err != nil {
		return fmt.Errorf("listeners: %w", err)
	}
	defer set.Close()
	listeners := make(map[string]net.Listener, len(cfg.Listeners))
	for _, l := range cfg.Listeners {
		listeners[l.Name] = set.Listener(l.Name)
	}

	notifier, err := activation.NewNotifier(activation.NotifierOptions{Env: actEnv})
	if err != nil {
		logger.Warn("sd_notify unavailable", "error", err)
	}
	var readyLines []string
	if upgrade.StartedByUpgrade(getenv) {
		// systemd.service(5): with NotifyAccess=all, MAINPID= moves the
		// service's main process to us.
		readyLines = append(readyLines, fmt.Sprintf("MAINPID=%d", os.Getpid()))
	}
	srv, err := server.New(server.Options{
		Config:     cfg,
		Load:       load,
		Listeners:  listeners,
		Admin:      set.Listener(adminFDName),
		Notifier:   notifier,
		Logger:     logger,
		Version:    version,
		ReadyLines: readyLines,
		OnReady: func() {
			if err := upgrade.SignalReady(getenv); err != nil {
				logger.Error("upgrade: tell the old process we are ready", "error", err)
			}
			storeListeners(set, notifier, logger)
		},
		Upgrade: func(ctx context.Context) (int, error) {
			files, err := set.Files()
			if err != nil {
				return 0, fmt.Errorf("duplicate listeners: %w", err)
			}
			defer closeFiles(files)
			return upgrade.Start(ctx, upgrade.Options{
				Args:    append([]string{"serve"}, args...),
				Environ: env,
				Files:   files,
				Logger:  logger,
			})
		},
		BinaryReplaced: func() (bool, error) { return upgrade.BinaryReplaced(0) },
	})
	if err != nil {
		return err
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	loopCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	// SIGHUP reloads (the classic daemon convention; ExecReload= runs
	// `handoff reload`, which uses the admin API or this signal); SIGUSR2
	// upgrades to the binary on disk (the nginx and HAProxy convention).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	usr2 := make(chan os.Signal, 1)
	signal.Notify(usr2, syscall.SIGUSR2)
	defer signal.Stop(usr2)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-loopCtx.Done():
				return
			case <-hup:
				// Type=notify-reload turns `systemctl reload` into this
				// signal: after a package replaced the binary it means
				// "run the new one", as with ExecReload=handoff reload.
				rctx, rcancel := context.WithTimeout(loopCtx, 2*time.Minute)
				if _, err := srv.ReloadOrUpgrade(rctx); err != nil && !errors.Is(err, context.Canceled) {
					logger.Error("reload", "error", err)
				}
				rcancel()
			case <-usr2:
				uctx, ucancel := context.WithTimeout(loopCtx, 2*time.Minute)
				if _, err := srv.Upgrade(uctx); err != nil {
					logger.Error("upgrade", "error", err)
				}
				ucancel()
			}
		}
	}()

	// sd_watchdog_enabled(3): ping at half WATCHDOG_USEC while the main
	// loop answers.
	wd, err := activation.NewWatchdog(activation.WatchdogOptions{
		Env:     actEnv,
		Pinger:  notifier,
		Healthy: srv.Healthy,
		Logger:  logger,
	})
	if err != nil {
		logger.Warn("watchdog disabled", "error", err)
	} else if wd.Enabled() {
		wd.Start()
		defer wd.Close()
	}

	err = srv.Run(ctx)
	cancel()
	return err
}

// storeListeners pushes the listeners handoff bound itself into systemd's
// fd store (FDSTORE=1, FDNAME=; sd_pid_notify_with_fds(3)), so that on a
// restart or after a crash systemd hands them back and the kernel keeps
// queueing connections meanwhile: nothing is refused. It needs
// FileDescriptorStoreMax= on the unit; without systemd it does nothing.
func storeListeners(set *activation.Set, n *activation.Notifier, log *slog.Logger) {
	if !n.Enabled() {
		return
	}
	files, err := set.Files()
	if err != nil {
		log.Warn("fd store: duplicate listeners", "error", err)
		return
	}
	defer closeFiles(files)
	var own []activation.NamedFile
	for _, f := range files {
		if !set.FromSystemd(f.Name) {
			own = append(own, f)
		}
	}
	if len(own) == 0 {
		return
	}
	if err := n.FDStoreAll(own); err != nil {
		log.Warn("fd store: store listeners", "error", err)
		return
	}
	names := make([]string, 0, len(own))
	for _, f := range own {
		names = append(names, f.Name)
	}
	log.Info("fd store: listeners stored with systemd", "names", names)
}

func closeFiles(files []activation.NamedFile) {
	for _, f := range files {
		f.File.Close()
	}
}

// configEnv drops the variables that are not config keys but share the
// HANDOFF_ prefix (the upgrade handshake's), which config would reject.
func configEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if upgrade.IsInternalEnv(k) {
			continue
		}
		out = append(out, kv)
	}
	return out
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
