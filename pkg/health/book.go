package health

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/handoff-proxy/handoff/pkg/state"
	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// Book keeps the judges' state per (upstream, target) for the life of the
// process, so that a reload, which builds new Checkers, keeps the runs of
// passed and failed checks and the ejection count. The zero value is not
// usable; call NewBook.
type Book struct {
	mu   sync.Mutex
	recs map[bookKey]*record
}

type bookKey struct{ upstream, target string }

// NewBook returns an empty Book.
func NewBook() *Book { return &Book{recs: make(map[bookKey]*record)} }

func (b *Book) record(up, target string) *record {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := bookKey{up, target}
	r := b.recs[k]
	if r == nil {
		r = &record{active: activeJudge{healthy: true}}
		b.recs[k] = r
	}
	return r
}

// record is what is known about one target of one upstream.
type record struct {
	// failRun mirrors passive.failRun for the lock-free fast path.
	failRun atomic.Int32

	mu      sync.Mutex
	active  activeJudge
	passive passiveJudge
	// activeAt is when the active verdict was reached (by a check here
	// or elsewhere); a shared verdict's active part is applied only when
	// it is newer.
	activeAt time.Time
	since    time.Time
	reason   string
	// published is when this process last wrote the verdict.
	published time.Time
}

func (r *record) reportLocked(t *upstream.Target) upstream.HealthReport {
	return t.HealthReport()
}

func (r *record) setReportLocked(t *upstream.Target, rep upstream.HealthReport) {
	rep.Ejections = r.passive.ejections
	t.SetHealthReport(rep)
}

// verdictLocked is the shared form of what this process knows about t.
func (r *record) verdictLocked(up string, t *upstream.Target, holder, reason string) state.Verdict {
	if reason == "" {
		reason = r.reason
	}
	return state.Verdict{
		Upstream:     up,
		Target:       t.Address,
		Healthy:      r.active.healthy,
		Since:        r.since,
		Reason:       reason,
		CheckedAt:    r.activeAt,
		Holder:       holder,
		Ejections:    r.passive.ejections,
		EjectedUntil: r.passive.ejectedUntil,
	}
}

// apply takes a verdict another process published: its active part when it
// is newer than what this process knows, its ejection always (the later
// end wins). Garbage was already dropped by the store.
func (c *Checker) apply(v state.Verdict) {
	if v.Upstream != c.o.Upstream || v.Holder == c.o.Holder {
		return
	}
	set := c.set()
	t := set.byKey[v.Target]
	if t == nil {
		return
	}
	rec := set.recs[t]
	now := c.now()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rep := t.HealthReport()
	changed := false
	if !v.CheckedAt.IsZero() && v.CheckedAt.After(rec.activeAt) {
		if rec.active.healthy != v.Healthy {
			changed = true
			rep.Since = v.Since
		}
		rec.active = activeJudge{healthy: v.Healthy}
		rec.activeAt, rec.since, rec.reason = v.CheckedAt, v.Since, v.Reason
		t.SetActiveDown(!v.Healthy)
		rep.LastCheck, rep.CheckedBy = v.CheckedAt, v.Holder
		rep.LastResult, rep.LastError = "pass", ""
		if !v.Healthy {
			rep.LastResult, rep.LastError = "fail", v.Reason
		}
	}
	if v.EjectedUntil.After(now) && v.EjectedUntil.After(rec.passive.ejectedUntil) {
		rec.passive.ejectedUntil = v.EjectedUntil
		rec.passive.ejections = max(rec.passive.ejections, v.Ejections)
		t.EjectUntil(v.EjectedUntil)
		changed = true
		rep.Since = now
	}
	rep.State = stateName(t, now)
	rec.setReportLocked(t, rep)
	if changed {
		c.log.Info("shared health verdict applied", "upstream", v.Upstream, "target", v.Target,
			"healthy", v.Healthy, "ejected_until", v.EjectedUntil, "from", v.Holder)
	}
}

// stateName names t's state for reports.
func stateName(t *upstream.Target, now time.Time) string {
	switch {
	case t.ActiveDown():
		return "unhealthy"
	case now.Before(t.EjectedUntil()):
		return "ejected"
	}
	return "healthy"
}
