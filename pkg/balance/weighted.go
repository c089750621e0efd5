package balance

import (
	"sync"

	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// weightedRoundRobin is nginx's smooth weighted round-robin
// (ngx_http_upstream_get_peer in ngx_http_upstream_round_robin.c): on each
// pick every eligible target's current weight grows by its weight, the
// target with the largest current weight wins and loses the total. Weights
// {5,1,1} give a a b a c a a: the heavy target is interleaved with the
// others instead of getting its five picks in a burst.
//
// nginx also lowers a peer's effective weight after failures; here passive
// health is the caller's eligible func, so the effective weight is the
// configured weight.
type weightedRoundRobin struct {
	targets []*upstream.Target

	mu      sync.Mutex
	current []int64 // per target, guarded by mu
}

func newWeightedRoundRobin(targets []*upstream.Target) *weightedRoundRobin {
	return &weightedRoundRobin{targets: targets, current: make([]int64, len(targets))}
}

// Select skips ineligible targets entirely: their current weight neither
// grows nor shrinks, so the others keep their smooth order among themselves
// and a target that comes back resumes where it was.
func (s *weightedRoundRobin) Select(_ Key, eligible func(*upstream.Target) bool) *upstream.Target {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.selectLocked(eligible)
}

func (s *weightedRoundRobin) selectLocked(eligible func(*upstream.Target) bool) *upstream.Target {
	best := -1
	var total int64
	for i, t := range s.targets {
		if !ok(eligible, t) {
			continue
		}
		w := int64(weightOf(t))
		s.current[i] += w
		total += w
		if best < 0 || s.current[i] > s.current[best] {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	s.current[best] -= total
	return s.targets[best]
}
