// Package statetest holds what tests of state backends share: the contract
// suite every state.Store passes, and helpers that start
// real redis-server processes (single node, Cluster, Sentinel), like the
// standard library's httptest. Nothing here mocks Redis.
package statetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/state"
)

// NewStores returns n started stores on one fresh, empty backend: n
// processes on one Redis, or n handles of one memory store. The test's
// cleanup closes them.
type NewStores func(t *testing.T, n int) []state.Store

// RunStoreContract runs the behaviour every state.Store must have.
func RunStoreContract(t *testing.T, newStores NewStores) {
	t.Run("verdicts", func(t *testing.T) { testVerdicts(t, newStores) })
	t.Run("watch", func(t *testing.T) { testWatch(t, newStores) })
	t.Run("leases", func(t *testing.T) { testLeases(t, newStores) })
	t.Run("counters", func(t *testing.T) { testCounters(t, newStores) })
	t.Run("fleet", func(t *testing.T) { testFleet(t, newStores) })
	t.Run("up", func(t *testing.T) {
		if s := newStores(t, 1)[0]; !s.Up() {
			t.Fatal("Up() = false on a fresh backend")
		}
	})
}

var t0 = time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)

func verdict(up, target string, healthy bool) state.Verdict {
	return state.Verdict{Upstream: up, Target: target, Healthy: healthy, Since: t0, CheckedAt: t0.Add(time.Second),
		Holder: "host-a/1", Reason: "status 503", Ejections: 2, EjectedUntil: t0.Add(5 * time.Second)}
}

func find(vs []state.Verdict, k state.VerdictKey) (state.Verdict, bool) {
	i := slices.IndexFunc(vs, func(v state.Verdict) bool { return v.Key() == k })
	if i < 0 {
		return state.Verdict{}, false
	}
	return vs[i], true
}

// eventually polls cond every 20ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testVerdicts(t *testing.T, newStores NewStores) {
	ctx := t.Context()
	tests := []struct {
		name string
		puts []state.Verdict
		want []state.Verdict
	}{
		{name: "round trip through another store",
			puts: []state.Verdict{verdict("web", "10.0.0.1:80", false)},
			want: []state.Verdict{verdict("web", "10.0.0.1:80", false)}},
		{name: "latest wins",
			puts: []state.Verdict{verdict("web", "a:1", false), verdict("web", "a:1", true)},
			want: []state.Verdict{verdict("web", "a:1", true)}},
		{name: "one per upstream and target",
			puts: []state.Verdict{verdict("web", "a:1", true), verdict("web", "b:1", false), verdict("api", "a:1", false)},
			want: []state.Verdict{verdict("web", "a:1", true), verdict("web", "b:1", false), verdict("api", "a:1", false)}},
		{name: "separators in names do not collide",
			puts: []state.Verdict{verdict("a/b", "c", true), verdict("a", "b/c", false), verdict("x{1}", "[::1]:80", false)},
			want: []state.Verdict{verdict("a/b", "c", true), verdict("a", "b/c", false), verdict("x{1}", "[::1]:80", false)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStores(t, 2)
			for _, v := range tt.puts {
				if err := s[0].PutVerdict(ctx, v, time.Minute); err != nil {
					t.Fatalf("PutVerdict(%+v): %v", v, err)
				}
			}
			got, err := s[1].Verdicts(ctx)
			if err != nil {
				t.Fatalf("Verdicts: %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("Verdicts = %d verdicts %+v, want %d", len(got), got, len(tt.want))
			}
			for _, w := range tt.want {
				if g, ok := find(got, w.Key()); !ok || !g.Equal(w) {
					t.Errorf("verdict %v = %+v (found %v), want %+v", w.Key(), g, ok, w)
				}
			}
		})
	}
	t.Run("invalid rejected", func(t *testing.T) {
		s := newStores(t, 1)[0]
		for _, v := range []state.Verdict{{Target: "a:1"}, {Upstream: "web"}, {Upstream: "web", Target: "a:1", Ejections: -1}} {
			if err := s.PutVerdict(ctx, v, 0); !errors.Is(err, state.ErrInvalid) {
				t.Errorf("PutVerdict(%+v) = %v, want ErrInvalid", v, err)
			}
		}
		if err := s.PutVerdict(ctx, verdict("web", "a:1", true), -time.Second); !errors.Is(err, state.ErrInvalid) {
			t.Errorf("PutVerdict with negative ttl = %v, want ErrInvalid", err)
		}
	})
	t.Run("expires after ttl", func(t *testing.T) {
		s := newStores(t, 1)[0]
		if err := s.PutVerdict(ctx, verdict("web", "short:1", false), 200*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if err := s.PutVerdict(ctx, verdict("web", "long:1", false), time.Minute); err != nil {
			t.Fatal(err)
		}
		eventually(t, 3*time.Second, "short verdict expires", func() bool {
			vs, err := s.Verdicts(ctx)
			_, short := find(vs, state.VerdictKey{Upstream: "web", Target: "short:1"})
			_, long := find(vs, state.VerdictKey{Upstream: "web", Target: "long:1"})
			if err != nil || !long {
				t.Fatalf("Verdicts = %+v, %v; want the long verdict kept", vs, err)
			}
			return !short
		})
	})
}

// recorder collects verdicts delivered to a Watch callback.
type recorder struct {
	mu   sync.Mutex
	got  []state.Verdict
	seen chan struct{}
}

func newRecorder() *recorder { return &recorder{seen: make(chan struct{}, 1)} }

func (r *recorder) fn(v state.Verdict) {
	r.mu.Lock()
	r.got = append(r.got, v)
	r.mu.Unlock()
	select {
	case r.seen <- struct{}{}:
	default:
	}
}

func (r *recorder) last(k state.VerdictKey) (state.Verdict, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.got) - 1; i >= 0; i-- {
		if r.got[i].Key() == k {
			return r.got[i], true
		}
	}
	return state.Verdict{}, false
}

