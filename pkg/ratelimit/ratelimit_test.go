package ratelimit

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/handoff-proxy/handoff/pkg/state/statetest"
)

// newLimiters makes n limiters that share one limit: n clients on one
// Redis (n processes) or one Local.
type newLimiters func(t *testing.T, n int) []Limiter

func redisLimiters(t *testing.T, n int) []Limiter {
	r := statetest.StartRedis(t)
	out := make([]Limiter, n)
	for i := range out {
		c := goredis.NewClient(&goredis.Options{Addr: r.Addr})
		t.Cleanup(func() { _ = c.Close() })
		out[i] = NewRedis(c, fmt.Sprintf("test:%s:", t.Name()))
	}
	return out
}

func localLimiters(t *testing.T, n int) []Limiter {
	l := NewLocal(nil)
	out := make([]Limiter, n)
	for i := range out {
		out[i] = l
	}
	return out
}

func TestContract(t *testing.T) {
	for _, b := range []struct {
		name string
		new  newLimiters
	}{{"local", localLimiters}, {"redis", redisLimiters}} {
		t.Run(b.name, func(t *testing.T) {
			t.Run("burst then deny", func(t *testing.T) { testBurst(t, b.new) })
			t.Run("keys are independent", func(t *testing.T) { testKeys(t, b.new) })
			t.Run("refill", func(t *testing.T) { testRefill(t, b.new) })
			t.Run("bad limit", func(t *testing.T) { testBadLimit(t, b.new) })
			t.Run("shared by several", func(t *testing.T) { testShared(t, b.new) })
		})
	}
}

func testBurst(t *testing.T, nl newLimiters) {
	l := nl(t, 1)[0]
	lim := Limit{Requests: 10, Per: time.Hour, Burst: 5}
	for i := range 5 {
		res, err := l.Allow(context.Background(), "k", lim)
		if err != nil || !res.Allowed {
			t.Fatalf("request %d: %+v, %v", i, res, err)
		}
		if res.Remaining != 4-i {
			t.Errorf("request %d: remaining %d, want %d", i, res.Remaining, 4-i)
		}
	}
	res, err := l.Allow(context.Background(), "k", lim)
	if err != nil || res.Allowed {
		t.Fatalf("past the burst: %+v, %v", res, err)
	}
	if res.RetryAfter <= 5*time.Minute || res.RetryAfter > 6*time.Minute {
		t.Errorf("retry after %v, want about 6m (one interval)", res.RetryAfter)
	}
}

func testKeys(t *testing.T, nl newLimiters) {
	l := nl(t, 1)[0]
	lim := Limit{Requests: 1, Per: time.Hour}
	for _, k := range []string{"a", "b", "c"} {
		if res, _ := l.Allow(context.Background(), k, lim); !res.Allowed {
			t.Fatalf("first request of %s denied", k)
		}
	}
	if res, _ := l.Allow(context.Background(), "a", lim); res.Allowed {
		t.Fatal("second request of a allowed")
	}
}

func testRefill(t *testing.T, nl newLimiters) {
	l := nl(t, 1)[0]
	lim := Limit{Requests: 20, Per: time.Second, Burst: 1} // one per 50ms
	if res, _ := l.Allow(context.Background(), "r", lim); !res.Allowed {
		t.Fatal("first denied")
	}
	res, _ := l.Allow(context.Background(), "r", lim)
	if res.Allowed {
		t.Fatal("second at once allowed")
	}
	time.Sleep(res.RetryAfter + 5*time.Millisecond) // Redis's clock: no fake clock there
	if res, _ := l.Allow(context.Background(), "r", lim); !res.Allowed {
		t.Fatalf("after RetryAfter still denied: %+v", res)
	}
}

func testBadLimit(t *testing.T, nl newLimiters) {
	l := nl(t, 1)[0]
	if _, err := l.Allow(context.Background(), "x", Limit{}); err == nil {
		t.Fatal("zero limit accepted")
	}
}

