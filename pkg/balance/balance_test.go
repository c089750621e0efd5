package balance

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/handoff-proxy/handoff/pkg/upstream"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// addr is the address of the i-th test target.
func addr(i int) string { return fmt.Sprintf("10.0.0.%d:80", i+1) }

// testPool is a pool with the hash key its selector is built with.
type testPool struct {
	*upstream.Pool
	hashKey string
}

// newPool builds a pool of len(weights) targets 10.0.0.1:80, 10.0.0.2:80,
// … with those weights, on a fresh registry.
func newPool(t testing.TB, strategy, hashKey string, weights ...int) *testPool {
	t.Helper()
	spec := upstream.PoolSpec{Strategy: strategy}
	for i, w := range weights {
		spec.Targets = append(spec.Targets, upstream.TargetSpec{Address: addr(i), Weight: w})
	}
	p, err := upstream.NewRegistry().NewPool("pool", spec)
	if err != nil {
		t.Fatalf("new pool: %v", err)
	}
	return &testPool{Pool: p, hashKey: hashKey}
}

// reqSelector selects for HTTP requests the way the proxy does: the key is
// the request's client address and its hash-key value.
type reqSelector struct {
	Selector
	key HashKey
	// clientIP overrides the client address; nil means the peer.
	clientIP func(*http.Request) string
}

func (s reqSelector) Select(r *http.Request, eligible func(*upstream.Target) bool) *upstream.Target {
	return s.Selector.Select(s.keyOf(r), eligible)
}

func (s reqSelector) keyOf(r *http.Request) Key {
	k := Key{Hash: s.key.FromRequest(r)}
	if s.clientIP != nil {
		k.Client, _ = netip.ParseAddr(s.clientIP(r))
	} else if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		k.Client = ap.Addr().Unmap()
	}
	return k
}

func mustNew(t testing.TB, p *testPool, opts Options) reqSelector {
	t.Helper()
	s, err := New(p.Pool, p.Strategy, p.hashKey, opts)
	if err != nil {
		t.Fatalf("new selector: %v", err)
	}
	k, _ := ParseHashKey(p.hashKey)
	return reqSelector{Selector: s, key: k}
}

// seeded returns a reproducible generator. Not safe for concurrent use:
// only for single-goroutine tests.
func seeded(seed uint64) func() uint64 {
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)).Uint64
}

// except returns an eligible func that refuses the given targets.
func except(skip ...*upstream.Target) func(*upstream.Target) bool {
	return func(t *upstream.Target) bool {
		for _, s := range skip {
			if t == s {
				return false
			}
		}
		return true
	}
}

func newRequest() *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://example.com/", nil)
	r.RemoteAddr = "192.0.2.10:40000"
	return r
}

// tally runs n selections and counts picks by address; a nil pick fails
// the test.
func tally(t testing.TB, s reqSelector, n int, r *http.Request, eligible func(*upstream.Target) bool) map[string]int {
	t.Helper()
	got := make(map[string]int)
	for range n {
		tg := s.Select(r, eligible)
		if tg == nil {
			t.Fatalf("Select returned nil with eligible targets")
			return nil // testing.TB: staticcheck cannot see that Fatalf exits
		}
		got[tg.Address]++
	}
	return got
}

// assertShares checks that each address got its wanted share of n picks
// within ±tol (absolute, as a fraction of n). Addresses missing from want
// must not have been picked at all.
func assertShares(t testing.TB, got map[string]int, n int, want map[string]float64, tol float64) {
	t.Helper()
	for a, c := range got {
		if _, ok := want[a]; !ok {
			t.Errorf("%s picked %d times, want never", a, c)
		}
	}
	for a, w := range want {
		share := float64(got[a]) / float64(n)
		if share < w-tol || share > w+tol {
			t.Errorf("%s share = %.4f, want %.4f ± %.4f (counts %v)", a, share, w, tol, got)
		}
	}
}

