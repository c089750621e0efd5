// Package balance owns the load-balancing strategies and their names: given
// a pool and a protocol-free Key (client address, hash-key value), a
// Selector picks one target. There is one file per strategy
// (round_robin, weighted_round_robin, least_conn, random, p2c, hash), all
// behind the one-method Selector interface.
//
// It must not know how a target is reached, retried or ejected (packages
// proxy, upstream and health): the caller says which targets are eligible,
// and it reads in-flight counts and weights only through upstream.Target.
// Selection never sees an *http.Request; extracting the hash key from one
// is HashKey.FromRequest, which the HTTP proxy calls.
package balance

import (
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"

	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// Key is what a Selector may look at to choose: a protocol-free view of
// one request or connection, so that an HTTP request, an HTTP/1.1 fast
// path and an L4 TCP connection all use the same strategies.
type Key struct {
	// Client is the client's address (for HTTP the one package clientip
	// derives from the peer and trusted forwarding headers; for L4 the
	// peer or its PROXY protocol header). The zero Addr means unknown,
	// as on a Unix socket. The hash strategy's client_ip key hashes it.
	Client netip.Addr
	// Hash is the value of the hash strategy's header or cookie key,
	// extracted by the caller (HashKey.FromRequest for HTTP). Empty means
	// the request has no such key; unused for the client_ip key and by
	// the other strategies.
	Hash string
}

// Selector picks a target of its pool for one request or connection,
// described by k. eligible reports whether a target may be picked (the
// proxy passes a func that skips unavailable targets and targets already
// tried for this request); a nil eligible means every target is eligible.
// Select returns nil when no target is eligible.
//
// Select is safe for concurrent use. It calls eligible synchronously, on
// the caller's goroutine, and may hold an internal lock while doing so, so
// eligible must not call back into the Selector.
type Selector interface {
	Select(k Key, eligible func(*upstream.Target) bool) *upstream.Target
}

// Load-balancing strategies, the values of an upstream's strategy.
const (
	StrategyRoundRobin         = "round_robin"
	StrategyWeightedRoundRobin = "weighted_round_robin"
	StrategyLeastConn          = "least_conn"
	StrategyRandom             = "random"
	StrategyP2C                = "p2c"
	StrategyHash               = "hash"
)

// DefaultStrategy is the strategy an empty strategy name means.
const DefaultStrategy = StrategyRoundRobin

// Strategies lists every valid strategy name.
func Strategies() []string {
	return []string{StrategyRoundRobin, StrategyWeightedRoundRobin, StrategyLeastConn, StrategyRandom, StrategyP2C, StrategyHash}
}

// ParseStrategy checks a strategy name; empty means DefaultStrategy. Names
// are case-sensitive. The error wraps ErrUnknownStrategy and lists the
// allowed names; its message is written for users.
func ParseStrategy(s string) (string, error) {
	if s == "" {
		return DefaultStrategy, nil
	}
	if !slices.Contains(Strategies(), s) {
		return "", invalid(ErrUnknownStrategy, "%q is not a strategy (allowed: %s)", s, strings.Join(Strategies(), ", "))
	}
	return s, nil
}

// parseError is the error of a Parse function: a message for users that
// wraps one of the package's sentinel errors.
type parseError struct {
	msg  string
	kind error
}

func (e *parseError) Error() string { return e.msg }
func (e *parseError) Unwrap() error { return e.kind }

func invalid(kind error, format string, args ...any) error {
	return &parseError{msg: fmt.Sprintf(format, args...), kind: kind}
}

// Options tune a Selector. The zero value is ready to use.
type Options struct {
	// Rand returns uniformly distributed 64-bit values and must be safe
	// for concurrent use. Nil means math/rand/v2's Uint64. Tests inject a
	// seeded generator to make random strategies reproducible.
	Rand func() uint64
}

// Errors returned by New, for errors.Is.
var (
	// ErrUnknownStrategy means the strategy is not one of Strategies().
	ErrUnknownStrategy = errors.New("unknown strategy")
	// ErrInvalidHashKey means the hash key could not be parsed.
	ErrInvalidHashKey = errors.New("invalid hash key")
	// ErrNoTargets means the pool has no target to pick from.
	ErrNoTargets = errors.New("no targets")
)

// New returns the Selector for p with the named strategy (see
// ParseStrategy; empty means round_robin). The hash strategy hashes
// hashKey (see ParseHashKey); other strategies ignore it. For a pool of
// fixed targets the Selector keeps p.Targets(); for a Resolving pool it
// follows the pool's list, building the strategy again for each new list
// (dynamic.go), and a pool that has no target yet is not an error.
func New(p *upstream.Pool, strategy, hashKey string, opts Options) (Selector, error) {
	if p == nil || (len(p.Targets()) == 0 && !p.Resolving()) {
		name := ""
		if p != nil {
			name = p.Name
		}
		return nil, fmt.Errorf("new selector for %q: %w", name, ErrNoTargets)
	}
	if opts.Rand == nil {
		opts.Rand = rand.Uint64
	}
	var key HashKey
	switch strategy {
	case "", StrategyRoundRobin, StrategyWeightedRoundRobin, StrategyLeastConn, StrategyRandom, StrategyP2C:
	case StrategyHash:
		k, err := ParseHashKey(hashKey)
		if err != nil {
			return nil, fmt.Errorf("new selector for %q: %w", p.Name, err)
		}
		key = k
	default:
		return nil, fmt.Errorf("new selector for %q: %w %q", p.Name, ErrUnknownStrategy, strategy)
	}
	mk := func(targets []*upstream.Target) Selector { return build(targets, strategy, key, opts.Rand) }
	if p.Resolving() {
		return newDynamic(p, mk), nil
	}
	return mk(p.Targets()), nil
}

// build returns the strategy over a fixed, non-empty list of targets.
func build(targets []*upstream.Target, strategy string, key HashKey, rnd func() uint64) Selector {
	switch strategy {
	case StrategyWeightedRoundRobin:
		return newWeightedRoundRobin(targets)
	case StrategyLeastConn:
		return newLeastConn(targets, rnd)
	case StrategyRandom:
		return newRandom(targets, rnd)
	case StrategyP2C:
		return newP2C(targets, rnd)
	case StrategyHash:
		return newHash(targets, key)
	default:
		return newRoundRobin(targets)
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
