package cache

import (
	"context"
	"sync"
	"time"
)

// flights coalesces work on one key within the process: the first caller
// leads, the others wait until it is done and then look in the store
// again (like x/sync/singleflight, but the result travels through the
// store, so a leader streaming a large body to a slow client does not
// hold the waiters once the entry is stored).
type flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

type flight struct{ done chan struct{} }

// join makes the caller the leader of key, or returns the flight to wait
// for.
func (f *flights) join(key string) (fl *flight, leader bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fl := f.m[key]; fl != nil {
		return fl, false
	}
	if f.m == nil {
		f.m = map[string]*flight{}
	}
	fl = &flight{done: make(chan struct{})}
	f.m[key] = fl
	return fl, true
}

// finish ends the leader's flight and wakes its waiters. Safe to call more
// than once.
func (f *flights) finish(key string, fl *flight) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m[key] == fl {
		delete(f.m, key)
		close(fl.done)
	}
}

// wait blocks until fl is done, ctx ends or d passes; it reports whether
// the flight finished.
func (fl *flight) wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-fl.done:
		return true
	case <-ctx.Done():
	case <-t.C:
	}
	return false
}

// lockName is the cross-process lock of a fill of key.
func lockName(key string) string { return "fill:" + key }

// awaitRemote waits while another process holds the fill lock of key,
// polling the store, and returns what it found: an entry once stored, or
// nil when the lock went away, ctx ended or LockTTL passed (the caller
// then fetches itself).
func (h *handler) awaitRemote(ctx context.Context, key string, hdr Header) *Entry {
	deadline := h.c.o.Now().Add(h.c.o.LockTTL)
	poll := 5 * time.Millisecond
	for h.c.o.Now().Before(deadline) {
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		if e, _ := h.c.lookup(ctx, key, hdr); e != nil {
			return e
		}
		locked, err := h.c.o.Locker.Locked(ctx, lockName(key))
		if err != nil || !locked {
			// The filler finished without storing, or Redis is gone:
			// one more look, then fetch ourselves.
			e, _ := h.c.lookup(ctx, key, hdr)
			return e
		}
		poll = min(poll*2, 50*time.Millisecond)
	}
	return nil
}