// weightShares is the share each target should get when picks follow
// weights exactly.
func weightShares(weights ...int) map[string]float64 {
	sum := 0
	for _, w := range weights {
		sum += w
	}
	m := make(map[string]float64)
	for i, w := range weights {
		m[addr(i)] = float64(w) / float64(sum)
	}
	return m
}

func TestNew(t *testing.T) {
	tests := []struct {
		name     string
		strategy string
		hashKey  string
		targets  int
		wantErr  error
	}{
		{name: "empty strategy is round robin", strategy: "", targets: 2},
		{name: "round_robin", strategy: StrategyRoundRobin, targets: 2},
		{name: "weighted_round_robin", strategy: StrategyWeightedRoundRobin, targets: 2},
		{name: "least_conn", strategy: StrategyLeastConn, targets: 2},
		{name: "random", strategy: StrategyRandom, targets: 2},
		{name: "p2c", strategy: StrategyP2C, targets: 2},
		{name: "hash default key", strategy: StrategyHash, targets: 2},
		{name: "hash header key", strategy: StrategyHash, hashKey: "header:X-User", targets: 2},
		{name: "hash cookie key", strategy: StrategyHash, hashKey: "cookie:sid", targets: 2},
		{name: "unknown strategy", strategy: "fastest", targets: 2, wantErr: ErrUnknownStrategy},
		{name: "strategy is case sensitive", strategy: "Round_Robin", targets: 2, wantErr: ErrUnknownStrategy},
		{name: "bad hash key", strategy: StrategyHash, hashKey: "query:x", targets: 2, wantErr: ErrInvalidHashKey},
		{name: "hash key ignored by other strategies", strategy: StrategyRandom, hashKey: "query:x", targets: 2},
		{name: "no targets", strategy: StrategyRoundRobin, targets: 0, wantErr: ErrNoTargets},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			weights := make([]int, tt.targets)
			p := newPool(t, tt.strategy, tt.hashKey, weights...)
			s, err := New(p.Pool, p.Strategy, p.hashKey, Options{})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("New error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if got := s.Select(Key{}, nil); got == nil {
				t.Fatalf("Select on a healthy pool returned nil")
			}
		})
	}
	t.Run("nil pool", func(t *testing.T) {
		if _, err := New(nil, "", "", Options{}); !errors.Is(err, ErrNoTargets) {
			t.Fatalf("New(nil) error = %v, want ErrNoTargets", err)
		}
	})
}

// strategyCases is one selector per strategy over the same weights, with a
// seeded generator for the random ones.
func strategyCases(t testing.TB, weights ...int) []struct {
	name string
	sel  reqSelector
	pool *upstream.Pool
} {
	t.Helper()
	var out []struct {
		name string
		sel  reqSelector
		pool *upstream.Pool
	}
	for i, st := range Strategies() {
		p := newPool(t, st, "", weights...)
		out = append(out, struct {
			name string
			sel  reqSelector
			pool *upstream.Pool
		}{name: st, sel: mustNew(t, p, Options{Rand: seeded(uint64(i) + 1)}), pool: p.Pool})
	}
	return out
}

func TestIneligibleNeverPicked(t *testing.T) {
	for _, tc := range strategyCases(t, 5, 1, 1, 3) {
		t.Run(tc.name, func(t *testing.T) {
			ts := tc.pool.Targets()
			skip := []*upstream.Target{ts[0], ts[3]}
			got := tally(t, tc.sel, 10_000, newRequest(), except(skip...))
			for _, s := range skip {
				if got[s.Address] != 0 {
					t.Errorf("ineligible %s picked %d times", s.Address, got[s.Address])
				}
			}
			if got[ts[1].Address] == 0 && tc.name != StrategyHash {
				t.Errorf("eligible %s never picked: %v", ts[1].Address, got)
			}
		})
	}
}

