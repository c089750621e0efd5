package l4

import (
	"context"
	"sync"
)

// queue is a bounded byte queue with one consumer: producers never block;
// a push past the bound drops the queue for good (the consumer then
// stops), so one slow reader can neither stall the producer nor grow
// memory. Chunks are shared read-only between queues.
type queue struct {
	limit int

	mu      sync.Mutex
	chunks  [][]byte
	queued  int
	eof     bool
	dropped bool
	wake    chan struct{}
}

func newQueue(limit int) *queue {
	return &queue{limit: limit, wake: make(chan struct{}, 1)}
}

func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// push queues b; it reports false when the queue is (now) dropped and
// overflowed true when this push dropped it.
func (q *queue) push(b []byte) (ok, overflowed bool) {
	q.mu.Lock()
	if q.dropped {
		q.mu.Unlock()
		return false, false
	}
	if q.queued+len(b) > q.limit {
		q.dropped, q.chunks, q.queued = true, nil, 0
		q.mu.Unlock()
		q.signal()
		return false, true
	}
	q.chunks = append(q.chunks, b)
	q.queued += len(b)
	q.mu.Unlock()
	q.signal()
	return true, false
}

// finish marks the end of the stream: the consumer gets done after the
// queued chunks.
func (q *queue) finish() {
	q.mu.Lock()
	q.eof = true
	q.mu.Unlock()
	q.signal()
}

// drop empties and closes the queue; it reports whether it was up.
func (q *queue) drop() bool {
	q.mu.Lock()
	was := q.dropped
	q.dropped, q.chunks, q.queued = true, nil, 0
	q.mu.Unlock()
	q.signal()
	return !was
}

// next waits for the next chunk. done reports the end of the stream after
// finish; ok false with done false means dropped or ctx ended.
func (q *queue) next(ctx context.Context) (b []byte, done, ok bool) {
	for {
		q.mu.Lock()
		switch {
		case q.dropped:
			q.mu.Unlock()
			return nil, false, false
		case len(q.chunks) > 0:
			b = q.chunks[0]
			q.chunks[0] = nil
			q.chunks = q.chunks[1:]
			if len(q.chunks) == 0 {
				q.chunks = nil // let the backing array go
			}
			q.queued -= len(b)
			q.mu.Unlock()
			return b, false, true
		case q.eof:
			q.mu.Unlock()
			return nil, true, false
		}
		q.mu.Unlock()
		select {
		case <-q.wake:
		case <-ctx.Done():
			return nil, false, false
		}
	}
}
