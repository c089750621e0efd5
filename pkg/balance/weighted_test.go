package balance

import (
	"strings"
	"testing"

	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// sequence runs n selections and names the picks a, b, c… by position in
// the pool.
func sequence(t *testing.T, s reqSelector, p *testPool, n int, eligible func(*upstream.Target) bool) string {
	t.Helper()
	var b strings.Builder
	r := newRequest()
	for range n {
		got := s.Select(r, eligible)
		if got == nil {
			t.Fatalf("Select returned nil")
		}
		for i, tg := range p.Targets() {
			if tg == got {
				b.WriteByte(byte('a' + i))
			}
		}
	}
	return b.String()
}

func TestWeightedRoundRobinSmoothSequence(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		skip    []int
		want    string // hand-computed from nginx's algorithm
	}{
		{name: "nginx example 5,1,1", weights: []int{5, 1, 1}, want: "aabacaa" + "aabacaa"},
		{name: "equal weights", weights: []int{1, 1, 1}, want: "abcabc"},
		{name: "2,1", weights: []int{2, 1}, want: "abaaba"},
		{name: "3,2", weights: []int{3, 2}, want: "ababa" + "ababa"},
		{name: "zero weight counts as 1", weights: []int{0, 2}, want: "bab" + "bab"},
		{name: "heavy target ineligible", weights: []int{5, 1, 1}, skip: []int{0}, want: "bcbcbc"},
		{name: "light target ineligible", weights: []int{5, 1, 1}, skip: []int{1}, want: "aaacaa" + "aaacaa"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, StrategyWeightedRoundRobin, "", tt.weights...)
			s := mustNew(t, p, Options{})
			got := sequence(t, s, p, len(tt.want), except(pick(p.Targets(), tt.skip...)...))
			if got != tt.want {
				t.Fatalf("sequence = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestWeightedRoundRobinShares(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
	}{
		{name: "5,1,1", weights: []int{5, 1, 1}},
		{name: "10,3,2,1", weights: []int{10, 3, 2, 1}},
		{name: "100,1", weights: []int{100, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, StrategyWeightedRoundRobin, "", tt.weights...)
			s := mustNew(t, p, Options{})
			const n = 100_000
			assertShares(t, tally(t, s, n, newRequest(), nil), n, weightShares(tt.weights...), 0.01)
		})
	}
}

// TestWeightedRoundRobinInterleaves checks the "smooth" property: every
// window of total-weight picks holds each target exactly weight times, the
// light targets are never adjacent, and the heavy target's five picks per
// cycle are split (nginx's sequence only ever joins the tail of one cycle
// to the head of the next: …caa|aab…, a run of 4) instead of a burst of 5.
func TestWeightedRoundRobinInterleaves(t *testing.T) {
	weights := []int{5, 1, 1}
	p := newPool(t, StrategyWeightedRoundRobin, "", weights...)
	s := mustNew(t, p, Options{})
	seq := sequence(t, s, p, 7*20, nil)
	if strings.Contains(seq, "aaaaa") {
		t.Errorf("sequence has a burst of 5: %s", seq)
	}
	for _, pair := range []string{"bc", "cb", "bb", "cc"} {
		if strings.Contains(seq, pair) {
			t.Errorf("light targets adjacent (%s): %s", pair, seq)
		}
	}
	for i := 0; i+7 <= len(seq); i++ {
		w := seq[i : i+7]
		if strings.Count(w, "a") != 5 || strings.Count(w, "b") != 1 || strings.Count(w, "c") != 1 {
			t.Fatalf("window at %d = %s, want 5 a, 1 b, 1 c", i, w)
		}
	}
}
