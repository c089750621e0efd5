package health

import (
	"time"
)

// Thresholds are how many consecutive check results flip a target's
// active verdict (HAProxy's rise and fall).
type Thresholds struct {
	// Healthy is how many passing checks in a row make an unhealthy
	// target healthy. Zero means 2.
	Healthy int
	// Unhealthy is how many failing checks in a row make a healthy target
	// unhealthy. Zero means 3.
	Unhealthy int
}

func (t Thresholds) orDefault() Thresholds {
	if t.Healthy <= 0 {
		t.Healthy = 2
	}
	if t.Unhealthy <= 0 {
		t.Unhealthy = 3
	}
	return t
}

// activeJudge turns a stream of check results into a verdict. A target
// starts healthy: a process that starts must not refuse traffic before
// its first check (shared verdicts loaded at start say otherwise when the
// other processes know better).
type activeJudge struct {
	healthy bool
	okRun   int
	failRun int
}

// observe records one check result and reports whether the verdict
// changed.
func (j *activeJudge) observe(pass bool, th Thresholds) bool {
	th = th.orDefault()
	if pass {
		j.okRun++
		j.failRun = 0
		if !j.healthy && j.okRun >= th.Healthy {
			j.healthy = true
			return true
		}
		return false
	}
	j.failRun++
	j.okRun = 0
	if j.healthy && j.failRun >= th.Unhealthy {
		j.healthy = false
		return true
	}
	return false
}

// PassiveSpec is outlier detection from live traffic (Envoy's
// consecutive_5xx / consecutive_gateway_failure with base_ejection_time).
type PassiveSpec struct {
	// ConsecutiveFailures in a row eject the target. Zero means 1 (the
	// fail_timeout rule: one failed connect ejects).
	ConsecutiveFailures int
	// TimeoutCounts reports whether a timeout counts as a failure.
	TimeoutCounts bool
	// Status5xx reports whether a 5xx response counts as a failure.
	Status5xx bool
	// BaseEjection is the first ejection's length; each repeated ejection
	// doubles it. Zero means 10s.
	BaseEjection time.Duration
	// MaxEjection caps an ejection's length. Zero means 5m.
	MaxEjection time.Duration
}

func (s PassiveSpec) orDefault() PassiveSpec {
	if s.ConsecutiveFailures <= 0 {
		s.ConsecutiveFailures = 1
	}
	if s.BaseEjection <= 0 {
		s.BaseEjection = 10 * time.Second
	}
	if s.MaxEjection <= 0 {
		s.MaxEjection = 5 * time.Minute
	}
	if s.MaxEjection < s.BaseEjection {
		s.MaxEjection = s.BaseEjection
	}
	return s
}

// failure reports whether r counts against the target under s. A client
// that went away or a local resource error is never reported at all.
func (s PassiveSpec) failure(r Result) bool {
	switch r.Outcome {
	case ConnectFailed, Failed:
		return true
	case Timeout:
		return s.TimeoutCounts
	case Success:
		return s.Status5xx && r.Status >= 500 && r.Status <= 599
	}
	return false
}

// passiveJudge ejects a target after consecutive failures. Each ejection
// lasts BaseEjection × 2^(ejections−1), capped at MaxEjection, plus up to
// 10% jitter from the second on.
// An ejected target always comes back for a trial when its ejection ends:
// it is never ejected for good. The count of ejections decays back to
// zero once the target has served without an ejection for MaxEjection.
type passiveJudge struct {
	failRun      int
	ejections    int
	ejectedUntil time.Time
}

// observe records one result at now and returns the end of a new
// ejection, or the zero time when r did not eject. rnd returns a value in
// [0, 1) for the jitter.
func (j *passiveJudge) observe(r Result, s PassiveSpec, now time.Time, rnd func() float64) time.Time {
	s = s.orDefault()
	if !s.failure(r) {
		j.failRun = 0
		if j.ejections > 0 && !j.ejectedUntil.IsZero() && now.Sub(j.ejectedUntil) >= s.MaxEjection {
			j.ejections = 0
		}
		return time.Time{}
	}
	if now.Before(j.ejectedUntil) {
		// Already ejected: failures of requests that were in flight
		// when it happened do not extend it.
		return time.Time{}
	}
	j.failRun++
	if j.failRun < s.ConsecutiveFailures {
		return time.Time{}
	}
	j.failRun = 0
	j.ejections++
	d := s.BaseEjection
	for i := 1; i < j.ejections && d < s.MaxEjection; i++ {
		d *= 2
	}
	d = min(d, s.MaxEjection)
	// The first ejection lasts exactly BaseEjection (fail_timeout keeps
	// its meaning); repeats are spread so that processes and targets do
	// not come back in lockstep.
	if rnd != nil && j.ejections > 1 {
		d += time.Duration(rnd() * 0.1 * float64(d))
	}
	j.ejectedUntil = now.Add(d)
	return j.ejectedUntil
}
