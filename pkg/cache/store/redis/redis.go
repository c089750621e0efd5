// Package redis is the cache store shared by every handoff process on one
// Redis, through the process's one go-redis UniversalClient (built by
// pkg/state/redis). Values expire with their TTL; keys are namespaced by
// a prefix; invalidations are published so that memory tiers in front of
// it (store/tiered) drop their copies too. It also takes the short locks
// that coalesce misses across processes.
//
// Redis is never allowed to fail a request: every call is bounded by a
// timeout, and after a failure the store answers "unavailable" at once
// for a back-off period instead of waiting on a dead server again.
//
// It must not know what the values mean.
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/handoff-proxy/handoff/pkg/cache/store"
)

// ErrUnavailable is returned while Redis is considered down.
var ErrUnavailable = errors.New("cache store: redis unavailable")

// Options configure a Store.
type Options struct {
	// Prefix starts every key: keys are "<Prefix>:cache:<key>". Empty
	// means "handoff". It must not contain '{' or '}'.
	Prefix string
	// Timeout bounds each call. Zero means 250ms.
	Timeout time.Duration
	// RetryAfter is how long the store stays unavailable after a failed
	// call before trying Redis again. Zero means 1s.
	RetryAfter time.Duration
	// Now is the clock for the back-off. Nil means time.Now.
	Now func() time.Time
	// Logger receives outage reports (once per outage). Nil discards.
	Logger *slog.Logger
}

// Store is the Redis store.
type Store struct {
	c         goredis.UniversalClient
	o         Options
	ns        string
	downUntil atomic.Int64 // unix nanos; 0 when up
	down      atomic.Bool
}

var (
	_ store.Store  = (*Store)(nil)
	_ store.Locker = (*Store)(nil)
)

// New returns a Store on c, which the caller owns and closes.
func New(c goredis.UniversalClient, o Options) *Store {
	if o.Prefix == "" {
		o.Prefix = "handoff"
	}
	if o.Timeout == 0 {
		o.Timeout = 250 * time.Millisecond
	}
	if o.RetryAfter == 0 {
		o.RetryAfter = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Store{c: c, o: o, ns: o.Prefix + ":cache:"}
}

// Channel is the pub/sub channel on which invalidations are published.
func (s *Store) Channel() string { return s.o.Prefix + ":cache-invalidate" }

// Client returns the Redis client, for subscribing to Channel.
func (s *Store) Client() goredis.UniversalClient { return s.c }

// key maps a cache key to a Redis key. Braces are escaped so no URL can
// pick a Redis Cluster hash slot (a hash tag), and '%' so the escape is
// reversible.
func (s *Store) key(k string) string {
	if strings.ContainsAny(k, "{}%") {
		k = strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D").Replace(k)
	}
	return s.ns + k
}

// call runs f with the call timeout unless Redis is in its back-off
// period, and starts one on failure.
func (s *Store) call(ctx context.Context, what string, f func(ctx context.Context) error) error {
	if until := s.downUntil.Load(); until != 0 && s.o.Now().UnixNano() < until {
		return ErrUnavailable
	}
	ctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
	defer cancel()
	err := f(ctx)
	if err == nil || errors.Is(err, goredis.Nil) {
		if s.down.CompareAndSwap(true, false) {
			s.o.Logger.Info("cache redis tier is back")
		}
		s.downUntil.Store(0)
		return err
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return err // the caller gave up; Redis is not to blame
	}
	s.downUntil.Store(s.o.Now().Add(s.o.RetryAfter).UnixNano())
	if s.down.CompareAndSwap(false, true) {
		s.o.Logger.Warn("cache redis tier unavailable, serving from memory", "op", what, "err", err)
	}
	return fmt.Errorf("redis %s: %w", what, err)
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, key string) ([]byte, time.Duration, error) {
	var val []byte
	var ttl time.Duration
	err := s.call(ctx, "get", func(ctx context.Context) error {
		var get *goredis.StringCmd
		var pttl *goredis.DurationCmd
		_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			get = p.Get(ctx, s.key(key))
			pttl = p.PTTL(ctx, s.key(key))
			return nil
		})
		if err != nil {
			return err
		}
		val, _ = get.Bytes()
		ttl = pttl.Val()
		return nil
	})
	if errors.Is(err, goredis.Nil) || (err == nil && ttl <= 0) {
		return nil, 0, store.ErrNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	return val, ttl, nil
}

// Set implements store.Store.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if ttl < time.Millisecond {
		return s.Delete(ctx, key)
	}
	return s.call(ctx, "set", func(ctx context.Context) error {
		return s.c.Set(ctx, s.key(key), value, ttl).Err()
	})
}

// Delete implements store.Store. The keys are deleted one by one (they may
// live in different Cluster slots), in one pipeline. store/tiered publishes
// the deletion for the memory tiers of the other processes.
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	return s.call(ctx, "delete", func(ctx context.Context) error {
		_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for _, k := range keys {
				p.Del(ctx, s.key(k))
			}
			return nil
		})
		return err
	})
}

// Purge implements store.Store with SCAN and UNLINK on every master.
func (s *Store) Purge(ctx context.Context, prefix string) (int, error) {
	pattern := s.key(globEscape(prefix)) + "*"
	var n atomic.Int64
	scan := func(ctx context.Context, c goredis.UniversalClient) error {
		iter := c.Scan(ctx, 0, pattern, 500).Iterator()
		for iter.Next(ctx) {
			if err := c.Unlink(ctx, iter.Val()).Err(); err != nil {
				return err
			}
			n.Add(1)
		}
		return iter.Err()
	}
	// A purge walks the key space: give it more than one call's time.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var err error
	if cc, ok := s.c.(*goredis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error { return scan(ctx, c) })
	} else {
		err = scan(ctx, s.c)
	}
	if err != nil {
		return int(n.Load()), fmt.Errorf("redis purge: %w", err)
	}
	return int(n.Load()), nil
}

func globEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, "*", `\*`, "?", `\?`, "[", `\[`, "]", `\]`).Replace(s)
}

// unlockScript deletes a lock only if the token still holds it.
var unlockScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

func (s *Store) lockKey(name string) string {
	return s.o.Prefix + ":cache-lock:" + strings.NewReplacer("{", "%7B", "}", "%7D").Replace(name)
}

// TryLock implements store.Locker with SET NX PX.
func (s *Store) TryLock(ctx context.Context, name, token string, ttl time.Duration) (bool, error) {
	var ok bool
	err := s.call(ctx, "lock", func(ctx context.Context) error {
		var err error
		ok, err = s.c.SetNX(ctx, s.lockKey(name), token, ttl).Result()
		return err
	})
	return ok, err
}

// Unlock implements store.Locker.
func (s *Store) Unlock(ctx context.Context, name, token string) error {
	return s.call(ctx, "unlock", func(ctx context.Context) error {
		return unlockScript.Run(ctx, s.c, []string{s.lockKey(name)}, token).Err()
	})
}

// Locked implements store.Locker.
func (s *Store) Locked(ctx context.Context, name string) (bool, error) {
	var n int64
	err := s.call(ctx, "locked", func(ctx context.Context) error {
		var err error
		n, err = s.c.Exists(ctx, s.lockKey(name)).Result()
		return err
	})
	return n > 0, err
}
