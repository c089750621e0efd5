package activation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// Pinger sends the watchdog keep-alive. *Notifier implements it.
type Pinger interface {
	Watchdog() error
}

// WatchdogOptions configures NewWatchdog.
type WatchdogOptions struct {
	// Env is where WATCHDOG_USEC and WATCHDOG_PID are read from. The zero
	// value means the real process. The variables are left set.
	Env
	// Pinger sends the pings. Required when the watchdog is enabled.
	Pinger Pinger
	// Healthy is checked before every ping; while it returns false no
	// ping is sent, so that the manager's watchdog fires and restarts a
	// process that is up but stuck. Its context ends after half the
	// interval (or on Close) and Healthy must return by then. Nil means
	// always healthy.
	Healthy func(ctx context.Context) bool
	// Logger receives health changes and send errors. Nil means no
	// logging.
	Logger *slog.Logger
}

// Watchdog pings the service manager at half the interval the manager
// asked for (WatchdogSec=, systemd.service(5)) while Healthy passes.
// Create it with NewWatchdog, then Start; Close stops it.
type Watchdog struct {
	interval time.Duration
	pinger   Pinger
	healthy  func(context.Context) bool
	log      *slog.Logger

	mu      sync.Mutex
	cancel  context.CancelFunc
	stopped bool
	wg      sync.WaitGroup
}

// NewWatchdog reads WATCHDOG_USEC and WATCHDOG_PID the way
// sd_watchdog_enabled(3) does. The watchdog is disabled (Start does
// nothing) when WATCHDOG_USEC is unset, or WATCHDOG_PID is set to another
// process's pid. Malformed values are an error wrapping ErrInvalidEnv.
func NewWatchdog(opts WatchdogOptions) (*Watchdog, error) {
	interval, err := parseWatchdog(opts.getenv(envWatchdogUSec), opts.getenv(envWatchdogPID), opts.pid())
	if err != nil {
		return nil, err
	}
	w := &Watchdog{interval: interval, pinger: opts.Pinger, healthy: opts.Healthy, log: opts.Logger}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if w.healthy == nil {
		w.healthy = func(context.Context) bool { return true }
	}
	if interval > 0 && w.pinger == nil {
		return nil, errors.New("watchdog: enabled but no pinger")
	}
	return w, nil
}

// parseWatchdog returns the watchdog interval, or 0 when disabled for us.
func parseWatchdog(usec, pidStr string, pid int) (time.Duration, error) {
	if usec == "" {
		return 0, nil
	}
	if pidStr != "" {
		p, err := parsePID(pidStr)
		if err != nil {
			return 0, fmt.Errorf("parse %s=%q: %w", envWatchdogPID, pidStr, err)
		}
		if p != pid {
			return 0, nil
		}
	}
	// Up to ~292 years keeps the Duration from overflowing.
	u, err := parseUint(usec, uint64(time.Duration(1<<63-1)/time.Microsecond))
	if err != nil {
		return 0, fmt.Errorf("parse %s=%q: %w", envWatchdogUSec, usec, err)
	}
	if u == 0 {
		// sd_watchdog_enabled(3) rejects 0 as invalid too.
		return 0, fmt.Errorf("parse %s=0: %w", envWatchdogUSec, ErrInvalidEnv)
	}
	return time.Duration(u) * time.Microsecond, nil
}

// Interval returns WATCHDOG_USEC as a duration, zero when disabled.
func (w *Watchdog) Interval() time.Duration { return w.interval }

// Enabled reports whether the manager expects pings from this process.
func (w *Watchdog) Enabled() bool { return w.interval > 0 }

// Start launches the ping loop: a first ping right away, then one every
// half interval, as sd_watchdog_enabled(3) recommends. It does nothing when
// disabled, already started or closed.
func (w *Watchdog) Start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.Enabled() || w.cancel != nil || w.stopped {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	w.wg.Add(1)
	go w.run(ctx)
}

// Close stops the loop and waits for it. It is safe to call more than
// once and without Start.
func (w *Watchdog) Close() error {
	w.mu.Lock()
	w.stopped = true
	cancel := w.cancel
	w.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	w.wg.Wait()
	return nil
}

func (w *Watchdog) run(ctx context.Context) {
	defer w.wg.Done()
	period := w.interval / 2
	t := time.NewTicker(period)
	defer t.Stop()
	wasHealthy := true
	for {
		ok := w.beat(ctx, period)
		if ok != wasHealthy {
			if ok {
				w.log.Info("watchdog: healthy again, resuming pings")
			} else {
				w.log.Warn("watchdog: health check failed, withholding pings", "interval", w.interval)
			}
			wasHealthy = ok
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// beat runs one health check and pings if it passed. It reports whether
// the check passed; a panicking check counts as failed.
func (w *Watchdog) beat(ctx context.Context, timeout time.Duration) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			w.log.Error("watchdog: health check panicked", "panic", r, "stack", string(debug.Stack()))
			ok = false
		}
	}()
	hctx, cancel := context.WithTimeout(ctx, timeout)
	ok = w.healthy(hctx)
	cancel()
	if !ok || ctx.Err() != nil {
		return ok
	}
	if err := w.pinger.Watchdog(); err != nil {
		w.log.Warn("watchdog: ping failed", "err", err)
	}
	return true
}
