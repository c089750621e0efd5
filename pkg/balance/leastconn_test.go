package balance

import (
	"testing"

	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// load acquires n requests on t and returns a func releasing them all.
func load(t *upstream.Target, n int) (release func()) {
	rs := make([]func(), n)
	for i := range rs {
		rs[i] = t.Acquire()
	}
	return func() {
		for _, r := range rs {
			r()
		}
	}
}

func TestLeastConnPicksLeastLoaded(t *testing.T) {
	tests := []struct {
		name     string
		weights  []int
		inFlight []int
		skip     []int
		want     int
	}{
		{name: "fewest in flight", weights: []int{1, 1, 1}, inFlight: []int{3, 1, 2}, want: 1},
		{name: "last target", weights: []int{1, 1, 1}, inFlight: []int{3, 2, 0}, want: 2},
		{name: "per unit of weight", weights: []int{4, 1}, inFlight: []int{6, 2}, want: 0},            // 1.5 < 2
		{name: "weight does not hide overload", weights: []int{4, 1}, inFlight: []int{9, 2}, want: 1}, // 2.25 > 2
		{name: "least loaded ineligible", weights: []int{1, 1, 1}, inFlight: []int{3, 0, 2}, skip: []int{1}, want: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, StrategyLeastConn, "", tt.weights...)
			s := mustNew(t, p, Options{Rand: seeded(7)})
			for i, n := range tt.inFlight {
				defer load(p.Targets()[i], n)()
			}
			eligible := except(pick(p.Targets(), tt.skip...)...)
			for range 100 {
				if got := s.Select(newRequest(), eligible); got != p.Targets()[tt.want] {
					t.Fatalf("Select = %s, want %s", got.Address, p.Targets()[tt.want].Address)
				}
			}
		})
	}
}

// TestLeastConnFollowsLoad holds every picked request open: least_conn
// must then fill the targets evenly (per weight), and after releases it
// must go back to the target that was freed.
func TestLeastConnFollowsLoad(t *testing.T) {
	p := newPool(t, StrategyLeastConn, "", 2, 1, 1)
	s := mustNew(t, p, Options{Rand: seeded(3)})
	r := newRequest()
	var releases []func()
	defer func() {
		for _, rel := range releases {
			rel()
		}
	}()
	byTarget := make(map[*upstream.Target][]func())
	for range 40 {
		tg := s.Select(r, nil)
		rel := tg.Acquire()
		releases = append(releases, rel)
		byTarget[tg] = append(byTarget[tg], rel)
	}
	// 40 requests over weights 2:1:1 held open: 20, 10, 10.
	for i, want := range []int64{20, 10, 10} {
		if got := p.Targets()[i].InFlight(); got != want {
			t.Errorf("%s in flight = %d, want %d", p.Targets()[i].Address, got, want)
		}
	}
	// Free three requests on target c: it is now the least loaded and
	// must get the next three.
	c := p.Targets()[2]
	for _, rel := range byTarget[c][:3] {
		rel()
	}
	for i := range 3 {
		tg := s.Select(r, nil)
		if tg != c {
			t.Fatalf("pick %d after release = %s, want %s", i, tg.Address, c.Address)
		}
		releases = append(releases, tg.Acquire())
	}
}

// TestLeastConnTiesAreSpread: on an idle pool every target ties; the
// ties must follow weights, not always go to the first target.
func TestLeastConnTiesAreSpread(t *testing.T) {
	tests := []struct {
		name     string
		weights  []int
		inFlight []int
		want     map[string]float64
	}{
		{name: "idle equal weights", weights: []int{1, 1, 1, 1}, want: weightShares(1, 1, 1, 1)},
		{name: "idle weighted", weights: []int{5, 1, 1}, want: weightShares(5, 1, 1)},
		{
			name:     "tie among the least loaded only",
			weights:  []int{1, 1, 1},
			inFlight: []int{1, 0, 0},
			want:     map[string]float64{addr(1): 0.5, addr(2): 0.5},
		},
		{
			name:     "equal load per weight ties",
			weights:  []int{3, 1},
			inFlight: []int{3, 1},
			want:     weightShares(3, 1),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, StrategyLeastConn, "", tt.weights...)
			s := mustNew(t, p, Options{Rand: seeded(11)})
			for i, n := range tt.inFlight {
				defer load(p.Targets()[i], n)()
			}
			const n = 100_000
			assertShares(t, tally(t, s, n, newRequest(), nil), n, tt.want, 0.01)
		})
	}
}
