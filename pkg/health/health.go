// Package health owns the verdict on whether a target may receive
// traffic. Today that is the passive rule (nginx max_fails=1
// fail_timeout=): a target whose connection failed is skipped for
// FailTimeout. The proxy reports the outcome of every attempt and asks
// whether a target is available; only this package writes a target's
// ejection (upstream.Target.MarkFailed, MarkUp).
//
// A Checker is built per config generation and has Start and Close, so
// that active probes, outlier ejection and verdicts shared through Redis
// can later run as its own goroutines without changing its callers.
//
// It must not know how requests are forwarded (package proxy) or how
// targets are chosen (package balance).
package health

import (
	"context"
	"time"

	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// Outcome classifies one attempt to use a target.
type Outcome int

// Outcomes an attempt can have.
const (
	// Success: the target answered with a response (of any status).
	Success Outcome = iota
	// ConnectFailed: no connection could be set up (dial or TLS
	// handshake); no byte of the request was sent.
	ConnectFailed
	// Timeout: the target did not answer in time after the request was
	// sent.
	Timeout
	// Failed: any other failure of the target (connection reset, a
	// malformed response, a broken body).
	Failed
)

// String returns the outcome's name, for logs.
func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case ConnectFailed:
		return "connect_failed"
	case Timeout:
		return "timeout"
	case Failed:
		return "failed"
	}
	return "unknown"
}

// Result is what the proxy reports about one attempt.
type Result struct {
	Outcome Outcome
	// Status is the response's HTTP status for Success; zero otherwise.
	Status int
}

// Options configure a Checker. The zero value never ejects.
type Options struct {
	// FailTimeout is how long a target is skipped after a connect
	// failure. Zero means a failure does not eject (config.ApplyDefaults
	// gives the configured default, 10s).
	FailTimeout time.Duration
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// Checker keeps the health verdicts of the targets of one pool. It is safe
// for concurrent use; its methods are called on the request path and do
// not allocate.
type Checker struct {
	failTimeout time.Duration
	now         func() time.Time
}

// New returns a Checker with the passive rule of o.
func New(o Options) *Checker {
	c := &Checker{failTimeout: o.FailTimeout, now: o.Now}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// Start starts the checker's background work. The passive rule has none;
// it returns nil.
func (c *Checker) Start(context.Context) error { return nil }

// Close stops what Start started and waits for it. The passive rule has
// nothing to stop; it returns nil.
func (c *Checker) Close() error { return nil }

// Available reports whether t may be picked now: it is not ejected.
func (c *Checker) Available(t *upstream.Target) bool {
	return t.Available(c.now())
}

// Report records the outcome of one attempt at t. A connect failure ejects
// t for FailTimeout; other outcomes change nothing today (the response
// status and timeouts are for outlier detection later).
func (c *Checker) Report(t *upstream.Target, r Result) {
	if r.Outcome == ConnectFailed && c.failTimeout > 0 {
		t.MarkFailed(c.now(), c.failTimeout)
	}
}
