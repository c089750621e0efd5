// Package memory is the in-process state.Store: the default when no Redis
// is configured. Verdicts, leases and counters live in maps guarded by one
// mutex, expire by the clock, and Watch delivers within the process.
//
// It must not know about other processes: two handoff processes with
// memory stores share nothing.
package memory

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/handoff-proxy/handoff/pkg/state"
)

// Options configure a Store. The zero value is ready to use.
type Options struct {
	// Now returns the current time; tests inject a clock. Nil means
	// time.Now.
	Now func() time.Time
	// Logger receives the stack of a Watch callback that panicked. Nil
	// means the panic is not logged (the delivery goroutine survives it).
	Logger *slog.Logger
}

// Store is an in-process state.Store. Create it with New.
type Store struct {
	now func() time.Time
	log *slog.Logger

	mu       sync.Mutex
	verdicts map[state.VerdictKey]entry[state.Verdict]
	leases   map[string]entry[string]
	counters map[string]entry[int64]
	members  map[string]entry[state.Member]
	// sweepAt is the map size at which expired leases and counters are
	// swept, so keys nobody asks for again do not pile up.
	sweepAt  int
	watchers state.Watchers
	// pending holds the verdicts not yet delivered to watchers, latest per
	// key, so a slow watcher delays deliveries but never grows memory.
	pending map[state.VerdictKey]state.Verdict
	wake    chan struct{}
	started bool
	closed  bool
	cancel  context.CancelFunc
	done    chan struct{}
}

type entry[T any] struct {
	val     T
	expires time.Time
}

// New returns a Store; call Start to have Watch deliver.
func New(o Options) *Store {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{
		now:      now,
		log:      log,
		verdicts: map[state.VerdictKey]entry[state.Verdict]{},
		leases:   map[string]entry[string]{},
		counters: map[string]entry[int64]{},
		members:  map[string]entry[state.Member]{},
		sweepAt:  1024,
		pending:  map[state.VerdictKey]state.Verdict{},
		wake:     make(chan struct{}, 1),
	}
}

var _ state.Store = (*Store)(nil)

// PutVerdict implements state.VerdictStore.
func (s *Store) PutVerdict(ctx context.Context, v state.Verdict, ttl time.Duration) error {
	if err := v.Validate(); err != nil {
		return errors.Join(state.ErrInvalid, err)
	}
	ttl, err := state.VerdictTTL(ttl)
	if err != nil {
		return err
	}
	s.mu.Lock()
	now := s.now()
	s.verdicts[v.Key()] = entry[state.Verdict]{val: v, expires: now.Add(ttl)}
	for k, e := range s.verdicts {
		if !now.Before(e.expires) {
			delete(s.verdicts, k)
		}
	}
	if s.watchers.Len() > 0 {
		s.pending[v.Key()] = v
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

// Verdicts implements state.VerdictStore.
func (s *Store) Verdicts(ctx context.Context) ([]state.Verdict, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	out := make([]state.Verdict, 0, len(s.verdicts))
	for _, e := range s.verdicts {
		if now.Before(e.expires) {
			out = append(out, e.val)
		}
	}
	return out, nil
}

// Watch implements state.VerdictStore.
func (s *Store) Watch(fn func(state.Verdict)) (stop func()) { return s.watchers.Add(fn) }

// TryLease implements state.Leaser.
func (s *Store) TryLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if err := state.CheckLeaseArgs(name, holder, ttl); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if e, ok := s.leases[name]; ok && now.Before(e.expires) && e.val != holder {
		return false, nil
	}
	s.leases[name] = entry[string]{val: holder, expires: now.Add(ttl)}
	s.sweepLocked(now)
	return true, nil
}

// ReleaseLease implements state.Leaser.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.leases[name]; ok && e.val == holder {
		delete(s.leases, name)
	}
	return nil
}

// Incr implements state.Counter.
func (s *Store) Incr(ctx context.Context, key string, window time.Duration) (int64, error) {
	if err := state.CheckCounterArgs(key, window); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	e, ok := s.counters[key]
	if !ok || !now.Before(e.expires) {
		e = entry[int64]{expires: now.Add(window)}
	}
	e.val++
	s.counters[key] = e
	s.sweepLocked(now)
	return e.val, nil
}

// Heartbeat implements state.Fleet.
func (s *Store) Heartbeat(ctx context.Context, m state.Member, ttl time.Duration) error {
	if err := state.CheckHeartbeatArgs(m, ttl); err != nil {
		return err
	}
	m.Listeners = append([]string(nil), m.Listeners...)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.members[m.ID] = entry[state.Member]{val: m, expires: now.Add(ttl)}
	// Members are few (one per process): sweeping each time is cheap.
	for k, e := range s.members {
		if !now.Before(e.expires) {
			delete(s.members, k)
		}
	}
	return nil
}

// Members implements state.Fleet.
func (s *Store) Members(ctx context.Context) ([]state.Member, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	out := make([]state.Member, 0, len(s.members))
	for _, e := range s.members {
		if now.Before(e.expires) {
			m := e.val
			m.Listeners = append([]string(nil), m.Listeners...)
			out = append(out, m)
		}
	}
	return out, nil
}

// sweepLocked drops expired leases and counters once the maps have grown
// to sweepAt, then doubles sweepAt: amortised constant time per call.
func (s *Store) sweepLocked(now time.Time) {
	if len(s.leases)+len(s.counters) < s.sweepAt {
		return
	}
	for k, e := range s.leases {
		if !now.Before(e.expires) {
			delete(s.leases, k)
		}
	}
	for k, e := range s.counters {
		if !now.Before(e.expires) {
			delete(s.counters, k)
		}
	}
	s.sweepAt = max(1024, 2*(len(s.leases)+len(s.counters)))
}

// Up implements state.Store: memory is always reachable.
func (s *Store) Up() bool { return true }

// Start implements state.Store: it starts the goroutine that delivers
// verdicts to watchers.
func (s *Store) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed {
		return errors.New("memory state store: already started or closed")
	}
	s.started = true
	ctx, s.cancel = context.WithCancel(ctx)
	s.done = make(chan struct{})
	go s.deliver(ctx)
	return nil
}

// Close implements state.Store.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	cancel, done := s.cancel, s.done
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	return nil
}

func (s *Store) deliver(ctx context.Context) {
	defer close(s.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
		s.mu.Lock()
		batch := s.pending
		s.pending = map[state.VerdictKey]state.Verdict{}
		s.mu.Unlock()
		fns := s.watchers.Snapshot()
		for _, v := range batch {
			for _, fn := range fns {
				if ctx.Err() != nil {
					return
				}
				state.CallWatcher(s.log, fn, v)
			}
		}
	}
}

// Len returns how many leases and counters the store holds, expired or
// not: tests use it to check that memory stays bounded.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.leases) + len(s.counters)
}
