package redis_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/cache/store"
	"github.com/handoff-proxy/handoff/pkg/cache/store/redis"
	"github.com/handoff-proxy/handoff/pkg/cache/store/storetest"
	"github.com/handoff-proxy/handoff/pkg/handofftest"
	sredis "github.com/handoff-proxy/handoff/pkg/state/redis"
	"github.com/handoff-proxy/handoff/pkg/state/statetest"
)

func TestContract(t *testing.T) {
	srv := statetest.StartRedis(t)
	n := 0
	storetest.Run(t, func(t *testing.T) store.Store {
		c, err := sredis.NewClient(sredis.Options{URL: "redis://" + srv.Addr})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		n++ // a fresh prefix per subtest: an empty store
		return redis.New(c, redis.Options{Prefix: "t" + string(rune('a'+n)), Logger: handofftest.Logger(t)})
	})
}

// TestGarbageIgnoredAndOutage: a value under the prefix that another
// program wrote is returned as bytes (pkg/cache rejects it), and a dead
// server fails fast with ErrUnavailable during the back-off.
func TestOutageFailsFast(t *testing.T) {
	srv := statetest.StartRedis(t)
	c, err := sredis.NewClient(sredis.Options{URL: "redis://" + srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := redis.New(c, redis.Options{Logger: handofftest.Logger(t), RetryAfter: time.Minute})
	ctx := context.Background()
	srv.Stop()
	if _, _, err := s.Get(ctx, "k"); err == nil {
		t.Fatal("Get with Redis down succeeded")
	}
	start := time.Now()
	if _, _, err := s.Get(ctx, "k"); !errors.Is(err, redis.ErrUnavailable) {
		t.Fatalf("second Get: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 10*time.Millisecond {
		t.Fatalf("Get during back-off took %v", d)
	}
}

func TestLock(t *testing.T) {
	srv := statetest.StartRedis(t)
	c, err := sredis.NewClient(sredis.Options{URL: "redis://" + srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := redis.New(c, redis.Options{})
	ctx := context.Background()
	if ok, err := s.TryLock(ctx, "fill:x", "a", time.Second); !ok || err != nil {
		t.Fatalf("first TryLock = %v, %v", ok, err)
	}
	if ok, _ := s.TryLock(ctx, "fill:x", "b", time.Second); ok {
		t.Fatal("second holder got the lock")
	}
	_ = s.Unlock(ctx, "fill:x", "b") // not the holder: no effect
	if locked, _ := s.Locked(ctx, "fill:x"); !locked {
		t.Fatal("unlock by a non-holder released the lock")
	}
	_ = s.Unlock(ctx, "fill:x", "a")
	if locked, _ := s.Locked(ctx, "fill:x"); locked {
		t.Fatal("lock still held after Unlock")
	}
}
