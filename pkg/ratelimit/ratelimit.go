// Package ratelimit owns the rate-limit decision: a GCRA (generic cell
// rate algorithm, the virtual-scheduling form of ITU-T I.371 that
// redis_rate and Stripe use) per key, in process (Local) or shared by
// every process of a deployment through Redis (Redis), and the fallback
// from the shared one to the local one when Redis fails (Fallback).
//
// GCRA keeps one number per key, the theoretical arrival time (TAT) of the
// next request; it is a token bucket without a refill loop, so one
// Redis round trip (one Lua script) decides a request exactly, whichever
// process receives it.
//
// It decides on a key string; which key a request has (client address,
// header, route) and how a denial is answered are the caller's business.
// It must not know about HTTP.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Limit is a rate: Requests per Per, with bursts of up to Burst requests.
type Limit struct {
	// Requests per Per. Must be positive.
	Requests int
	// Per is the period of Requests. Must be positive.
	Per time.Duration
	// Burst is how many requests may come at once after a quiet period.
	// Zero means Requests.
	Burst int
}

// ErrBadLimit is returned for a Limit that cannot be enforced.
var ErrBadLimit = errors.New("bad rate limit")

// Check reports whether l is usable.
func (l Limit) Check() error {
	if l.Requests <= 0 || l.Per <= 0 || l.Burst < 0 {
		return fmt.Errorf("%w: %d per %v, burst %d (requests and per must be positive)", ErrBadLimit, l.Requests, l.Per, l.Burst)
	}
	if l.Per/time.Duration(l.Requests) <= 0 {
		return fmt.Errorf("%w: %d per %v is more than one per nanosecond", ErrBadLimit, l.Requests, l.Per)
	}
	return nil
}

// burst is Burst with its default.
func (l Limit) burst() int {
	if l.Burst > 0 {
		return l.Burst
	}
	return l.Requests
}

// interval is the emission interval: the time one request costs.
func (l Limit) interval() time.Duration { return l.Per / time.Duration(l.Requests) }

// Result is the decision on one request.
type Result struct {
	// Allowed reports whether the request may pass.
	Allowed bool
	// Remaining is how many more requests would pass right now.
	Remaining int
	// RetryAfter is, when not allowed, how long until one request would
	// pass. Zero when allowed.
	RetryAfter time.Duration
	// ResetAfter is how long until the key is back to a full burst.
	ResetAfter time.Duration
}

// Limiter decides whether one more request under key fits limit. An error
// means the limiter could not decide (Redis unreachable); the caller
// chooses whether to fail open (Fallback does).
type Limiter interface {
	Allow(ctx context.Context, key string, limit Limit) (Result, error)
}

// gcra is the decision of the algorithm at now for the stored tat (zero
// when the key is new): the result and the TAT to store when allowed.
func gcra(now, tat time.Duration, l Limit) (Result, time.Duration) {
	interval := l.interval()
	tolerance := time.Duration(l.burst()) * interval
	if tat < now {
		tat = now
	}
	newTAT := tat + interval
	allowAt := newTAT - tolerance
	if now < allowAt {
		return Result{RetryAfter: allowAt - now, ResetAfter: tat - now}, tat
	}
	return Result{
		Allowed:    true,
		Remaining:  int((now - allowAt) / interval),
		ResetAfter: newTAT - now,
	}, newTAT
}
