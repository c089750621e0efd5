// Package state owns the runtime knowledge that handoff processes share:
// health verdicts per upstream target, leases that elect one process for a
// job (the active prober of an upstream), windowed counters (rate limits)
// and heartbeats (which processes are alive). It defines the value types,
// their versioned wire encoding and the Store contract; the backends live
// in state/memory (one process, the default) and state/redis (every
// process on one Redis).
//
// It must not know about HTTP, config files, upstream pools or how a
// verdict is reached: callers decide, the store only remembers and tells.
// Nothing here is on a request's critical path: callers keep their own
// in-memory view, updated by Watch, and consult the store in the background.
package state

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"
)

// Verdict is one process's decision about one target of one upstream. It is
// written whole and replaces the previous verdict for the same
// (Upstream, Target).
type Verdict struct {
	// Upstream is the upstream's name. Required.
	Upstream string
	// Target is the target's address as configured ("10.0.0.1:8080").
	// Required.
	Target string
	// Healthy reports whether the target should receive traffic.
	Healthy bool
	// Since is when Healthy took its current value. Zero means unknown.
	Since time.Time
	// Reason is the last check result or error, for people ("connect:
	// connection refused", "status 503"). Empty means none.
	Reason string
	// CheckedAt is when the decision was made. Zero means unknown.
	CheckedAt time.Time
	// Holder identifies the process that decided (see Leaser). Empty means
	// unknown.
	Holder string
	// Ejections counts consecutive ejections; the ejection time grows with
	// it. Zero means never ejected since it was last healthy.
	Ejections int
	// EjectedUntil is when an ejected target gets its next trial. Zero means
	// not ejected.
	EjectedUntil time.Time
}

// Key identifies the verdict's slot: one per (Upstream, Target).
func (v Verdict) Key() VerdictKey { return VerdictKey{Upstream: v.Upstream, Target: v.Target} }

// Equal reports whether v and w carry the same decision (times compared
// with time.Time.Equal).
func (v Verdict) Equal(w Verdict) bool {
	return v.Upstream == w.Upstream && v.Target == w.Target && v.Healthy == w.Healthy &&
		v.Since.Equal(w.Since) && v.Reason == w.Reason && v.CheckedAt.Equal(w.CheckedAt) &&
		v.Holder == w.Holder && v.Ejections == w.Ejections && v.EjectedUntil.Equal(w.EjectedUntil)
}

// Validate reports what makes v unfit to store, or nil.
func (v Verdict) Validate() error {
	switch {
	case v.Upstream == "":
		return errors.New("verdict without upstream")
	case v.Target == "":
		return errors.New("verdict without target")
	case v.Ejections < 0:
		return fmt.Errorf("verdict with negative ejection count %d", v.Ejections)
	}
	return nil
}

// VerdictKey names a verdict's slot.
type VerdictKey struct{ Upstream, Target string }

// DefaultVerdictTTL is how long a verdict is kept when PutVerdict is given
// a zero TTL.
const DefaultVerdictTTL = time.Hour

// ErrInvalid marks a call rejected for its arguments (empty names,
// non-positive durations), as opposed to a backend failure.
var ErrInvalid = errors.New("invalid argument")

// VerdictStore remembers the latest verdict per target and tells every
// process about new ones.
type VerdictStore interface {
	// PutVerdict stores v, replacing the verdict for the same key, for ttl
	// (zero means DefaultVerdictTTL; callers that want a verdict to outlive
	// ttl write it again), and notifies every Watch of every store on the
	// same backend.
	PutVerdict(ctx context.Context, v Verdict, ttl time.Duration) error
	// Verdicts returns every stored, unexpired verdict in no particular
	// order: the full resync a process does before it reports ready.
	// Values the store cannot decode are logged and skipped.
	Verdicts(ctx context.Context) ([]Verdict, error)
	// Watch calls fn with verdicts as they change, including those this
	// store wrote, until stop is called. Calls come one at a time from a
	// goroutine the store owns (only while it is started); fn must return
	// quickly. A verdict may be delivered more than once, and intermediate
	// verdicts of a key may be skipped, but the latest one is delivered.
	// To learn the current state without a gap, call Watch first, then
	// Verdicts.
	Watch(fn func(Verdict)) (stop func())
}

// Leaser elects one holder per name for a time.
type Leaser interface {
	// TryLease takes the lease name for holder for ttl, or extends it when
	// holder already has it, and reports whether holder has it now. Another
	// holder gets it only once ttl passed without a renewal.
	TryLease(ctx context.Context, name, holder string, ttl time.Duration) (held bool, err error)
	// ReleaseLease gives the lease up if holder still has it, so another
	// process can take over at once; otherwise it does nothing.
	ReleaseLease(ctx context.Context, name, holder string) error
}

// Counter counts events per key in fixed windows.
type Counter interface {
	// Incr adds one to key's count in the current window and returns the
	// new count. The window starts with the first Incr after the previous
	// one ended and lasts window (which must be positive).
	Incr(ctx context.Context, key string, window time.Duration) (int64, error)
}

// Store is everything a state backend offers, with its lifecycle. Callers
// should depend on the smaller interfaces above.
type Store interface {
	VerdictStore
	Leaser
	Counter
	Fleet
	// Up reports whether the backend answered its last call. It never
	// blocks; the in-process backend is always up.
	Up() bool
	// Start starts the store's background work (Watch delivery,
	// subscriptions, resync); it returns an error only when already
	// started or closed. The work stops when ctx ends or Close is called.
	Start(ctx context.Context) error
	// Close stops the background work and waits for it. It does not close
	// a client the store was given. Closing twice is harmless.
	Close() error
}

// CheckLeaseArgs reports whether TryLease arguments are usable; backends
// share it so they reject the same calls.
func CheckLeaseArgs(name, holder string, ttl time.Duration) error {
	switch {
	case name == "":
		return fmt.Errorf("lease without name: %w", ErrInvalid)
	case holder == "":
		return fmt.Errorf("lease %q without holder: %w", name, ErrInvalid)
	case ttl <= 0:
		return fmt.Errorf("lease %q with ttl %v: %w", name, ttl, ErrInvalid)
	}
	return nil
}

// CheckCounterArgs reports whether Incr arguments are usable.
func CheckCounterArgs(key string, window time.Duration) error {
	switch {
	case key == "":
		return fmt.Errorf("counter without key: %w", ErrInvalid)
	case window <= 0:
		return fmt.Errorf("counter %q with window %v: %w", key, window, ErrInvalid)
	}
	return nil
}

// VerdictTTL maps PutVerdict's ttl argument to the TTL to store.
func VerdictTTL(ttl time.Duration) (time.Duration, error) {
	switch {
	case ttl == 0:
		return DefaultVerdictTTL, nil
	case ttl < 0:
		return 0, fmt.Errorf("verdict ttl %v: %w", ttl, ErrInvalid)
	}
	return ttl, nil
}

// CallWatcher calls fn(v) for a backend's delivery loop and logs a panic
// with its stack instead of letting it end the loop (and the process).
func CallWatcher(log *slog.Logger, fn func(Verdict), v Verdict) {
	defer func() {
		if r := recover(); r != nil {
			log.Error("state watch callback panicked", "upstream", v.Upstream, "target", v.Target,
				"panic", r, "stack", string(debug.Stack()))
		}
	}()
	fn(v)
}
