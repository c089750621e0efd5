// Package store defines where the HTTP cache keeps its values: opaque
// byte strings by key, each with a time to live. Implementations are
// store/memory (one process, bounded in bytes), store/redis (shared by
// every process on one Redis) and store/tiered (memory in front of Redis).
//
// It must not know what the values mean: HTTP semantics live in pkg/cache.
package store

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned by Get for a missing or expired key.
var ErrNotFound = errors.New("cache store: not found")

// Store keeps values by key. Every method is safe for concurrent use.
type Store interface {
	// Get returns the value at key and how long it has left to live, or
	// ErrNotFound. The caller must not modify the value.
	Get(ctx context.Context, key string) (value []byte, ttl time.Duration, err error)
	// Set stores value at key for ttl; a ttl of zero or less deletes it.
	// The store keeps its own copy: the caller may reuse value.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Delete removes keys; missing keys are not an error.
	Delete(ctx context.Context, keys ...string) error
	// Purge removes every key that starts with prefix ("" removes all) and
	// reports how many it removed.
	Purge(ctx context.Context, prefix string) (int, error)
}

// Stats describe what a store holds.
type Stats struct {
	// Entries is the number of stored values.
	Entries int64
	// Bytes is their size, keys and bookkeeping included.
	Bytes int64
}

// Locker takes short, expiring locks shared by every process, for
// coalescing misses across processes. Only shared stores implement it.
type Locker interface {
	// TryLock takes the lock name for ttl unless someone holds it, and
	// reports whether it did. token identifies the holder.
	TryLock(ctx context.Context, name, token string, ttl time.Duration) (bool, error)
	// Unlock releases the lock if token still holds it.
	Unlock(ctx context.Context, name, token string) error
	// Locked reports whether anyone holds the lock.
	Locked(ctx context.Context, name string) (bool, error)
}
