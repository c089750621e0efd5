package ratelimit

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// Fallback decides with Shared (Redis) and, when Shared fails, with
// Local, so that a Redis outage never fails a request (fail open to a
// per-process limit), or, with FailClosed, denies. The outage is logged
// once, when it starts, and once when it ends. After a failure Shared is
// not asked again for Backoff, so that a Redis that times out does not
// add its timeout to every request.
type Fallback struct {
	Shared Limiter
	Local  Limiter
	// FailClosed reports whether requests are denied while Shared fails.
	FailClosed bool
	// Timeout bounds one Shared decision. Zero means 1s: long enough for a
	// first call that dials and loads the script on a loaded machine.
	Timeout time.Duration
	// Backoff is how long Shared is skipped after it failed. Zero means
	// 1s.
	Backoff time.Duration
	// Logger gets the outage lines. Nil means none.
	Logger *slog.Logger
	// Up, when set, reports whether the shared backend is believed
	// reachable (the state store's own view, which reconnects in the
	// background); while it says no, Shared is not asked at all, so no
	// request waits on a dead Redis. Nil means always ask.
	Up func() bool
	// ProbeTimeout bounds a Shared decision while degraded (the first
	// one after Backoff). Zero means 50ms.
	ProbeTimeout time.Duration
	// Now is the clock. Nil means time.Now.
	Now func() time.Time

	downUntil atomic.Int64 // unix nanos; zero while Shared works
	down      atomic.Bool
}

// Allow implements Limiter; it returns an error only for a bad limit.
func (f *Fallback) Allow(ctx context.Context, key string, limit Limit) (Result, error) {
	if err := limit.Check(); err != nil {
		return Result{}, err
	}
	now := f.now()
	if f.Shared != nil && now.UnixNano() >= f.downUntil.Load() && (f.Up == nil || f.Up()) {
		timeout := f.Timeout
		if timeout <= 0 {
			timeout = time.Second
		}
		if f.down.Load() {
			timeout = f.ProbeTimeout
			if timeout <= 0 {
				timeout = 50 * time.Millisecond
			}
		}
		sctx, cancel := context.WithTimeout(ctx, timeout)
		res, err := f.Shared.Allow(sctx, key, limit)
		cancel()
		if err == nil {
			if f.down.CompareAndSwap(true, false) && f.Logger != nil {
				f.Logger.Info("rate limits shared again through redis")
			}
			return res, nil
		}
		if ctx.Err() != nil {
			// The client left: not Redis's fault; decide locally.
			return f.local(ctx, key, limit)
		}
		backoff := f.Backoff
		if backoff <= 0 {
			backoff = time.Second
		}
		f.downUntil.Store(now.Add(backoff).UnixNano())
		if f.down.CompareAndSwap(false, true) && f.Logger != nil {
			f.Logger.Warn("rate limits cannot reach redis: each process limits on its own until it is back",
				"error", err, "fail_closed", f.FailClosed)
		}
	}
	if f.Shared != nil && f.Up != nil && !f.Up() && f.down.CompareAndSwap(false, true) && f.Logger != nil {
		f.Logger.Warn("rate limits cannot reach redis: each process limits on its own until it is back", "fail_closed", f.FailClosed)
	}
	return f.local(ctx, key, limit)
}

// Degraded reports whether the last decision could not use Shared.
func (f *Fallback) Degraded() bool { return f.down.Load() }

func (f *Fallback) local(ctx context.Context, key string, limit Limit) (Result, error) {
	if f.FailClosed && f.Shared != nil {
		return Result{RetryAfter: f.backoff(), ResetAfter: f.backoff()}, nil
	}
	return f.Local.Allow(ctx, key, limit)
}

func (f *Fallback) backoff() time.Duration {
	if f.Backoff > 0 {
		return f.Backoff
	}
	return time.Second
}

func (f *Fallback) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}
