package balance

import "github.com/handoff-proxy/handoff/pkg/upstream"

// p2c is the power of two choices (Mitzenmacher, "The Power of Two Choices
// in Randomized Load Balancing", 2001): draw two distinct eligible targets
// at random, weighted by weight, and send the request to the one with fewer
// requests in flight per unit of weight. It spreads load almost as well as
// least_conn without every worker herding onto the same least-loaded
// target.
type p2c struct {
	targets []*upstream.Target
	rnd     func() uint64
}

func newP2C(targets []*upstream.Target, rnd func() uint64) *p2c {
	return &p2c{targets: targets, rnd: rnd}
}

// Select is O(targets): it collects the eligible targets once so that the
// two draws see the same set. On equal load the first draw wins; since that
// draw is weighted, an idle pool is shared in proportion to weight.
func (s *p2c) Select(_ Key, eligible func(*upstream.Target) bool) *upstream.Target {
	var buf [eligibleBuf]int32
	idx, total := collect(buf[:0], s.targets, eligible)
	switch len(idx) {
	case 0:
		return nil
	case 1:
		return s.targets[idx[0]]
	}
	ja := pickWeighted(s.targets, idx, below(s.rnd, total), -1)
	a := s.targets[idx[ja]]
	jb := pickWeighted(s.targets, idx, below(s.rnd, total-uint64(weightOf(a))), ja)
	b := s.targets[idx[jb]]
	if lessLoaded(b.InFlight(), weightOf(b), a.InFlight(), weightOf(a)) {
		return b
	}
	return a
}
