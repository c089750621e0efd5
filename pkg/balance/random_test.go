package balance

import (
	"testing"
)

func TestRandomShares(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		skip    []int
		want    map[string]float64
	}{
		{name: "uniform", weights: []int{1, 1, 1, 1}, want: weightShares(1, 1, 1, 1)},
		{name: "weighted 5,1,1", weights: []int{5, 1, 1}, want: weightShares(5, 1, 1)},
		{
			// The fallback draw must keep the shares exact among the
			// eligible: 1:1:3 of the remaining weight 5.
			name:    "heavy target ineligible",
			weights: []int{5, 1, 1, 3},
			skip:    []int{0},
			want:    map[string]float64{addr(1): 0.2, addr(2): 0.2, addr(3): 0.6},
		},
		{
			name:    "light target ineligible",
			weights: []int{5, 1, 1, 3},
			skip:    []int{1},
			want:    map[string]float64{addr(0): 5.0 / 9, addr(2): 1.0 / 9, addr(3): 3.0 / 9},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, StrategyRandom, "", tt.weights...)
			s := mustNew(t, p, Options{Rand: seeded(42)})
			const n = 100_000
			got := tally(t, s, n, newRequest(), except(pick(p.Targets(), tt.skip...)...))
			assertShares(t, got, n, tt.want, 0.01)
		})
	}
}

func TestRandomManyTargets(t *testing.T) {
	// More targets than the stack buffer of the fallback path.
	weights := make([]int, 3*eligibleBuf)
	for i := range weights {
		weights[i] = 1
	}
	p := newPool(t, StrategyRandom, "", weights...)
	s := mustNew(t, p, Options{Rand: seeded(5)})
	skip := []int{0, 1, 2, 50}
	want := make(map[string]float64)
	for i := range weights {
		want[addr(i)] = 1.0 / float64(len(weights)-len(skip))
	}
	for _, i := range skip {
		delete(want, addr(i))
	}
	const n = 200_000
	assertShares(t, tally(t, s, n, newRequest(), except(pick(p.Targets(), skip...)...)), n, want, 0.003)
}
