// Package memory is the cache store of one process: values in a map, with
// least-recently-used eviction bounded by their total size in bytes and
// lazy expiry by TTL.
//
// Why LRU and not S3-FIFO or W-TinyLFU: a cache in front of a single
// origin mostly sees recency-driven access, the LRU's O(1) bookkeeping
// under one mutex measured well below the cost of an HTTP request
// (BenchmarkGetParallel), and purging by prefix needs to walk the keys,
// which the library caches we looked at (otter, ristretto) make awkward.
//
// It must not know what the values mean.
package memory

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/handoff-proxy/handoff/pkg/cache/store"
)

// Overhead is the bookkeeping counted per entry on top of its key and value,
// so that many tiny values still respect the byte budget.
const Overhead = 96

// Options configure a Store.
type Options struct {
	// MaxBytes bounds the keys, values and Overhead of the entries held.
	// Zero means 64 MiB.
	MaxBytes int64
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Store is the memory store. The zero value is not usable: call New.
type Store struct {
	mu      sync.Mutex
	max     int64
	now     func() time.Time
	items   map[string]*node
	head    node // sentinel: head.next is the most recently used
	bytes   int64
	evicted int64
}

type node struct {
	key        string
	value      []byte
	expires    time.Time
	prev, next *node
}

var _ store.Store = (*Store)(nil)

// New returns an empty Store.
func New(o Options) *Store {
	if o.MaxBytes == 0 {
		o.MaxBytes = 64 << 20
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Store{max: o.MaxBytes, now: o.Now, items: map[string]*node{}}
	s.head.next, s.head.prev = &s.head, &s.head
	return s
}

func size(n *node) int64 { return int64(len(n.key) + len(n.value) + Overhead) }

// Get implements store.Store.
func (s *Store) Get(_ context.Context, key string) ([]byte, time.Duration, error) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.items[key]
	if n == nil {
		return nil, 0, store.ErrNotFound
	}
	ttl := n.expires.Sub(now)
	if ttl <= 0 {
		s.removeLocked(n)
		return nil, 0, store.ErrNotFound
	}
	s.unlinkLocked(n)
	s.pushFrontLocked(n)
	return n.value, ttl, nil
}

// Set implements store.Store. A value larger than the whole budget is
// not stored.
func (s *Store) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.items[key]; old != nil {
		s.removeLocked(old)
	}
	n := &node{key: key, value: append([]byte(nil), value...), expires: s.now().Add(ttl)}
	if ttl <= 0 || size(n) > s.max {
		return nil
	}
	s.items[key] = n
	s.pushFrontLocked(n)
	s.bytes += size(n)
	for s.bytes > s.max {
		s.removeLocked(s.head.prev)
		s.evicted++
	}
	return nil
}

// Delete implements store.Store.
func (s *Store) Delete(_ context.Context, keys ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		if n := s.items[k]; n != nil {
			s.removeLocked(n)
		}
	}
	return nil
}

// Purge implements store.Store.
func (s *Store) Purge(_ context.Context, prefix string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	count := 0
	for k, n := range s.items {
		if strings.HasPrefix(k, prefix) {
			s.removeLocked(n)
			count++
		}
	}
	return count, nil
}

// Stats reports what the store holds (expired entries not yet touched
// included).
func (s *Store) Stats() store.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return store.Stats{Entries: int64(len(s.items)), Bytes: s.bytes}
}

func (s *Store) removeLocked(n *node) {
	s.unlinkLocked(n)
	delete(s.items, n.key)
	s.bytes -= size(n)
}

func (s *Store) unlinkLocked(n *node) {
	n.prev.next, n.next.prev = n.next, n.prev
	n.prev, n.next = nil, nil
}

func (s *Store) pushFrontLocked(n *node) {
	n.prev, n.next = &s.head, s.head.next
	s.head.next.prev = n
	s.head.next = n
}