// WaitVerdict waits up to d until the watcher saw a verdict equal to want.
func (r *recorder) waitVerdict(t *testing.T, d time.Duration, want state.Verdict) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		if got, ok := r.last(want.Key()); ok && got.Equal(want) {
			return
		}
		select {
		case <-r.seen:
		case <-timer.C:
			got, ok := r.last(want.Key())
			t.Fatalf("watch: latest verdict for %v = %+v (seen %v) after %v, want %+v", want.Key(), got, ok, d, want)
		}
	}
}

func testWatch(t *testing.T, newStores NewStores) {
	ctx := t.Context()
	t.Run("other store sees a verdict within 1s", func(t *testing.T) {
		s := newStores(t, 2)
		r := newRecorder()
		defer s[1].Watch(r.fn)()
		for i, healthy := range []bool{false, true, false} {
			v := verdict("web", "a:1", healthy)
			v.Ejections = i
			if err := s[0].PutVerdict(ctx, v, time.Minute); err != nil {
				t.Fatal(err)
			}
			r.waitVerdict(t, time.Second, v)
		}
	})
	t.Run("writer sees its own verdict", func(t *testing.T) {
		s := newStores(t, 1)[0]
		r := newRecorder()
		defer s.Watch(r.fn)()
		v := verdict("web", "own:1", true)
		if err := s.PutVerdict(ctx, v, time.Minute); err != nil {
			t.Fatal(err)
		}
		r.waitVerdict(t, time.Second, v)
	})
	t.Run("stop ends deliveries", func(t *testing.T) {
		s := newStores(t, 2)
		stopped, live := newRecorder(), newRecorder()
		stop := s[1].Watch(stopped.fn)
		defer s[1].Watch(live.fn)()
		stop()
		v := verdict("web", "stop:1", false)
		if err := s[0].PutVerdict(ctx, v, time.Minute); err != nil {
			t.Fatal(err)
		}
		live.waitVerdict(t, time.Second, v)
		if got, ok := stopped.last(v.Key()); ok {
			t.Fatalf("stopped watcher got %+v", got)
		}
	})
	t.Run("panicking watcher does not stop delivery", func(t *testing.T) {
		s := newStores(t, 1)[0]
		var panics atomic.Int32
		defer s.Watch(func(state.Verdict) { panics.Add(1); panic("watcher bug") })()
		r := newRecorder()
		defer s.Watch(r.fn)()
		for i := range 2 {
			v := verdict("web", fmt.Sprintf("p%d:1", i), false)
			if err := s.PutVerdict(ctx, v, time.Minute); err != nil {
				t.Fatal(err)
			}
			r.waitVerdict(t, time.Second, v)
		}
		if panics.Load() == 0 {
			t.Fatal("panicking watcher never called")
		}
	})
}

