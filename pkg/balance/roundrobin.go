package balance

import (
	"sync/atomic"

	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// roundRobin hands out targets in order, ignoring weights (use
// weighted_round_robin for those). It is lock-free: one atomic counter.
type roundRobin struct {
	targets []*upstream.Target
	next    atomic.Uint64
}

func newRoundRobin(targets []*upstream.Target) *roundRobin {
	return &roundRobin{targets: targets}
}

// Select takes the next tick of the counter; a tick that lands on an
// ineligible target is spent and the next tick is taken. Spending ticks
// (rather than scanning on from the ineligible target without moving the
// counter) keeps the shares even while a target is ejected: otherwise the
// ejected target's successor would get a double share.
func (s *roundRobin) Select(_ Key, eligible func(*upstream.Target) bool) *upstream.Target {
	n := uint64(len(s.targets))
	if n == 0 {
		return nil
	}
	var tick uint64
	for range n {
		tick = s.next.Add(1) - 1
		if t := s.targets[tick%n]; ok(eligible, t) {
			return t
		}
	}
	// Other goroutines took ticks in between, so n ticks need not have
	// visited every target: scan the ring once before reporting none.
	for i := range n {
		if t := s.targets[(tick+1+i)%n]; ok(eligible, t) {
			return t
		}
	}
	return nil
}
