// Package balance owns the load-balancing strategies: given a pool and a
// request, a Selector picks one target. There is one file per strategy
// (round_robin, weighted_round_robin, least_conn, random, p2c, hash), all
// behind the one-method Selector interface.
//
// It must not know how a target is reached, retried or ejected (packages
// proxy and upstream): the caller says which targets are eligible, and
// reads in-flight counts and weights only through upstream.Target.
package balance

import (
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net/http"

	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// Selector picks a target of its pool for a request. eligible reports
// whether a target may be picked (the proxy passes a func that skips ejected
// targets and targets already tried for this request); a nil eligible means
// every target is eligible. Select returns nil when no target is eligible.
//
// Select is safe for concurrent use. It calls eligible synchronously, on
// the caller's goroutine, and may hold an internal lock while doing so, so
// eligible must not call back into the Selector.
type Selector interface {
	Select(r *http.Request, eligible func(*upstream.Target) bool) *upstream.Target
}

// Options tune a Selector. The zero value is ready to use.
type Options struct {
	// Rand returns uniformly distributed 64-bit values and must be safe
	// for concurrent use. Nil means math/rand/v2's Uint64. Tests inject a
	// seeded generator to make random strategies reproducible.
	Rand func() uint64
	// TrustedClientIP returns the client IP the hash strategy's
	// "client_ip" key hashes, for example the address a trusted proxy put
	// in X-Forwarded-For. An empty result counts as a missing key. Nil
	// means the host part of r.RemoteAddr.
	TrustedClientIP func(*http.Request) string
}

// Errors returned by New, for errors.Is.
var (
	// ErrUnknownStrategy means Upstream.Strategy is not one of
	// config.Strategies().
	ErrUnknownStrategy = errors.New("unknown strategy")
	// ErrInvalidHashKey means Upstream.HashKey could not be parsed.
	ErrInvalidHashKey = errors.New("invalid hash key")
	// ErrNoTargets means the pool has no target to pick from.
	ErrNoTargets = errors.New("no targets")
)

// New returns the Selector for p: the strategy is p.Config.Strategy (empty
// means round_robin) and the hash strategy hashes p.Config.HashKey (see
// ParseHashKey). The Selector keeps p.Targets; the pool is immutable, so a
// reload builds a new pool and a new Selector.
func New(p *upstream.Pool, opts Options) (Selector, error) {
	if p == nil || len(p.Targets) == 0 {
		name := ""
		if p != nil {
			name = p.Name
		}
		return nil, fmt.Errorf("new selector for %q: %w", name, ErrNoTargets)
	}
	rnd := opts.Rand
	if rnd == nil {
		rnd = rand.Uint64
	}
	targets := p.Targets
	switch p.Config.Strategy {
	case "", config.StrategyRoundRobin:
		return newRoundRobin(targets), nil
	case config.StrategyWeightedRoundRobin:
		return newWeightedRoundRobin(targets), nil
	case config.StrategyLeastConn:
		return newLeastConn(targets, rnd), nil
	case config.StrategyRandom:
		return newRandom(targets, rnd), nil
	case config.StrategyP2C:
		return newP2C(targets, rnd), nil
	case config.StrategyHash:
		key, err := ParseHashKey(p.Config.HashKey)
		if err != nil {
			return nil, fmt.Errorf("new selector for %q: %w", p.Name, err)
		}
		return newHash(targets, key, opts.TrustedClientIP), nil
	default:
		return nil, fmt.Errorf("new selector for %q: %w %q", p.Name, ErrUnknownStrategy, p.Config.Strategy)
	}
}

// ok reports whether t may be picked; a nil eligible allows every target.
func ok(eligible func(*upstream.Target) bool, t *upstream.Target) bool {
	return eligible == nil || eligible(t)
}

// below returns a value in [0, n) from one 64-bit random value, by taking
// the high word of the 128-bit product (Lemire, "Fast Random Integer
// Generation in an Interval", 2019, without the rejection step: the bias is
// at most n/2^64, far below anything a load balancer can observe).
func below(rnd func() uint64, n uint64) uint64 {
	hi, _ := bits.Mul64(rnd(), n)
	return hi
}

// lessLoaded reports whether a carries less load than b, comparing
// in-flight requests per unit of weight without division:
// a.in/a.w < b.in/b.w  ⇔  a.in*b.w < b.in*a.w (weights are positive).
func lessLoaded(aIn int64, aW int, bIn int64, bW int) bool {
	return aIn*int64(bW) < bIn*int64(aW)
}

// sameLoad reports whether a and b carry the same load per unit of weight.
func sameLoad(aIn int64, aW int, bIn int64, bW int) bool {
	return aIn*int64(bW) == bIn*int64(aW)
}

// weightOf is t's weight as a positive number; upstream guarantees at least
// 1, this keeps a hand-built Target with Weight 0 from dividing by zero or
// being starved.
func weightOf(t *upstream.Target) int {
	if t.Weight < 1 {
		return 1
	}
	return t.Weight
}

// eligibleBuf is how many eligible target indices the random strategies
// collect on the stack before append moves them to the heap.
const eligibleBuf = 32

// collect appends the indices of the eligible targets to dst and returns it
// with their total weight. Calling eligible once per target gives the
// strategies a consistent view even while ejections change under them.
func collect(dst []int32, targets []*upstream.Target, eligible func(*upstream.Target) bool) ([]int32, uint64) {
	var total uint64
	for i, t := range targets {
		if ok(eligible, t) {
			dst = append(dst, int32(i))
			total += uint64(weightOf(t))
		}
	}
	return dst, total
}

// pickWeighted returns the position in idx of the target that the point r
// in [0, total weight of idx) falls on, skipping position skip (-1 for
// none; its weight must then not be counted in r's range).
func pickWeighted(targets []*upstream.Target, idx []int32, r uint64, skip int) int {
	for j, i := range idx {
		if j == skip {
			continue
		}
		w := uint64(weightOf(targets[i]))
		if r < w {
			return j
		}
		r -= w
	}
	// Unreachable when r is in range; the last candidate is the safe answer.
	for j := len(idx) - 1; j >= 0; j-- {
		if j != skip {
			return j
		}
	}
	return -1
}