func testLeases(t *testing.T, newStores NewStores) {
	ctx := t.Context()
	try := func(t *testing.T, s state.Store, name, holder string, ttl time.Duration, want bool) {
		t.Helper()
		got, err := s.TryLease(ctx, name, holder, ttl)
		if err != nil || got != want {
			t.Fatalf("TryLease(%q, %q) = %v, %v; want %v", name, holder, got, err, want)
		}
	}
	t.Run("one holder, renewal", func(t *testing.T) {
		s := newStores(t, 2)
		try(t, s[0], "probe/web", "p1", time.Minute, true)
		try(t, s[1], "probe/web", "p2", time.Minute, false)
		try(t, s[0], "probe/web", "p1", time.Minute, true) // renew
		try(t, s[1], "probe/api", "p2", time.Minute, true) // other name, other lease
	})
	t.Run("renewal extends", func(t *testing.T) {
		s := newStores(t, 2)
		try(t, s[0], "l", "p1", 400*time.Millisecond, true)
		for range 4 { // 800ms in all: longer than one ttl
			time.Sleep(200 * time.Millisecond)
			try(t, s[0], "l", "p1", 400*time.Millisecond, true)
			try(t, s[1], "l", "p2", 400*time.Millisecond, false)
		}
	})
	t.Run("expiry hands over", func(t *testing.T) {
		s := newStores(t, 2)
		try(t, s[0], "l", "p1", 200*time.Millisecond, true)
		start := time.Now()
		eventually(t, 3*time.Second, "p2 takes the expired lease", func() bool {
			held, err := s[1].TryLease(ctx, "l", "p2", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			return held
		})
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Fatalf("p2 took the lease after %v, before p1's ttl", d)
		}
		try(t, s[0], "l", "p1", time.Minute, false)
	})
	t.Run("release", func(t *testing.T) {
		s := newStores(t, 2)
		try(t, s[0], "l", "p1", time.Minute, true)
		if err := s[1].ReleaseLease(ctx, "l", "p2"); err != nil { // not the holder: no-op
			t.Fatal(err)
		}
		try(t, s[1], "l", "p2", time.Minute, false)
		if err := s[0].ReleaseLease(ctx, "l", "p1"); err != nil {
			t.Fatal(err)
		}
		try(t, s[1], "l", "p2", time.Minute, true)
		if err := s[0].ReleaseLease(ctx, "never-taken", "p1"); err != nil {
			t.Fatalf("release of a free lease: %v", err)
		}
	})
	t.Run("concurrent takers, one winner", func(t *testing.T) {
		s := newStores(t, 4)
		var wg sync.WaitGroup
		var winners atomic.Int32
		for i := range 16 {
			wg.Go(func() {
				held, err := s[i%len(s)].TryLease(ctx, "race", fmt.Sprintf("p%d", i), time.Minute)
				if err != nil {
					t.Error(err)
				}
				if held {
					winners.Add(1)
				}
			})
		}
		wg.Wait()
		if n := winners.Load(); n != 1 {
			t.Fatalf("%d holders of one lease, want 1", n)
		}
	})
	t.Run("invalid arguments", func(t *testing.T) {
		s := newStores(t, 1)[0]
		for _, c := range []struct {
			name, holder string
			ttl          time.Duration
		}{{"", "p", time.Second}, {"l", "", time.Second}, {"l", "p", 0}} {
			if _, err := s.TryLease(ctx, c.name, c.holder, c.ttl); !errors.Is(err, state.ErrInvalid) {
				t.Errorf("TryLease(%q, %q, %v) = %v, want ErrInvalid", c.name, c.holder, c.ttl, err)
			}
		}
	})
}

func testCounters(t *testing.T, newStores NewStores) {
	ctx := t.Context()
	incr := func(t *testing.T, s state.Store, key string, window time.Duration, want int64) {
		t.Helper()
		got, err := s.Incr(ctx, key, window)
		if err != nil || got != want {
			t.Fatalf("Incr(%q) = %d, %v; want %d", key, got, err, want)
		}
	}
	t.Run("counts across stores, per key", func(t *testing.T) {
		s := newStores(t, 2)
		incr(t, s[0], "rl/web/1.2.3.4", time.Minute, 1)
		incr(t, s[1], "rl/web/1.2.3.4", time.Minute, 2)
		incr(t, s[0], "rl/web/1.2.3.4", time.Minute, 3)
		incr(t, s[1], "rl/web/5.6.7.8", time.Minute, 1)
	})
	t.Run("window restarts", func(t *testing.T) {
		s := newStores(t, 1)[0]
		incr(t, s, "w", 200*time.Millisecond, 1)
		incr(t, s, "w", 200*time.Millisecond, 2)
		eventually(t, 3*time.Second, "window ends", func() bool {
			n, err := s.Incr(ctx, "w", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			return n == 1
		})
	})
	t.Run("invalid arguments", func(t *testing.T) {
		s := newStores(t, 1)[0]
		if _, err := s.Incr(ctx, "", time.Second); !errors.Is(err, state.ErrInvalid) {
			t.Errorf("Incr without key = %v, want ErrInvalid", err)
		}
		if _, err := s.Incr(ctx, "k", 0); !errors.Is(err, state.ErrInvalid) {
			t.Errorf("Incr with zero window = %v, want ErrInvalid", err)
		}
	})
}

// StartStore starts s and closes it when the test ends.
func StartStore(t testing.TB, s state.Store) state.Store {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Start(ctx); err != nil {
		cancel()
		t.Fatalf("start store: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := s.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return s
}
