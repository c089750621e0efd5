package ratelimit

import (
	"context"
	"sync"
	"time"
)

// Local is a Limiter in this process's memory. The zero value is not
// usable; use NewLocal. It is safe for concurrent use.
type Local struct {
	now   func() time.Time
	epoch time.Time

	mu sync.Mutex
	// tats holds each key's theoretical arrival time, relative to epoch.
	tats map[string]time.Duration
	// sweepAt is the map size at which expired keys are swept next, so
	// that keys of clients long gone do not pile up.
	sweepAt int
}

// NewLocal returns an in-process limiter. now is the clock; nil means
// time.Now.
func NewLocal(now func() time.Time) *Local {
	if now == nil {
		now = time.Now
	}
	return &Local{now: now, epoch: now(), tats: make(map[string]time.Duration), sweepAt: 1024}
}

// Allow implements Limiter. It never fails for a valid limit.
func (l *Local) Allow(_ context.Context, key string, limit Limit) (Result, error) {
	if err := limit.Check(); err != nil {
		return Result{}, err
	}
	now := l.now().Sub(l.epoch)
	l.mu.Lock()
	defer l.mu.Unlock()
	res, tat := gcra(now, l.tats[key], limit)
	if res.Allowed {
		l.tats[key] = tat
		if len(l.tats) >= l.sweepAt {
			l.sweepLocked(now)
		}
	}
	return res, nil
}

// sweepLocked drops keys whose TAT has passed (they are back to a full
// burst, the same as absent) and sets the next sweep at twice what is left.
func (l *Local) sweepLocked(now time.Duration) {
	for k, tat := range l.tats {
		if tat <= now {
			delete(l.tats, k)
		}
	}
	l.sweepAt = max(1024, 2*len(l.tats))
}

// Len is the number of keys held (for tests and stats).
func (l *Local) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.tats)
}
