package balance

import (
	"testing"
)

func TestP2CNeverPicksTheMoreLoaded(t *testing.T) {
	tests := []struct {
		name     string
		weights  []int
		inFlight []int
		skip     []int
		never    []int // targets that must never be picked
	}{
		{name: "two targets", weights: []int{1, 1}, inFlight: []int{2, 1}, never: []int{0}},
		{name: "two targets, other order", weights: []int{1, 1}, inFlight: []int{0, 1}, never: []int{1}},
		{name: "two targets, weight-aware", weights: []int{4, 1}, inFlight: []int{6, 2}, never: []int{1}}, // 1.5 < 2
		{name: "most loaded of many loses every pairing", weights: []int{1, 1, 1, 1, 1}, inFlight: []int{1, 1, 9, 1, 1}, never: []int{2}},
		{name: "two eligible of three", weights: []int{1, 1, 1}, inFlight: []int{0, 5, 3}, skip: []int{0}, never: []int{0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, StrategyP2C, "", tt.weights...)
			s := mustNew(t, p, Options{Rand: seeded(9)})
			for i, n := range tt.inFlight {
				defer load(p.Targets()[i], n)()
			}
			got := tally(t, s, 20_000, newRequest(), except(pick(p.Targets(), tt.skip...)...))
			for _, i := range tt.never {
				if c := got[addr(i)]; c != 0 {
					t.Errorf("%s picked %d times, want never: %v", addr(i), c, got)
				}
			}
		})
	}
}

// TestP2CShares: on an idle pool every pairing ties and the first,
// weighted draw wins, so shares follow weights; under skewed load the
// least loaded target gets what two random choices give it.
func TestP2CShares(t *testing.T) {
	tests := []struct {
		name     string
		weights  []int
		inFlight []int
		skip     []int
		want     map[string]float64
	}{
		{name: "idle uniform", weights: []int{1, 1, 1, 1}, want: weightShares(1, 1, 1, 1)},
		{name: "idle weighted", weights: []int{5, 1, 1}, want: weightShares(5, 1, 1)},
		{
			name:    "idle with ineligible",
			weights: []int{5, 1, 1, 3},
			skip:    []int{0},
			want:    map[string]float64{addr(1): 0.2, addr(2): 0.2, addr(3): 0.6},
		},
		{
			// Loads 0 < 1 < 2 with equal weights: a target wins every
			// pairing with a more loaded one. Of the 3 unordered
			// pairs, a is in 2 and wins both, b wins 1, c none.
			name:     "strict load order",
			weights:  []int{1, 1, 1},
			inFlight: []int{0, 1, 2},
			want:     map[string]float64{addr(0): 2.0 / 3, addr(1): 1.0 / 3},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, StrategyP2C, "", tt.weights...)
			s := mustNew(t, p, Options{Rand: seeded(13)})
			for i, n := range tt.inFlight {
				defer load(p.Targets()[i], n)()
			}
			const n = 100_000
			got := tally(t, s, n, newRequest(), except(pick(p.Targets(), tt.skip...)...))
			assertShares(t, got, n, tt.want, 0.01)
		})
	}
}

func TestP2CCandidatesAreDistinct(t *testing.T) {
	// With two eligible targets and distinct candidates, p2c is exactly
	// "the less loaded of the two": a draw with replacement would pick
	// the loaded one whenever both draws land on it.
	p := newPool(t, StrategyP2C, "", 100, 1)
	s := mustNew(t, p, Options{Rand: seeded(17)})
	defer load(p.Targets()[0], 1)()
	got := tally(t, s, 10_000, newRequest(), nil)
	if got[addr(0)] != 0 {
		t.Fatalf("loaded heavy target picked %d times, want never: %v", got[addr(0)], got)
	}
}
