// Package health owns the verdict on whether a target may receive
// traffic: active checks (http, tcp, tls) with thresholds, passive outlier
// detection from live traffic (consecutive failures eject a target for a
// time that doubles on repeats), Envoy's panic threshold, and sharing all
// of it with the other handoff processes through a state store: one process
// at a time holds the lease to probe an upstream, every process publishes
// its passive ejections, and every process applies what the others
// decided. Nothing of that is on a request's path: the proxy asks
// Available and calls Report, which read and write atomics; the store is
// used by background goroutines.
//
// A Checker is built per config generation and per upstream, and owns its
// goroutines (Start/Close). The judges' state lives in a Book kept by the
// process, so that a reload keeps what was learnt.
//
// It must not know how requests are forwarded (package proxy) or how
// targets are chosen (package balance).
package health

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/handoff-proxy/handoff/pkg/state"
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

// Store is where verdicts and the probing lease are shared (package
// state's stores implement it). Every method is called from background
// goroutines only.
type Store interface {
	PutVerdict(ctx context.Context, v state.Verdict, ttl time.Duration) error
	Verdicts(ctx context.Context) ([]state.Verdict, error)
	Watch(fn func(state.Verdict)) (stop func())
	TryLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error
	Up() bool
}

// Observer is told about checks and ejections, for metrics. Nil means
// nobody listens.
type Observer interface {
	Checked(upstream, target string, pass bool, took time.Duration)
	Ejected(upstream, target string)
}

// ActiveSpec configures active checks of one upstream.
type ActiveSpec struct {
	ProbeSpec
	// Interval between checks of a target. Zero means 5s.
	Interval time.Duration
	// Jitter spreads each wait by up to this share of Interval, either
	// way. Zero means none.
	Jitter float64
	Thresholds
}

// Options configure a Checker.
type Options struct {
	// Upstream names the upstream, for verdicts, the lease and logs.
	Upstream string
	// Pool holds the targets judged.
	Pool *upstream.Pool
	// Active checks; nil means none.
	Active *ActiveSpec
	// Passive outlier detection. Its zero value ejects on the first
	// failed connect, reset or timeout for FailTimeout.
	Passive PassiveSpec
	// FailTimeout is the first ejection's length when Passive.BaseEjection
	// is zero (the upstream's fail_timeout).
	FailTimeout time.Duration
	// PanicThreshold: below this share of available targets every target
	// is available again. Zero fails closed.
	PanicThreshold float64
	// Store shares verdicts and the lease. Nil means this process decides
	// alone.
	Store Store
	// Book keeps the judges' state across reloads. Nil means a new one.
	Book *Book
	// Holder names this process in leases and verdicts.
	Holder   string
	Observer Observer
	Logger   *slog.Logger
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Rand returns values in [0, 1) for the ejection jitter. Nil means
	// math/rand/v2.
	Rand func() float64
}

// Checker judges the targets of one pool. Its request-path methods
// (Available, Report) are safe for concurrent use and do not allocate
// unless a verdict changes.
type Checker struct {
	o       Options
	now     func() time.Time
	log     *slog.Logger
	passive PassiveSpec
	// recs is the records of the pool's current targets; it is built
	// again when a Resolving pool publishes a new list (set).
	recs  atomic.Pointer[targetRecs]
	recMu sync.Mutex // serialises rebuilding recs

	pub chan state.Verdict

	started   atomic.Bool
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	stopWatch func()
}

