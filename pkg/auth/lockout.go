package auth

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Backoff says when failed attempts lock a key (a client address or a
// user name) out, and for how long: after Free failures within Window,
// each further failure locks the key for Base doubled per failure past
// Free, at most Max (the exponential backoff of OWASP's authentication
// cheat sheet, without locking a user out for good).
type Backoff struct {
	// Free is how many failures pass before locking. Zero means 5.
	Free int
	// Base is the first lock. Zero means 1s.
	Base time.Duration
	// Max caps a lock. Zero means 15m.
	Max time.Duration
	// Window is how long failures are remembered after the last one.
	// Zero means 15m.
	Window time.Duration
}

func (b Backoff) withDefaults() Backoff {
	if b.Free <= 0 {
		b.Free = 5
	}
	if b.Base <= 0 {
		b.Base = time.Second
	}
	if b.Max <= 0 {
		b.Max = 15 * time.Minute
	}
	if b.Window <= 0 {
		b.Window = 15 * time.Minute
	}
	return b
}

// lockFor is the lock after the n-th failure (zero while n <= Free).
func (b Backoff) lockFor(n int64) time.Duration {
	if n <= int64(b.Free) {
		return 0
	}
	exp := min(n-int64(b.Free)-1, 40)
	d := time.Duration(math.Min(float64(b.Base)*math.Pow(2, float64(exp)), float64(b.Max)))
	return d
}

// Lockout counts failed attempts per key and locks keys out.
type Lockout interface {
	// Locked returns how long key stays locked; zero when it is not.
	Locked(ctx context.Context, key string) (time.Duration, error)
	// Failed counts a failure of key and returns the lock it caused
	// (zero when none).
	Failed(ctx context.Context, key string) (time.Duration, error)
	// Succeeded forgets key's failures.
	Succeeded(ctx context.Context, key string) error
}

// MemoryLockout is a Lockout in this process. Use NewMemoryLockout.
type MemoryLockout struct {
	b   Backoff
	now func() time.Time
	mu  sync.Mutex
	m   map[string]*failures
}

type failures struct {
	n          int64
	last, till time.Time
}

// NewMemoryLockout returns a lockout kept in memory; now nil means
// time.Now.
func NewMemoryLockout(b Backoff, now func() time.Time) *MemoryLockout {
	if now == nil {
		now = time.Now
	}
	return &MemoryLockout{b: b.withDefaults(), now: now, m: make(map[string]*failures)}
}

func (m *MemoryLockout) Locked(_ context.Context, key string) (time.Duration, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.m[key]
	if f == nil || !f.till.After(now) {
		return 0, nil
	}
	return f.till.Sub(now), nil
}

func (m *MemoryLockout) Failed(_ context.Context, key string) (time.Duration, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.m) > 4096 {
		for k, f := range m.m {
			if now.Sub(f.last) > m.b.Window && !f.till.After(now) {
				delete(m.m, k)
			}
		}
	}
	f := m.m[key]
	if f == nil || now.Sub(f.last) > m.b.Window {
		f = &failures{}
		m.m[key] = f
	}
	f.n++
	f.last = now
	d := m.b.lockFor(f.n)
	if d > 0 {
		f.till = now.Add(d)
	}
	return d, nil
}

func (m *MemoryLockout) Succeeded(_ context.Context, key string) error {
	m.mu.Lock()
	delete(m.m, key)
	m.mu.Unlock()
	return nil
}

// failScript counts a failure and sets the lock in one round trip. KEYS:
// count, lock (one hash tag, one cluster slot). ARGV: window ms, free,
// base ms, max ms.
var failScript = goredis.NewScript(`
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
local free = tonumber(ARGV[2])
if n <= free then return 0 end
local e = n - free - 1
if e > 40 then e = 40 end
local lock = tonumber(ARGV[3]) * (2 ^ e)
if lock > tonumber(ARGV[4]) then lock = tonumber(ARGV[4]) end
lock = math.floor(lock)
redis.call('SET', KEYS[2], '1', 'PX', lock)
return lock
`)

// RedisLockout is a Lockout shared by every process through Redis.
type RedisLockout struct {
	b      Backoff
	client goredis.UniversalClient
	prefix string
}

// NewRedisLockout returns a lockout on client; prefix empty means
// "handoff:authfail:".
func NewRedisLockout(b Backoff, client goredis.UniversalClient, prefix string) *RedisLockout {
	if prefix == "" {
		prefix = "handoff:authfail:"
	}
	return &RedisLockout{b: b.withDefaults(), client: client, prefix: prefix}
}

func (r *RedisLockout) keys(key string) []string {
	base := r.prefix + "{" + key + "}"
	return []string{base + ":n", base + ":lock"}
}

func (r *RedisLockout) Locked(ctx context.Context, key string) (time.Duration, error) {
	d, err := r.client.PTTL(ctx, r.keys(key)[1]).Result()
	if err != nil {
		return 0, fmt.Errorf("auth lockout in redis: %w", err)
	}
	return max(d, 0), nil
}

func (r *RedisLockout) Failed(ctx context.Context, key string) (time.Duration, error) {
	ms, err := failScript.Run(ctx, r.client, r.keys(key), r.b.Window.Milliseconds(), r.b.Free,
		r.b.Base.Milliseconds(), r.b.Max.Milliseconds()).Int64()
	if err != nil {
		return 0, fmt.Errorf("auth lockout in redis: %w", err)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

func (r *RedisLockout) Succeeded(ctx context.Context, key string) error {
	if err := r.client.Del(ctx, r.keys(key)[0]).Err(); err != nil {
		return fmt.Errorf("auth lockout in redis: %w", err)
	}
	return nil
}

// FallbackLockout uses Shared and, when it fails, Local, so that a Redis
// outage never fails a login; the outage is logged once.
type FallbackLockout struct {
	Shared, Local Lockout
	Logger        *slog.Logger
	down          atomic.Bool
}

func (f *FallbackLockout) note(err error) bool {
	if err == nil {
		f.down.Store(false)
		return false
	}
	if f.down.CompareAndSwap(false, true) && f.Logger != nil {
		f.Logger.Warn("auth lockout cannot reach redis: counting failures per process", "error", err)
	}
	return true
}

func (f *FallbackLockout) Locked(ctx context.Context, key string) (time.Duration, error) {
	if f.Shared != nil {
		if d, err := f.Shared.Locked(ctx, key); !f.note(err) {
			return d, nil
		}
	}
	return f.Local.Locked(ctx, key)
}

func (f *FallbackLockout) Failed(ctx context.Context, key string) (time.Duration, error) {
	if f.Shared != nil {
		if d, err := f.Shared.Failed(ctx, key); !f.note(err) {
			return d, nil
		}
	}
	return f.Local.Failed(ctx, key)
}

func (f *FallbackLockout) Succeeded(ctx context.Context, key string) error {
	if f.Shared != nil {
		if err := f.Shared.Succeeded(ctx, key); !f.note(err) {
			return nil
		}
	}
	return f.Local.Succeeded(ctx, key)
}
