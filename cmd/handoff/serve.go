package main

import (
	"sync/atomic"

	goredis "github.com/redis/go-redis/v9"

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

	// sd_listen_fds(3): the names of the sockets systemd (or an upgrading
	// parent) passed decide which listeners may go without an address, so
	// loadOptions reads them before the config is loaded; the sockets are
	// taken after.
	opts, err := g.loadOptions(env)
	if err != nil {
		return err
	}
	loaded, err := config.Load(opts)
	if err != nil {
		return printConfigErrors(stderr, err)
	}
	cfg := loaded.Config
	logger := newLogger(stdout, cfg.Log)
	// go-redis logs through a process-wide logger of its own (to stderr by
	// default, once per failed dial): route it through ours at debug; the
	// state store reports outages itself, once.
	goredis.SetLogger(redisLogger{logger})
	if len(loaded.Files) > 0 {
		logger.Info("config loaded", "files", loaded.Files)
	}
	for _, w := range loaded.Warnings {
		logger.Warn("config", "warning", w.Error())
	}

	set, err := listen(ctx, cfg, opts.ActivatedNames, len(g.backends) > 0, actEnv, logger)
	if err != nil {
		return err
	}
	defer set.Close()
	listeners := make(map[string]net.Listener, len(cfg.Listeners))
	packetConns := make(map[string][]net.PacketConn)
	for _, l := range cfg.Listeners {
		listeners[l.Name] = set.Listener(l.Name)
		if l.HTTP3 {
			packetConns[l.Name] = set.PacketConns(l.Name + config.QUICSuffix)
		}
	}

	access, err := newAccessLog(stdout, cfg.Log, logger)
	if err != nil {
		return err
	}
	defer access.close()

	notifier, err := activation.NewNotifier(activation.NotifierOptions{Env: actEnv})
	if err != nil {
		logger.Warn("sd_notify unavailable", "error", err)
	}
	srv, err := newServer(serverParts{
		cfg: cfg, opts: opts, set: set, listeners: listeners, packetConns: packetConns, notifier: notifier,
		logger: logger, access: access, getenv: getenv, args: args, env: env,
	})
	if err != nil {
		return err
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	loopCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Registered before READY=1, so that an early SIGHUP reloads rather
	// than kills (its default action).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	usr2 := make(chan os.Signal, 1)
	signal.Notify(usr2, syscall.SIGUSR2)
	defer signal.Stop(usr2)
	wg.Add(1)
	go func() {
		defer wg.Done()
		handleSignals(loopCtx, hup, usr2, srv, logger)
	}()

	defer startWatchdog(actEnv, notifier, srv, logger)()

	err = srv.Run(ctx)
	cancel()
	return err
}

// serverParts is what newServer wires together.
type serverParts struct {
	cfg       *config.Config
	opts      config.LoadOptions // to load the config again on reload
	set       *activation.Set
	listeners map[string]net.Listener
	// packetConns are the UDP sockets of http3 listeners, by listener
	// name.
	packetConns map[string][]net.PacketConn
	notifier    *activation.Notifier
	logger      *slog.Logger
	access      *accessLog
	getenv      func(string) string
	args, env   []string // the command line and environment, for an upgrade
}

// newServer builds the server with the reload, upgrade and readiness hooks
// of a real process.
func newServer(p serverParts) (*server.Server, error) {
	var readyLines []string
	if upgrade.StartedByUpgrade(p.getenv) {
		// systemd.service(5): with NotifyAccess=all, MAINPID= moves the
		// service's main process to us.
		readyLines = append(readyLines, fmt.Sprintf("MAINPID=%d", os.Getpid()))
	}
	var stored atomic.Int64 // fds in systemd's fd store, for the dashboard
	upgrades := upgradeCount(p.getenv)
	return server.New(server.Options{
		Config: p.cfg,
		Load: func() (*config.Config, error) {
			loaded, err := config.Load(p.opts)
			if err != nil {
				return nil, err
			}
			return loaded.Config, nil
		},
		Listeners:    p.listeners,
		PacketConns:  p.packetConns,
		Admin:        p.set.Listener(adminFDName),
		Notifier:     p.notifier,
		Logger:       p.logger,
		AccessLogger: p.access.logger,
		ReopenLogs:   p.access.reopen,
		Version:      version,
		ReadyLines:   readyLines,
		OnReady: func() {
			if err := upgrade.SignalReady(p.getenv); err != nil {
				p.logger.Error("upgrade: tell the old process we are ready", "error", err)
			}
			stored.Store(int64(storeListeners(p.set, p.notifier, p.logger)))
		},
		Upgrade: func(ctx context.Context) (int, error) {
			files, err := p.set.Files()
			if err != nil {
				return 0, fmt.Errorf("duplicate listeners: %w", err)
			}
			defer closeFiles(files)
			return upgrade.Start(ctx, upgrade.Options{
				Args:    append([]string{"serve"}, p.args...),
				Environ: withUpgradeCount(p.env, upgrades+1),
				Files:   files,
				Logger:  p.logger,
			})
		},
		BinaryReplaced: func() (bool, error) { return upgrade.BinaryReplaced(0) },
		Upgrades:       upgrades,
		Systemd:        systemdFacts(p.cfg, p.set, p.notifier, p.getenv, &stored, p.logger),
	})
}

// startWatchdog pings systemd's watchdog at half WATCHDOG_USEC while the
// main loop answers (sd_watchdog_enabled(3)), and returns what stops it.
func startWatchdog(env activation.Env, n *activation.Notifier, srv *server.Server, logger *slog.Logger) (stop func()) {
	wd, err := activation.NewWatchdog(activation.WatchdogOptions{
		Env:     env,
		Pinger:  n,
		Healthy: srv.Healthy,
		Logger:  logger,
	})
	if err != nil {
		logger.Warn("watchdog disabled", "error", err)
		return func() {}
	}
	if !wd.Enabled() {
		return func() {}
	}
	wd.Start()
	return func() { wd.Close() }
}

// listen takes the sockets systemd (or an upgrading parent) passed and
// binds the others: every listener of cfg, and the admin API's when it is
// on or systemd passed one. passed are the names systemd passed; quick
// reports whether --backend was given.
func listen(ctx context.Context, cfg *config.Config, passed []string, quick bool, env activation.Env, logger *slog.Logger) (*activation.Set, error) {
	wants := make([]activation.Want, 0, len(cfg.Listeners)+1)
	for _, l := range cfg.Listeners {
		wants = append(wants, activation.Want{Name: l.Name, Address: l.Address})
		if l.HTTP3 {
			// RFC 9114 §3.1: HTTP/3 runs on UDP; systemd passes that
			// socket as "<name>-quic" (ListenDatagram=), otherwise it is
			// bound on the TCP listener's address and port.
			wants = append(wants, activation.Want{Name: l.Name + config.QUICSuffix, Datagram: true, AddressOf: l.Name})
		}
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
		Env:    env,
		Logger: logger,
	}
	if quick {
		// Quick mode: a single unnamed fd serves the "http" listener.
		lopts.SingleUnnamed = config.QuickListener
	}
	set, err := activation.Listen(ctx, lopts, wants)
	if err != nil {
		return nil, fmt.Errorf("listeners: %w", err)
	}
	return set, nil
}

// handleSignals reloads on SIGHUP (the classic daemon convention;
// ExecReload= runs `handoff reload`, which uses the admin API or this
// signal) and upgrades to the binary on disk on SIGUSR2 (the nginx and
// HAProxy convention) until ctx ends.
func handleSignals(ctx context.Context, hup, usr2 <-chan os.Signal, srv *server.Server, logger *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			// Type=notify-reload turns `systemctl reload` into this
			// signal: after a package replaced the binary it means
			// "run the new one", as with ExecReload=handoff reload.
			rctx, rcancel := context.WithTimeout(ctx, 2*time.Minute)
			if _, err := srv.ReloadOrUpgrade(rctx); err != nil && !errors.Is(err, context.Canceled) {
				logger.Error("reload", "error", err)
			}
			rcancel()
		case <-usr2:
			uctx, ucancel := context.WithTimeout(ctx, 2*time.Minute)
			if _, err := srv.Upgrade(uctx); err != nil {
				logger.Error("upgrade", "error", err)
			}
			ucancel()
		}
	}
}

// storeListeners pushes the listeners handoff bound itself into systemd's
// fd store (FDSTORE=1, FDNAME=; sd_pid_notify_with_fds(3)), so that on a
// restart or after a crash systemd hands them back and the kernel keeps
// queueing connections meanwhile: nothing is refused. It needs
// FileDescriptorStoreMax= on the unit; without systemd it does nothing.
// It returns how many fds it stored.
func storeListeners(set *activation.Set, n *activation.Notifier, log *slog.Logger) int {
	if !n.Enabled() {
		return 0
	}
	files, err := set.Files()
	if err != nil {
		log.Warn("fd store: duplicate listeners", "error", err)
		return 0
	}
	defer closeFiles(files)
	var own []activation.NamedFile
	for _, f := range files {
		if !set.FromSystemd(f.Name) {
			own = append(own, f)
		}
	}
	if len(own) == 0 {
		return 0
	}
	if err := n.FDStoreAll(own); err != nil {
		log.Warn("fd store: store listeners", "error", err)
		return 0
	}
	names := make([]string, 0, len(own))
	for _, f := range own {
		names = append(names, f.Name)
	}
	log.Info("fd store: listeners stored with systemd", "names", names)
	return len(own)
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