func TestNilWhenNoneEligible(t *testing.T) {
	for _, tc := range strategyCases(t, 2, 1, 1) {
		t.Run(tc.name, func(t *testing.T) {
			none := func(*upstream.Target) bool { return false }
			for range 10 {
				if got := tc.sel.Select(newRequest(), none); got != nil {
					t.Fatalf("Select = %s, want nil", got.Address)
				}
			}
		})
	}
}

func TestOnlyEligibleTargetIsPicked(t *testing.T) {
	for _, tc := range strategyCases(t, 3, 1, 1, 1) {
		t.Run(tc.name, func(t *testing.T) {
			only := tc.pool.Targets()[2]
			eligible := func(t *upstream.Target) bool { return t == only }
			for range 100 {
				if got := tc.sel.Select(newRequest(), eligible); got != only {
					t.Fatalf("Select = %v, want %s", got, only.Address)
				}
			}
		})
	}
}

// TestWeightedBalancerAlwaysPickedTheSameTarget pins the seed bug: on an
// idle pool the weighted strategies sent every request to the first
// target. Each strategy that honours weights must spread an idle pool in
// proportion to them.
func TestWeightedBalancerAlwaysPickedTheSameTarget(t *testing.T) {
	weights := []int{5, 1, 1}
	const n = 70_000
	for _, tc := range strategyCases(t, weights...) {
		t.Run(tc.name, func(t *testing.T) {
			want := weightShares(weights...)
			r := newRequest()
			if tc.name == StrategyRoundRobin {
				// Plain round robin ignores weights by design.
				want = map[string]float64{addr(0): 1.0 / 3, addr(1): 1.0 / 3, addr(2): 1.0 / 3}
			}
			if tc.name == StrategyHash {
				// One client always hashes to one target; spread comes
				// from many clients.
				got := make(map[string]int)
				for i := range n {
					r.RemoteAddr = fmt.Sprintf("198.%d.%d.%d:1234", 51+i/62500, i/250%250, i%250) // valid IPv4 addresses
					got[tc.sel.Select(r, nil).Address]++
				}
				assertShares(t, got, n, want, 0.015)
				return
			}
			assertShares(t, tally(t, tc.sel, n, r, nil), n, want, 0.01)
		})
	}
}

func TestConcurrentSelect(t *testing.T) {
	for _, st := range Strategies() {
		t.Run(st, func(t *testing.T) {
			p := newPool(t, st, "", 3, 1, 2, 1)
			s := mustNew(t, p, Options{}) // default generator: concurrency safe
			banned := p.Targets()[1]
			eligible := except(banned)
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for g := range 8 {
				wg.Go(func() {
					r := newRequest()
					r.RemoteAddr = fmt.Sprintf("203.0.113.%d:999", g)
					for range 2000 {
						tg := s.Select(r, eligible)
						if tg == nil || tg == banned {
							errs <- fmt.Errorf("Select = %v", tg)
							return
						}
						release := tg.Acquire()
						release()
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			for _, tg := range p.Targets() {
				if tg.InFlight() != 0 {
					t.Errorf("%s in flight = %d after all releases", tg.Address, tg.InFlight())
				}
			}
		})
	}
}

func TestSelectDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	tests := []struct {
		name     string
		strategy string
		hashKey  string
		eligible bool // false: one target ineligible, forcing fallbacks
	}{
		{name: "round_robin", strategy: StrategyRoundRobin, eligible: true},
		{name: "weighted_round_robin", strategy: StrategyWeightedRoundRobin, eligible: true},
		{name: "least_conn", strategy: StrategyLeastConn, eligible: true},
		{name: "random", strategy: StrategyRandom, eligible: true},
		{name: "random with ineligible", strategy: StrategyRandom},
		{name: "p2c", strategy: StrategyP2C, eligible: true},
		{name: "p2c with ineligible", strategy: StrategyP2C},
		{name: "hash client_ip", strategy: StrategyHash, eligible: true},
		{name: "hash header", strategy: StrategyHash, hashKey: "header:X-User", eligible: true},
		{name: "hash cookie", strategy: StrategyHash, hashKey: "cookie:sid", eligible: true},
		{name: "hash missing key", strategy: StrategyHash, hashKey: "cookie:nope", eligible: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, tt.strategy, tt.hashKey, 3, 1, 1, 2, 1)
			s := mustNew(t, p, Options{})
			r := newRequest()
			r.Header.Set("X-User", "alice")
			r.Header.Set("Cookie", "a=1; sid=abc; b=2")
			var eligible func(*upstream.Target) bool
			if !tt.eligible {
				eligible = except(p.Targets()[0], p.Targets()[3])
			}
			k := s.keyOf(r)
			allocs := testing.AllocsPerRun(1000, func() {
				if s.Selector.Select(k, eligible) == nil {
					panic("nil pick")
				}
			})
			if allocs != 0 {
				t.Errorf("Select allocates %.1f times per call, want 0", allocs)
			}
		})
	}
}

func TestHashKeyFromRequestDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	r := newRequest()
	r.Header.Set("X-User", "alice")
	r.Header.Set("Cookie", "a=1; sid=abc; b=2")
	for _, key := range []string{"client_ip", "header:X-User", "header:Host", "cookie:sid", "cookie:nope"} {
		t.Run(key, func(t *testing.T) {
			k, err := ParseHashKey(key)
			if err != nil {
				t.Fatal(err)
			}
			allocs := testing.AllocsPerRun(1000, func() { _ = k.FromRequest(r) })
			if allocs != 0 {
				t.Errorf("FromRequest allocates %.1f times per call, want 0", allocs)
			}
		})
	}
}