// New returns a Checker for o.Pool.
func New(o Options) *Checker {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Book == nil {
		o.Book = NewBook()
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	c := &Checker{
		o:       o,
		now:     o.Now,
		log:     o.Logger,
		passive: o.Passive,
		pub:     make(chan state.Verdict, 256),
	}
	if c.passive.BaseEjection <= 0 {
		c.passive.BaseEjection = o.FailTimeout
	}
	c.set()
	return c
}

// targetRecs is the judges' records of one list of targets.
type targetRecs struct {
	targets []*upstream.Target
	recs    map[*upstream.Target]*record
	byKey   map[string]*upstream.Target
}

// set returns the records of the pool's current targets, building them
// when the pool published a new list: new targets start with what the
// Book knows of their address (healthy when nothing), removed ones are
// no longer probed, and a report about one (a request that was in flight
// when it went away) is dropped.
func (c *Checker) set() *targetRecs {
	var ts []*upstream.Target
	if c.o.Pool != nil {
		ts = c.o.Pool.Targets()
	}
	if r := c.recs.Load(); r != nil && sameList(r.targets, ts) {
		return r
	}
	c.recMu.Lock()
	defer c.recMu.Unlock()
	if r := c.recs.Load(); r != nil && sameList(r.targets, ts) {
		return r
	}
	r := &targetRecs{targets: ts, recs: make(map[*upstream.Target]*record, len(ts)), byKey: make(map[string]*upstream.Target, len(ts))}
	for _, t := range ts {
		r.recs[t] = c.o.Book.record(c.o.Upstream, t.Key())
		r.byKey[t.Address] = t
	}
	c.recs.Store(r)
	return r
}

// sameList reports whether a and b are the same published list: a pool
// never modifies a list, it publishes a new one.
func sameList(a, b []*upstream.Target) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// Available reports whether t may be picked now: it passes its active
// checks and is not ejected, or too few targets are (panic threshold).
func (c *Checker) Available(t *upstream.Target) bool {
	now := c.now()
	if t.Available(now) {
		return true
	}
	return c.panicking(now)
}

// panicking reports whether the share of available targets is below the
// panic threshold: then every target is tried rather than overload the
// few left (Envoy's panic threshold; a threshold of zero fails closed).
func (c *Checker) panicking(now time.Time) bool {
	if c.o.PanicThreshold <= 0 || c.o.Pool == nil {
		return false
	}
	ts := c.o.Pool.Targets()
	if len(ts) == 0 {
		return false
	}
	healthy := 0
	for _, t := range ts {
		if t.Available(now) {
			healthy++
		}
	}
	return float64(healthy) < c.o.PanicThreshold*float64(len(ts))
}

// Report records the outcome of one attempt at t (passive outlier
// detection). An ejection is published to the other processes in the
// background.
func (c *Checker) Report(t *upstream.Target, r Result) {
	rec := c.set().recs[t]
	if rec == nil {
		return // not (or no longer) a target of the pool
	}
	if !c.passive.failure(r) && rec.failRun.Load() == 0 {
		return // the common case: nothing to record
	}
	now := c.now()
	rec.mu.Lock()
	until := rec.passive.observe(r, c.passive, now, c.o.Rand)
	rec.failRun.Store(int32(rec.passive.failRun))
	if until.IsZero() {
		rec.mu.Unlock()
		return
	}
	t.MarkFailed(now, until.Sub(now))
	rep := rec.reportLocked(t)
	rep.State, rep.Since = "ejected", now
	rec.setReportLocked(t, rep)
	v := rec.verdictLocked(c.o.Upstream, t, c.o.Holder, "passive: "+r.Outcome.String())
	rec.mu.Unlock()
	c.log.Warn("target ejected", "upstream", c.o.Upstream, "target", t.Address, "until", until, "ejections", v.Ejections, "after", r.Outcome.String())
	if c.o.Observer != nil {
		c.o.Observer.Ejected(c.o.Upstream, t.Address)
	}
	c.publish(v)
}

// publish queues v for the store without blocking: a full queue drops it,
// and the next verdict or the stores' resync heals that.
func (c *Checker) publish(v state.Verdict) {
	if c.o.Store == nil || !c.started.Load() {
		return
	}
	select {
	case c.pub <- v:
	default:
	}
}

// Start loads the verdicts other processes reached (before this process
// serves, so it never sends traffic to a target they know is down), then
// watches for new ones, publishes its own and runs the active checks.
func (c *Checker) Start(ctx context.Context) error {
	ctx, c.cancel = context.WithCancel(ctx)
	if c.o.Store != nil {
		c.stopWatch = c.o.Store.Watch(c.apply)
		lctx, cancel := context.WithTimeout(ctx, time.Second)
		vs, err := c.o.Store.Verdicts(lctx)
		cancel()
		if err != nil {
			c.log.Warn("shared health verdicts not loaded; starting from local knowledge", "upstream", c.o.Upstream, "error", err)
		}
		for _, v := range vs {
			c.apply(v)
		}
		c.wg.Add(1)
		go c.runPublisher(ctx)
	}
	c.started.Store(true)
	if c.o.Active != nil {
		c.wg.Add(1)
		go c.runActive(ctx)
	}
	return nil
}

// Close stops the checker's goroutines, releases its lease and waits.
func (c *Checker) Close() error {
	if c.cancel != nil {
		c.cancel()
	}
	if c.stopWatch != nil {
		c.stopWatch()
	}
	c.wg.Wait()
	return nil
}

func (c *Checker) runPublisher(ctx context.Context) {
	defer c.wg.Done()
	defer c.recoverLog("publisher")
	for {
		select {
		case <-ctx.Done():
			return
		case v := <-c.pub:
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			// The store logs an outage once; a lost verdict is
			// published again by the next change or refresh.
			_ = c.o.Store.PutVerdict(pctx, v, verdictTTL)
			cancel()
		}
	}
}

// verdictTTL bounds how long a verdict outlives its last refresh.
const verdictTTL = 10 * time.Minute

func (c *Checker) recoverLog(task string) {
	if v := recover(); v != nil {
		c.log.Error("health task panicked", "task", task, "upstream", c.o.Upstream, "panic", v)
	}
}
