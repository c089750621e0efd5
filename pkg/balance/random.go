package balance

import "github.com/handoff-proxy/handoff/pkg/upstream"

// random picks an eligible target at random, each with probability
// weight/(total eligible weight).
type random struct {
	targets []*upstream.Target
	rnd     func() uint64
	// cum[i] is the total weight of targets[0..i].
	cum []uint64
}

func newRandom(targets []*upstream.Target, rnd func() uint64) *random {
	s := &random{targets: targets, rnd: rnd, cum: make([]uint64, len(targets))}
	var sum uint64
	for i, t := range targets {
		sum += uint64(weightOf(t))
		s.cum[i] = sum
	}
	return s
}

// Select first draws among all targets (binary search, one call to
// eligible); only when the draw is ineligible does it draw again among the
// eligible ones. The result is still exactly weight/(eligible weight): the
// first draw hits eligible t with probability w/W, and the fallback adds
// (W-E)/W · w/E, which sums to w/E.
func (s *random) Select(_ Key, eligible func(*upstream.Target) bool) *upstream.Target {
	n := len(s.targets)
	if n == 0 {
		return nil
	}
	r := below(s.rnd, s.cum[n-1])
	lo, hi := 0, n-1
	for lo < hi { // smallest i with cum[i] > r
		mid := int(uint(lo+hi) >> 1)
		if s.cum[mid] > r {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	if t := s.targets[lo]; ok(eligible, t) {
		return t
	}
	var buf [eligibleBuf]int32
	idx, total := collect(buf[:0], s.targets, eligible)
	if len(idx) == 0 {
		return nil
	}
	j := pickWeighted(s.targets, idx, below(s.rnd, total), -1)
	return s.targets[idx[j]]
}