// TestSelectWithClientOnly: an L4 connection has only a client address;
// every strategy must select with it, and the hash strategy must keep a
// client on one target.
func TestSelectWithClientOnly(t *testing.T) {
	for _, st := range Strategies() {
		t.Run(st, func(t *testing.T) {
			p := newPool(t, st, "", 1, 1, 1, 1)
			s, err := New(p.Pool, st, "", Options{})
			if err != nil {
				t.Fatal(err)
			}
			k := Key{Client: netip.MustParseAddr("192.0.2.7")}
			first := s.Select(k, nil)
			if first == nil {
				t.Fatal("Select returned nil")
			}
			if st != StrategyHash {
				return
			}
			for range 20 {
				if got := s.Select(k, nil); got != first {
					t.Fatalf("client moved from %s to %s", first.Address, got.Address)
				}
			}
		})
	}
}

func TestParseStrategy(t *testing.T) {
	for _, st := range Strategies() {
		if got, err := ParseStrategy(st); err != nil || got != st {
			t.Errorf("ParseStrategy(%q) = %q, %v", st, got, err)
		}
	}
	if got, err := ParseStrategy(""); err != nil || got != DefaultStrategy {
		t.Errorf("ParseStrategy(\"\") = %q, %v", got, err)
	}
	_, err := ParseStrategy("fastest")
	if !errors.Is(err, ErrUnknownStrategy) || !strings.Contains(err.Error(), `"fastest" is not a strategy (allowed: round_robin, weighted_round_robin, least_conn, random, p2c, hash)`) {
		t.Errorf("ParseStrategy(fastest) = %v", err)
	}
}

func BenchmarkSelect(b *testing.B) {
	for _, st := range Strategies() {
		b.Run(st, func(b *testing.B) {
			p := newPool(b, st, "", 3, 1, 1, 2, 1, 1, 4, 1, 1, 1)
			s := mustNew(b, p, Options{})
			r := newRequest()
			tried := p.Targets()[4]
			eligible := func(t *upstream.Target) bool { return t != tried }
			b.ReportAllocs()
			for b.Loop() {
				if s.Select(r, eligible) == nil {
					b.Fatal("nil pick")
				}
			}
		})
	}
}

// pick returns the targets at the given indices.
func pick(ts []*upstream.Target, idx ...int) []*upstream.Target {
	out := make([]*upstream.Target, 0, len(idx))
	for _, i := range idx {
		out = append(out, ts[i])
	}
	return out
}