// testShared: n limiters (processes) hammer one key concurrently; the
// sum of what they let through is the burst, not n times it.
func testShared(t *testing.T, nl newLimiters) {
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ls := nl(t, n)
			lim := Limit{Requests: 50, Per: time.Hour} // no refill during the test
			var allowed atomic.Int64
			var wg sync.WaitGroup
			for _, l := range ls {
				for range 4 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for range 40 {
							res, err := l.Allow(context.Background(), "shared", lim)
							if err != nil {
								t.Error(err)
								return
							}
							if res.Allowed {
								allowed.Add(1)
							}
						}
					}()
				}
			}
			wg.Wait()
			t.Logf("%d limiters: %d allowed of %d sent, limit %d", n, allowed.Load(), n*4*40, 50)
			if allowed.Load() != 50 {
				t.Fatalf("%d allowed, want exactly 50", allowed.Load())
			}
		})
	}
}

func TestLocalClock(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewLocal(func() time.Time { return now })
	lim := Limit{Requests: 2, Per: time.Second} // burst 2, one per 500ms
	for i := range 2 {
		if res, _ := l.Allow(context.Background(), "k", lim); !res.Allowed {
			t.Fatalf("request %d denied", i)
		}
	}
	res, _ := l.Allow(context.Background(), "k", lim)
	if res.Allowed || res.RetryAfter != 500*time.Millisecond {
		t.Fatalf("third: %+v, want denied with RetryAfter 500ms", res)
	}
	now = now.Add(500 * time.Millisecond)
	if res, _ := l.Allow(context.Background(), "k", lim); !res.Allowed {
		t.Fatal("after 500ms denied")
	}
	now = now.Add(time.Hour)
	for i := range 2000 {
		_, _ = l.Allow(context.Background(), fmt.Sprint(i), lim)
		now = now.Add(time.Second)
	}
	if n := l.Len(); n > 1100 {
		t.Fatalf("%d keys kept: expired keys are not swept", n)
	}
}

// TestFallbackRedisKilled: Redis dies mid-test; no decision fails, the
// limit goes on per process, and it is shared again once Redis is back.
func TestFallbackRedisKilled(t *testing.T) {
	r := statetest.StartRedis(t)
	c := goredis.NewClient(&goredis.Options{Addr: r.Addr, MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { _ = c.Close() })
	f := &Fallback{Shared: NewRedis(c, "kill:"), Local: NewLocal(nil), Backoff: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))}
	lim := Limit{Requests: 1000, Per: time.Second}
	allow := func(n int) {
		for i := range n {
			if _, err := f.Allow(context.Background(), "k", lim); err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
		}
	}
	allow(10)
	r.Stop()
	allow(100)
	if !f.Degraded() {
		t.Fatal("not degraded with redis down")
	}
	r.Restart()
	deadline := time.Now().Add(5 * time.Second)
	for f.Degraded() && time.Now().Before(deadline) {
		allow(1)
		time.Sleep(10 * time.Millisecond)
	}
	if f.Degraded() {
		t.Fatal("still degraded after redis came back")
	}
}

func TestFallbackFailClosed(t *testing.T) {
	r := statetest.StartRedis(t)
	c := goredis.NewClient(&goredis.Options{Addr: r.Addr, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	f := &Fallback{Shared: NewRedis(c, "fc:"), Local: NewLocal(nil), FailClosed: true}
	lim := Limit{Requests: 1000, Per: time.Second}
	r.Stop()
	res, err := f.Allow(context.Background(), "k", lim)
	if err != nil || res.Allowed || res.RetryAfter <= 0 {
		t.Fatalf("fail closed with redis down: %+v, %v", res, err)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func BenchmarkLocal(b *testing.B) {
	l := NewLocal(nil)
	lim := Limit{Requests: 1 << 20, Per: time.Second}
	ctx := context.Background()
	for b.Loop() {
		if _, err := l.Allow(ctx, "route|ip|192.0.2.1", lim); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRedis(b *testing.B) {
	r := statetest.StartRedis(b)
	c := goredis.NewClient(&goredis.Options{Addr: r.Addr})
	defer c.Close()
	l := NewRedis(c, "")
	lim := Limit{Requests: 1 << 20, Per: time.Second}
	ctx := context.Background()
	for b.Loop() {
		if _, err := l.Allow(ctx, "route|ip|192.0.2.1", lim); err != nil {
			b.Fatal(err)
		}
	}
}
