package balance

import "github.com/handoff-proxy/handoff/pkg/upstream"

// leastConn picks the eligible target with the fewest requests in flight
// per unit of weight (nginx least_conn compares conns/weight the same way).
// Ties are broken at random, weighted by weight, so that an idle pool does
// not send everything to its first target and shares follow the weights.
type leastConn struct {
	targets []*upstream.Target
	rnd     func() uint64
}

func newLeastConn(targets []*upstream.Target, rnd func() uint64) *leastConn {
	return &leastConn{targets: targets, rnd: rnd}
}

// Select is one pass; among tied targets it keeps each newcomer with
// probability weight/(sum of tied weights so far), which is weighted
// reservoir sampling of size one: every tied target ends up chosen with
// probability weight/(total tied weight).
func (s *leastConn) Select(_ Key, eligible func(*upstream.Target) bool) *upstream.Target {
	var (
		best   *upstream.Target
		bestIn int64
		bestW  int
		tieW   uint64
	)
	for _, t := range s.targets {
		if !ok(eligible, t) {
			continue
		}
		in, w := t.InFlight(), weightOf(t)
		switch {
		case best == nil || lessLoaded(in, w, bestIn, bestW):
			best, bestIn, bestW, tieW = t, in, w, uint64(w)
		case sameLoad(in, w, bestIn, bestW):
			tieW += uint64(w)
			if below(s.rnd, tieW) < uint64(w) {
				best, bestIn, bestW = t, in, w
			}
		}
	}
	return best
}
