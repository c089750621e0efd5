package health

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/handofftest"
	"github.com/handoff-proxy/handoff/pkg/state/memory"
	stateredis "github.com/handoff-proxy/handoff/pkg/state/redis"
	"github.com/handoff-proxy/handoff/pkg/state/statetest"
	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// checkedBackend counts health checks and fails them while down is set.
type checkedBackend struct {
	srv    *httptest.Server
	checks atomic.Int64
	down   atomic.Bool
}

func newCheckedBackend(t *testing.T) *checkedBackend {
	b := &checkedBackend{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			b.checks.Add(1)
			if b.down.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *checkedBackend) addr() string { return strings.TrimPrefix(b.srv.URL, "http://") }

type stores struct {
	name string
	// new returns a store for one more "process".
	new func(t *testing.T) Store
}

func storeKinds(t *testing.T) []stores {
	shared := memory.New(memory.Options{Logger: handofftest.Logger(t)})
	if err := shared.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shared.Close() })
	kinds := []stores{{name: "memory", new: func(t *testing.T) Store { return shared }}}
	kinds = append(kinds, stores{name: "redis", new: func(t *testing.T) Store {
		r := redisServer(t)
		o := stateredis.Options{URL: "redis://" + r.Addr + "/0", Logger: handofftest.Logger(t), Timeout: 300 * time.Millisecond}
		client, err := stateredis.NewClient(o)
		if err != nil {
			t.Fatal(err)
		}
		s := stateredis.NewStore(client, o)
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close(); client.Close() })
		return s
	}})
	return kinds
}

// redisServers holds one redis-server per test, shared by its processes.
var redisServers sync.Map

func redisServer(t *testing.T) *statetest.Redis {
	t.Helper()
	if v, ok := redisServers.Load(t.Name()); ok {
		return v.(*statetest.Redis)
	}
	r := statetest.StartRedis(t)
	redisServers.Store(t.Name(), r)
	return r
}

// process is one handoff process's checker of the shared upstream.
type process struct {
	c    *Checker
	pool *upstream.Pool
}

func startProcess(t *testing.T, st Store, holder string, addrs ...string) *process {
	t.Helper()
	spec := upstream.PoolSpec{}
	for _, a := range addrs {
		spec.Targets = append(spec.Targets, upstream.TargetSpec{Address: a})
	}
	p, err := upstream.NewRegistry().NewPool("web", spec)
	if err != nil {
		t.Fatal(err)
	}
	c := New(Options{
		Upstream: "web", Pool: p, Store: st, Holder: holder, FailTimeout: 10 * time.Second,
		Active: &ActiveSpec{
			ProbeSpec:  ProbeSpec{Path: "/healthz", Timeout: 200 * time.Millisecond},
			Interval:   100 * time.Millisecond,
			Thresholds: Thresholds{Healthy: 1, Unhealthy: 1},
		},
		Logger: handofftest.Logger(t),
	})
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &process{c: c, pool: p}
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v", what, within)
	return 0
}

// TestSharedVerdicts: three processes on one store probe like one; a
// verdict one reaches is used by all; a process started later loads it
// before it serves; when the prober goes, another takes over.
func TestSharedVerdicts(t *testing.T) {
	for _, kind := range storeKinds(t) {
		t.Run(kind.name, func(t *testing.T) {
			a, b := newCheckedBackend(t), newCheckedBackend(t)
			var ps []*process
			for i := range 3 {
				ps = append(ps, startProcess(t, kind.new(t), "p"+string(rune('1'+i)), a.addr(), b.addr()))
			}
			defer func() {
				for _, p := range ps {
					p.c.Close()
				}
			}()
			time.Sleep(300 * time.Millisecond)
			a0 := a.checks.Load()
			time.Sleep(time.Second)
			probes := a.checks.Load() - a0
			// One process probes every 100ms: about 10 checks a second,
			// not 30.
			if probes < 5 || probes > 15 {
				t.Fatalf("%d checks of a in 1s from 3 processes at a 100ms interval, want the load of one (~10)", probes)
			}
			b.down.Store(true)
			took := eventually(t, 2*time.Second, "all processes avoid b", func() bool {
				for _, p := range ps {
					if p.pool.Targets()[1].Available(time.Now()) {
						return false
					}
				}
				return true
			})
			t.Logf("verdict reached all 3 processes %v after b went down", took)
			late := startProcess(t, kind.new(t), "p4", a.addr(), b.addr())
			defer late.c.Close()
			if late.pool.Targets()[1].Available(time.Now()) {
				t.Fatal("a process started after b went down considers it available (verdicts not loaded at Start)")
			}
			// Whoever holds the lease stops; another takes over and sees
			// b come back.
			for _, p := range ps[:2] {
				p.c.Close()
			}
			b.down.Store(false)
			took = eventually(t, 3*time.Second, "a survivor sees b healthy again", func() bool {
				return ps[2].pool.Targets()[1].Available(time.Now()) && late.pool.Targets()[1].Available(time.Now())
			})
			t.Logf("b back in every survivor %v after it recovered", took)
		})
	}
}

// TestSharedEjection: a passive ejection in one process is applied by the
// others.
func TestSharedEjection(t *testing.T) {
	for _, kind := range storeKinds(t) {
		t.Run(kind.name, func(t *testing.T) {
			var ps []*process
			for i := range 2 {
				spec := upstream.PoolSpec{Targets: []upstream.TargetSpec{{Address: "127.0.0.1:1"}, {Address: "127.0.0.1:2"}}}
				p, _ := upstream.NewRegistry().NewPool("web", spec)
				c := New(Options{Upstream: "web", Pool: p, Store: kind.new(t), Holder: "e" + string(rune('1'+i)), FailTimeout: 30 * time.Second, Logger: handofftest.Logger(t)})
				if err := c.Start(context.Background()); err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				ps = append(ps, &process{c: c, pool: p})
			}
			ps[0].c.Report(ps[0].pool.Targets()[0], Result{Outcome: ConnectFailed})
			took := eventually(t, 2*time.Second, "the other process applies the ejection", func() bool {
				return !ps[1].pool.Targets()[0].Available(time.Now())
			})
			t.Logf("ejection shared after %v", took)
			if !ps[1].pool.Targets()[1].Available(time.Now()) {
				t.Fatal("the other target was ejected too")
			}
		})
	}
}
