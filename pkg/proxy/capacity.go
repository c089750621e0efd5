package proxy

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// waitQueue holds requests for which every eligible target is at its
// max_conns, until a slot frees up (nginx's upstream queue). Waiters are
// woken one at a time: a release signals freed, and a waiter that got a
// slot passes the signal on while others wait, so a burst of releases is
// never lost for long. Wake-ups are not FIFO.
type waitQueue struct {
	size    int64
	timeout time.Duration
	waiting atomic.Int64
	freed   chan struct{} // capacity 1
}

// signal wakes one waiter, if any waits.
func (q *waitQueue) signal() {
	if q.waiting.Load() > 0 {
		select {
		case q.freed <- struct{}{}:
		default:
		}
	}
}

// acquire picks the target for a request's first attempt and takes a slot
// on it: one with room if any eligible target has room (a target that
// is full is passed over for another), otherwise it waits in the queue.
// It returns errNoTarget when no target is eligible at all, errCapacity
// when all eligible ones are full and the queue is full or the wait timed
// out, or the context's error.
func (h *Handler) acquire(ctx context.Context, ex *exchange) (*upstream.Target, func(), error) {
	t, release, full := h.tryPick(ex)
	switch {
	case t != nil:
		return t, release, nil
	case !full:
		return nil, nil, errNoTarget
	case h.queue == nil || h.queue.size == 0:
		return nil, nil, errCapacity
	}
	q := h.queue
	if q.waiting.Add(1) > q.size {
		q.waiting.Add(-1)
		return nil, nil, errCapacity
	}
	defer q.waiting.Add(-1)
	timer := time.NewTimer(q.timeout)
	defer timer.Stop()
	for {
		// Try again after joining: a slot freed between the first try
		// and joining sent no signal.
		t, release, full := h.tryPick(ex)
		switch {
		case t != nil:
			if q.waiting.Load() > 1 {
				q.signal()
			}
			return t, release, nil
		case !full:
			return nil, nil, errNoTarget
		}
		select {
		case <-q.freed:
		case <-timer.C:
			return nil, nil, fmt.Errorf("%w: waited %v", errCapacity, q.timeout)
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
}

// tryPick selects an eligible target with room and takes a slot on it,
// without waiting. full reports, when it returns no target, whether some
// eligible target exists but is at its max_conns.
func (h *Handler) tryPick(ex *exchange) (t *upstream.Target, release func(), full bool) {
	// A selected target can lose its last slot to another request
	// before TryAcquire; it is then full and no longer selected.
	for range len(h.pool.Targets()) + 1 {
		t = h.pick(ex)
		if t == nil {
			break
		}
		if rel, ok := t.TryAcquire(); ok {
			return t, h.wrapRelease(rel), false
		}
	}
	for _, t := range h.pool.Targets() {
		if !ex.hasTried(t) && !t.HasRoom() && h.health.Available(t) {
			return nil, nil, true
		}
	}
	return nil, nil, false
}

// wrapRelease makes a slot's release wake a queued request.
func (h *Handler) wrapRelease(rel func()) func() {
	if h.queue == nil {
		return rel
	}
	q := h.queue
	return func() {
		rel()
		q.signal()
	}
}

// pick asks the Selector for a target that Health finds available, that
// has room and that this request has not tried yet; nil when there is
// none.
func (h *Handler) pick(ex *exchange) *upstream.Target {
	return h.sel.Select(ex.key, func(t *upstream.Target) bool {
		return !ex.hasTried(t) && t.HasRoom() && h.health.Available(t)
	})
}
