package balance

import (
	"testing"
)

func TestRoundRobinOrder(t *testing.T) {
	p := newPool(t, StrategyRoundRobin, "", 1, 1, 1)
	s := mustNew(t, p, Options{})
	r := newRequest()
	for i := range 9 {
		want := p.Targets()[i%3]
		if got := s.Select(r, nil); got != want {
			t.Fatalf("pick %d = %s, want %s", i, got.Address, want.Address)
		}
	}
}

func TestRoundRobinShares(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		skip    []int
		want    map[string]float64
	}{
		{
			name:    "weights are ignored",
			weights: []int{5, 1, 1},
			want:    map[string]float64{addr(0): 1.0 / 3, addr(1): 1.0 / 3, addr(2): 1.0 / 3},
		},
		{
			// The regression this pins: scanning on from an ejected
			// target without spending the tick gave its successor twice
			// the share of everyone else.
			name:    "ejected target's share is spread evenly",
			weights: []int{1, 1, 1, 1},
			skip:    []int{1},
			want:    map[string]float64{addr(0): 1.0 / 3, addr(2): 1.0 / 3, addr(3): 1.0 / 3},
		},
		{
			name:    "two adjacent ejected",
			weights: []int{1, 1, 1, 1, 1},
			skip:    []int{1, 2},
			want:    map[string]float64{addr(0): 1.0 / 3, addr(3): 1.0 / 3, addr(4): 1.0 / 3},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, StrategyRoundRobin, "", tt.weights...)
			s := mustNew(t, p, Options{})
			eligible := except(pick(p.Targets(), tt.skip...)...)
			const n = 30_000
			assertShares(t, tally(t, s, n, newRequest(), eligible), n, tt.want, 0.001)
		})
	}
}
