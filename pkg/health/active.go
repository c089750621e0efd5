package health

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/handoff-proxy/handoff/pkg/state"
	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// leaseName is the lease that elects the one process probing upstream.
func leaseName(up string) string { return "probe:" + up }

// runActive checks every target each interval, while this process holds
// the upstream's probing lease. Without a store, or while the store is
// unreachable, it probes on its own: a process never stops checking
// because Redis went away.
func (c *Checker) runActive(ctx context.Context) {
	defer c.wg.Done()
	defer c.recoverLog("active checks")
	a := c.o.Active
	interval := a.Interval
	if interval <= 0 {
		interval = 5 * time.Second
	}
	// The lease outlives a few missed renewals, and another process
	// takes over within it when the holder dies.
	leaseTTL := max(3*interval, 2*time.Second)
	p := newProber(a.ProbeSpec)
	held := false
	defer func() {
		if held && c.o.Store != nil {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			_ = c.o.Store.ReleaseLease(rctx, leaseName(c.o.Upstream), c.o.Holder)
			cancel()
		}
	}()
	timer := time.NewTimer(0) // the first round at once
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		held = c.acquire(ctx, leaseTTL)
		if held {
			c.checkAll(ctx, p)
		}
		timer.Reset(jittered(interval, a.Jitter))
	}
}

// acquire takes or renews the lease; any doubt (no store, store down)
// means probing locally.
func (c *Checker) acquire(ctx context.Context, ttl time.Duration) bool {
	if c.o.Store == nil || !c.o.Store.Up() {
		return true
	}
	lctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	ok, err := c.o.Store.TryLease(lctx, leaseName(c.o.Upstream), c.o.Holder, ttl)
	if err != nil {
		return true
	}
	return ok
}

// jittered spreads d by up to ±share of it.
func jittered(d time.Duration, share float64) time.Duration {
	if share <= 0 {
		return d
	}
	return d + time.Duration((rand.Float64()*2-1)*share*float64(d))
}

// checkAll probes every target concurrently and records the results.
func (c *Checker) checkAll(ctx context.Context, p *prober) {
	var wg sync.WaitGroup
	for t, rec := range c.set().recs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := c.now()
			err := p.check(ctx, t.URL.Scheme, t.URL.Host)
			if ctx.Err() != nil {
				return // shutting down: not the target's fault
			}
			took := c.now().Sub(start)
			if c.o.Observer != nil {
				c.o.Observer.Checked(c.o.Upstream, t.Address, err == nil, took)
			}
			c.observeCheck(t, rec, err)
		}()
	}
	wg.Wait()
}

// verdictRefresh is how often an unchanged active verdict is published
// again, well within verdictTTL.
const verdictRefresh = time.Minute

// observeCheck records one check result of t.
func (c *Checker) observeCheck(t *upstream.Target, rec *record, err error) {
	now := c.now()
	rec.mu.Lock()
	flipped := rec.active.observe(err == nil, c.o.Active.Thresholds)
	rec.activeAt = now
	rec.reason = "pass"
	if err != nil {
		rec.reason = err.Error()
	}
	rep := t.HealthReport()
	rep.LastCheck, rep.CheckedBy = now, c.o.Holder
	rep.LastResult, rep.LastError = "pass", ""
	if err != nil {
		rep.LastResult, rep.LastError = "fail", err.Error()
	}
	if flipped {
		rec.since, rep.Since = now, now
		t.SetActiveDown(!rec.active.healthy)
	}
	rep.State = stateName(t, now)
	rec.setReportLocked(t, rep)
	refresh := flipped || now.Sub(rec.published) >= verdictRefresh
	var v state.Verdict
	if refresh {
		rec.published = now
		v = rec.verdictLocked(c.o.Upstream, t, c.o.Holder, "")
	}
	healthy := rec.active.healthy
	rec.mu.Unlock()
	if flipped {
		if healthy {
			c.log.Info("target healthy", "upstream", c.o.Upstream, "target", t.Address)
		} else {
			c.log.Warn("target unhealthy", "upstream", c.o.Upstream, "target", t.Address, "error", err)
		}
	}
	if refresh {
		c.publish(v)
	}
}
