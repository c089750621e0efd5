// Package tiered is the cache store of a process that shares its cache:
// a memory store in front of the Redis store. Reads try memory first and
// copy what they find in Redis into memory; writes go to both;
// invalidations go to both and are published on Redis so that every other
// process drops its memory copy too.
//
// A Redis outage never fails a call: the memory tier answers alone, and
// Redis errors are only logged (by the Redis store, once per outage).
// Invalidations published while a process is cut off from Redis are lost
// for that process's memory tier; its copies still expire with their TTL.
//
// It must not know what the values mean.
package tiered

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/handoff-proxy/handoff/pkg/cache/store"
	"github.com/handoff-proxy/handoff/pkg/cache/store/memory"
	"github.com/handoff-proxy/handoff/pkg/cache/store/redis"
)

// Store is memory in front of Redis.
type Store struct {
	mem    *memory.Store
	shared *redis.Store
	id     string
	log    *slog.Logger

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var (
	_ store.Store  = (*Store)(nil)
	_ store.Locker = (*Store)(nil)
)

// message is one published invalidation.
type message struct {
	From   string   `json:"from"`
	Keys   []string `json:"keys,omitempty"`
	Prefix *string  `json:"prefix,omitempty"`
}

// New returns a two-tier store. id names this process in published
// messages (it ignores its own). A nil logger discards.
func New(mem *memory.Store, shared *redis.Store, id string, log *slog.Logger) *Store {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{mem: mem, shared: shared, id: id, log: log}
}

// Start subscribes to the invalidations of the other processes until Close.
// The subscription reconnects by itself (go-redis PubSub).
func (s *Store) Start(ctx context.Context) {
	ctx, s.cancel = context.WithCancel(ctx)
	sub := s.shared.Client().Subscribe(ctx, s.shared.Channel())
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer sub.Close()
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("cache invalidation listener panicked", "panic", r, "stack", string(debug.Stack()))
			}
		}()
		ch := sub.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-ch:
				if !ok {
					return
				}
				s.apply(ctx, m.Payload)
			}
		}
	}()
}

// Close stops the subscription and waits for it.
func (s *Store) Close() {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
}

func (s *Store) apply(ctx context.Context, payload string) {
	var m message
	if err := json.Unmarshal([]byte(payload), &m); err != nil || m.From == s.id {
		return
	}
	_ = s.mem.Delete(ctx, m.Keys...)
	if m.Prefix != nil {
		_, _ = s.mem.Purge(ctx, *m.Prefix)
	}
}

func (s *Store) publish(ctx context.Context, m message) {
	m.From = s.id
	b, _ := json.Marshal(m)
	ctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
	defer cancel()
	_ = s.shared.Client().Publish(ctx, s.shared.Channel(), b).Err()
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, key string) ([]byte, time.Duration, error) {
	if v, ttl, err := s.mem.Get(ctx, key); err == nil {
		return v, ttl, nil
	}
	v, ttl, err := s.shared.Get(ctx, key)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			err = fmt.Errorf("%w (%w)", store.ErrNotFound, err)
		}
		return nil, 0, err
	}
	_ = s.mem.Set(ctx, key, v, ttl)
	return v, ttl, nil
}

// Set implements store.Store: memory always, Redis when it is up.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	_ = s.mem.Set(ctx, key, value, ttl)
	_ = s.shared.Set(ctx, key, value, ttl)
	return nil
}

// Delete implements store.Store in both tiers and tells the other
// processes.
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	_ = s.mem.Delete(ctx, keys...)
	if err := s.shared.Delete(ctx, keys...); err == nil {
		s.publish(ctx, message{Keys: keys})
	}
	return nil
}

// Purge implements store.Store in both tiers and tells the other
// processes. The count is the larger of the two tiers'.
func (s *Store) Purge(ctx context.Context, prefix string) (int, error) {
	n, _ := s.mem.Purge(ctx, prefix)
	m, err := s.shared.Purge(ctx, prefix)
	if err == nil {
		s.publish(ctx, message{Prefix: &prefix})
	}
	return max(n, m), err
}

// Stats reports the memory tier.
func (s *Store) Stats() store.Stats { return s.mem.Stats() }

// TryLock implements store.Locker on Redis.
func (s *Store) TryLock(ctx context.Context, name, token string, ttl time.Duration) (bool, error) {
	return s.shared.TryLock(ctx, name, token, ttl)
}

// Unlock implements store.Locker on Redis.
func (s *Store) Unlock(ctx context.Context, name, token string) error {
	return s.shared.Unlock(ctx, name, token)
}

// Locked implements store.Locker on Redis.
func (s *Store) Locked(ctx context.Context, name string) (bool, error) {
	return s.shared.Locked(ctx, name)
}
