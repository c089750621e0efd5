package redis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime/debug"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/handoff-proxy/handoff/pkg/state"
)

// pingEvery is how long the subscription may be silent before the store
// pings Redis through it: it bounds how late Up notices an outage while
// nothing else calls Redis.
const pingEvery = time.Second

// Start implements state.Store: it starts the goroutine that subscribes to
// verdict notifications, resyncs all verdicts after every (re)subscription
// and every ResyncInterval, and delivers changes to watchers. It returns
// at once; the first subscription happens in the background, so a process
// starts even while Redis is down.
func (s *Store) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed {
		return errors.New("redis state store: already started or closed")
	}
	s.started = true
	ctx, s.cancel = context.WithCancel(ctx)
	s.done = make(chan struct{})
	go s.run(ctx)
	return nil
}

// Close implements state.Store. It does not close the client.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	cancel, done, ps := s.cancel, s.done, s.pubsub
	s.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	if ps != nil {
		_ = ps.Close() // ends a read blocked on the subscription
	}
	<-done
	return nil
}

// run keeps a subscription alive until ctx ends, reconnecting with
// exponential backoff and jitter after each failure.
func (s *Store) run(ctx context.Context) {
	defer close(s.done)
	seen := map[state.VerdictKey]state.Verdict{}
	backoff := s.o.MinBackoff
	for {
		healthy, err := s.session(ctx, seen)
		if ctx.Err() != nil {
			return
		}
		s.observe(err)
		if healthy {
			backoff = s.o.MinBackoff
		}
		// Full jitter between backoff/2 and backoff spreads reconnections
		// of many processes after a Redis restart.
		wait := backoff/2 + rand.N(backoff/2+1)
		s.log.Debug("state subscription ended; reconnecting", "err", err, "in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, s.o.MaxBackoff)
	}
}

// session subscribes, resyncs and delivers notifications until the
// subscription fails. It reports whether it got as far as a resync (so
// the backoff restarts from the minimum).
func (s *Store) session(ctx context.Context, seen map[state.VerdictKey]state.Verdict) (healthy bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("state subscription panicked", "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("subscription panicked: %v", r)
		}
	}()
	ps := s.client.Subscribe(ctx)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ps.Close()
		return false, context.Canceled
	}
	s.pubsub = ps
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.pubsub = nil
		s.mu.Unlock()
		_ = ps.Close()
	}()

	sctx, cancel := s.call(ctx)
	err = ps.Subscribe(sctx, s.channel)
	if err == nil {
		// The confirmation proves the subscription is live before the
		// resync, so no verdict written in between is missed.
		_, err = ps.ReceiveTimeout(sctx, s.o.Timeout)
	}
	cancel()
	if err != nil {
		return false, fmt.Errorf("subscribe to %s: %w", s.channel, err)
	}
	s.observe(nil)
	if err := s.resync(ctx, seen); err != nil {
		return false, err
	}
	lastResync := time.Now()
	var pingSent time.Time // zero: no ping outstanding
	for {
		msg, err := ps.ReceiveTimeout(ctx, pingEvery)
		switch {
		case err == nil:
			pingSent = time.Time{}
			if m, ok := msg.(*goredis.Message); ok {
				s.deliverRaw(m.Payload, seen)
			}
		case !isTimeout(err):
			return true, fmt.Errorf("receive on %s: %w", s.channel, err)
		case !pingSent.IsZero() && time.Since(pingSent) > s.o.Timeout:
			return true, fmt.Errorf("ping on %s: no answer within %v: %w", s.channel, s.o.Timeout, context.DeadlineExceeded)
		case pingSent.IsZero():
			pctx, cancel := s.call(ctx)
			err := ps.Ping(pctx)
			cancel()
			if err != nil {
				return true, fmt.Errorf("ping on %s: %w", s.channel, err)
			}
			pingSent = time.Now()
		}
		if time.Since(lastResync) >= s.o.ResyncInterval {
			if err := s.resync(ctx, seen); err != nil {
				return true, err
			}
			lastResync = time.Now()
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// resync reads every verdict and delivers those that differ from what was
// seen; verdicts gone from Redis are forgotten.
func (s *Store) resync(ctx context.Context, seen map[state.VerdictKey]state.Verdict) error {
	vs, err := s.Verdicts(ctx)
	if err != nil {
		return err
	}
	present := make(map[state.VerdictKey]bool, len(vs))
	for _, v := range vs {
		present[v.Key()] = true
		s.deliver(v, seen)
	}
	for k := range seen {
		if !present[k] {
			delete(seen, k)
		}
	}
	return nil
}

func (s *Store) deliverRaw(payload string, seen map[state.VerdictKey]state.Verdict) {
	v, err := state.DecodeVerdict([]byte(payload))
	if err != nil {
		s.logBadValue(s.channel, payload, err)
		return
	}
	s.deliver(v, seen)
}

// deliver hands v to every watcher unless it equals the last verdict
// delivered for its key.
func (s *Store) deliver(v state.Verdict, seen map[state.VerdictKey]state.Verdict) {
	if old, ok := seen[v.Key()]; ok && old.Equal(v) {
		return
	}
	seen[v.Key()] = v
	for _, fn := range s.watchers.Snapshot() {
		state.CallWatcher(s.log, fn, v)
	}
}
