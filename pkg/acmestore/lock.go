package acmestore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// A lock is a key set with NX and an expiry, holding a token only its
// holder knows (the single-instance pattern of the Redis SET documentation,
// https://redis.io/docs/latest/commands/set/#patterns). The holder refreshes
// the expiry while it works, so a long ACME order keeps its lock, and a
// holder that dies frees it after LockTTL. Release and refresh compare the
// token first, so a holder whose lock already expired never frees someone
// else's.

var (
	unlockScript = goredis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)
	renewScript  = goredis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end return 0`)
)

// errNotHeld is returned when this Store does not hold the named lock.
var errNotHeld = errors.New("lock not held")

// Lock blocks until it holds the lock for name or ctx ends.
func (s *Store) Lock(ctx context.Context, name string) error {
	for {
		ok, err := s.TryLock(ctx, name)
		if ok {
			return nil
		}
		if err != nil {
			// Redis unreachable: certmagic retries the whole order with
			// backoff; waiting here would hide the outage from it.
			return err
		}
		t := time.NewTimer(s.poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("lock %s: %w", name, ctx.Err())
		case <-t.C:
		}
	}
}

// TryLock takes the lock for name if it is free and reports whether it
// did.
func (s *Store) TryLock(ctx context.Context, name string) (bool, error) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	token := s.ownerID + "-" + hex.EncodeToString(b[:])
	ok, err := s.c.SetNX(ctx, s.lockKey(name), token, s.ttl).Result()
	if err != nil {
		return false, fmt.Errorf("lock %s: %w", name, err)
	}
	if !ok {
		return false, nil
	}
	h := &heldLock{token: token, stop: make(chan struct{})}
	s.mu.Lock()
	if old := s.locks[name]; old != nil {
		close(old.stop) // expired meanwhile and taken again: the new one counts
	}
	s.locks[name] = h
	s.mu.Unlock()
	s.wg.Add(1)
	go s.keepFresh(name, h)
	return true, nil
}

// keepFresh extends the lock's expiry every LockTTL/3 until it is
// released or lost.
func (s *Store) keepFresh(name string, h *heldLock) {
	defer s.wg.Done()
	t := time.NewTicker(s.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), s.ttl/3)
			n, err := renewScript.Run(ctx, s.c, []string{s.lockKey(name)}, h.token, s.ttl.Milliseconds()).Int()
			cancel()
			if err == nil && n == 0 {
				return // lost (expired while Redis was away): nothing to keep
			}
		}
	}
}

// RenewLockLease extends the expiry of a lock this Store holds.
func (s *Store) RenewLockLease(ctx context.Context, name string, lease time.Duration) error {
	s.mu.Lock()
	h := s.locks[name]
	s.mu.Unlock()
	if h == nil {
		return fmt.Errorf("renew lock %s: %w", name, errNotHeld)
	}
	n, err := renewScript.Run(ctx, s.c, []string{s.lockKey(name)}, h.token, lease.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("renew lock %s: %w", name, err)
	}
	if n == 0 {
		return fmt.Errorf("renew lock %s: %w", name, errNotHeld)
	}
	return nil
}

// Unlock releases the lock for name if this Store still holds it.
func (s *Store) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	h := s.locks[name]
	delete(s.locks, name)
	s.mu.Unlock()
	if h == nil {
		return fmt.Errorf("unlock %s: %w", name, errNotHeld)
	}
	close(h.stop)
	if _, err := unlockScript.Run(ctx, s.c, []string{s.lockKey(name)}, h.token).Result(); err != nil {
		return fmt.Errorf("unlock %s: %w", name, err)
	}
	return nil
}

// Close stops refreshing the locks still held (they expire after LockTTL)
// and waits for the goroutines that refreshed them. The client stays
// open: it belongs to the caller.
func (s *Store) Close() {
	s.mu.Lock()
	for name, h := range s.locks {
		close(h.stop)
		delete(s.locks, name)
	}
	s.mu.Unlock()
	s.wg.Wait()
}
