package ratelimit

import (
	"cmp"
	"slices"
	"sync"
	"time"
)

// Top keeps the keys denied most often, approximately, in bounded memory:
// the Space-Saving algorithm (Metwally, Agrawal, El Abbadi, "Efficient
// Computation of Frequent and Top-k Elements in Data Streams", ICDT 2005).
// It holds at most Size entries; a new key evicts the least counted one
// and inherits its count, so a key's count may be overestimated by at
// most the evicted count, never underestimated. Callers record on the
// deny path only: allowed requests cost nothing. The zero value is not
// usable; create it with NewTop. Safe for concurrent use.
type Top struct {
	size int
	now  func() time.Time

	mu      sync.Mutex
	entries map[topKey]*TopEntry
}

type topKey struct{ route, key string }

// TopEntry is one key of Top.
type TopEntry struct {
	Route string
	Key   string
	// Denied counts the denials (see Top for the error bound).
	Denied uint64
	// Last is when it was last denied.
	Last time.Time
}

// NewTop returns a Top of size entries (at least 1); now nil means
// time.Now.
func NewTop(size int, now func() time.Time) *Top {
	if now == nil {
		now = time.Now
	}
	size = max(1, size)
	return &Top{size: size, now: now, entries: make(map[topKey]*TopEntry, size)}
}

// Record counts one denial of key on route. It takes O(Size) when a new
// key evicts another, O(1) otherwise.
func (t *Top) Record(route, key string) {
	k := topKey{route, key}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.entries[k]; ok {
		e.Denied++
		e.Last = now
		return
	}
	var base uint64
	if len(t.entries) >= t.size {
		var victim topKey
		var min *TopEntry
		for vk, e := range t.entries {
			// Among the least counted, evict the stalest: a key that
			// stopped being limited makes room first.
			if min == nil || e.Denied < min.Denied || e.Denied == min.Denied && e.Last.Before(min.Last) {
				victim, min = vk, e
			}
		}
		base = min.Denied
		delete(t.entries, victim)
	}
	t.entries[k] = &TopEntry{Route: route, Key: key, Denied: base + 1, Last: now}
}

// List returns the entries denied within the last window (zero means any
// time), most denied first, at most n (zero means all).
func (t *Top) List(window time.Duration, n int) []TopEntry {
	now := t.now()
	t.mu.Lock()
	out := make([]TopEntry, 0, len(t.entries))
	for _, e := range t.entries {
		if window == 0 || now.Sub(e.Last) <= window {
			out = append(out, *e)
		}
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b TopEntry) int {
		if c := cmp.Compare(b.Denied, a.Denied); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Route, b.Route); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	})
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out
}
