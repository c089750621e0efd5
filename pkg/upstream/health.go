package upstream

import (
	"sync/atomic"
	"time"
)

// healthState is the part of a target's runtime state that package health
// writes: the active verdict and the report shown by the admin API. The
// passive ejection is downUntil in State.
type healthState struct {
	down   atomic.Bool // the active checks say unhealthy
	report atomic.Pointer[HealthReport]
}

// HealthReport is what package health last concluded about a target, for
// the admin API and metrics. The zero value means nothing was checked.
type HealthReport struct {
	// State is "healthy", "unhealthy" (failed its active checks) or
	// "ejected" (passive outlier detection), as of Since.
	State string    `json:"state"`
	Since time.Time `json:"since,omitzero"`
	// LastCheck is when an active check last ran, by this or another
	// process; LastResult is "pass" or "fail" and LastError says why a
	// check failed.
	LastCheck  time.Time `json:"last_check,omitzero"`
	LastResult string    `json:"last_result,omitempty"`
	LastError  string    `json:"last_error,omitempty"`
	// CheckedBy names the process whose verdict this is (host:pid).
	CheckedBy string `json:"checked_by,omitempty"`
	// Ejections counts passive ejections in a row (the next one lasts
	// twice as long).
	Ejections int `json:"ejections"`
}

// SetActiveDown records the active verdict. Only package health calls it.
func (t *Target) SetActiveDown(down bool) { t.state.health.down.Store(down) }

// ActiveDown reports whether the active checks judge t unhealthy.
func (t *Target) ActiveDown() bool { return t.state.health.down.Load() }

// EjectUntil ejects t until until (passive outlier detection); a later
// ejection already in place is kept. Only package health calls it.
func (t *Target) EjectUntil(until time.Time) {
	n := until.UnixNano()
	for {
		cur := t.state.downUntil.Load()
		if cur >= n || t.state.downUntil.CompareAndSwap(cur, n) {
			return
		}
	}
}

// EjectedUntil is the end of t's passive ejection; zero or past means none.
func (t *Target) EjectedUntil() time.Time {
	n := t.state.downUntil.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// SetHealthReport stores what package health concluded about t.
func (t *Target) SetHealthReport(r HealthReport) { t.state.health.report.Store(&r) }

// HealthReport returns the last report, zero when none.
func (t *Target) HealthReport() HealthReport {
	if r := t.state.health.report.Load(); r != nil {
		return *r
	}
	return HealthReport{}
}

// Key is the target's identity across processes and reloads: its
// normalised URL, the key of its runtime state.
func (t *Target) Key() string { return t.URL.String() }
