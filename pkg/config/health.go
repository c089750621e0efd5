package config

import (
	"time"

	"github.com/handoff-proxy/handoff/pkg/health"
)

// Health configures how the targets of an upstream are judged. Without it
// a target is judged only by the passive rules with their defaults (a
// failed connect ejects it for fail_timeout, doubling on repeats).
type Health struct {
	// Active checks. Nil means none.
	Active *ActiveHealth `koanf:"active" json:"active,omitempty" yaml:"active,omitempty"`
	// Passive outlier detection from live traffic.
	Passive PassiveHealth `koanf:"passive" json:"passive" yaml:"passive"`
	// PanicThreshold: when the share of healthy targets falls below it,
	// balance over all targets, healthy or not (Envoy's panic threshold),
	// rather than overload the few left. "0%" fails closed with 503.
	// Empty means 50%.
	PanicThreshold string `koanf:"panic_threshold" json:"panic_threshold,omitempty" yaml:"panic_threshold,omitempty"`
}

// ActiveHealth configures active checks. With several handoff processes
// sharing state (state.redis), one process at a time runs them.
type ActiveHealth struct {
	// Type is "http" (default), "tcp" (connect only) or "tls" (connect
	// and handshake).
	Type string `koanf:"type" json:"type,omitempty" yaml:"type,omitempty"`
	// Path of the HTTP check. Empty means "/".
	Path string `koanf:"path" json:"path,omitempty" yaml:"path,omitempty"`
	// Host header of the HTTP check. Empty means the target's address.
	Host string `koanf:"host" json:"host,omitempty" yaml:"host,omitempty"`
	// ExpectStatus lists statuses or ranges that pass ("200", "200-399").
	// Empty means 200-399.
	ExpectStatus []string `koanf:"expect_status" json:"expect_status,omitempty" yaml:"expect_status,omitempty"`
	// BodyContains must occur in the first 64 KiB of the body. Empty
	// means the body is not checked.
	BodyContains string `koanf:"body_contains" json:"body_contains,omitempty" yaml:"body_contains,omitempty"`
	// Interval between checks of a target. Zero means 5s.
	Interval time.Duration `koanf:"interval" json:"interval" yaml:"interval"`
	// Timeout of one check, connect to body. Zero means 2s.
	Timeout time.Duration `koanf:"timeout" json:"timeout" yaml:"timeout"`
	// Jitter spreads checks by up to this share of the interval ("10%").
	// Empty means 10%.
	Jitter string `koanf:"jitter" json:"jitter,omitempty" yaml:"jitter,omitempty"`
	// HealthyThreshold passing checks in a row make a target healthy.
	// Zero means 2.
	HealthyThreshold int `koanf:"healthy_threshold" json:"healthy_threshold" yaml:"healthy_threshold"`
	// UnhealthyThreshold failing checks in a row make it unhealthy. Zero
	// means 3.
	UnhealthyThreshold int `koanf:"unhealthy_threshold" json:"unhealthy_threshold" yaml:"unhealthy_threshold"`
}

// PassiveHealth configures outlier detection from live traffic.
type PassiveHealth struct {
	// ConsecutiveFailures in a row eject a target. Zero means 1.
	ConsecutiveFailures int `koanf:"consecutive_failures" json:"consecutive_failures" yaml:"consecutive_failures"`
	// TimeoutCounts reports whether a timeout counts as a failure. Nil
	// means true.
	TimeoutCounts *bool `koanf:"timeout_counts" json:"timeout_counts,omitempty" yaml:"timeout_counts,omitempty"`
	// Status5xx reports whether a 5xx answer counts as a failure.
	Status5xx bool `koanf:"status_5xx" json:"status_5xx" yaml:"status_5xx"`
	// BaseEjection is the first ejection's length; repeats double it.
	// Zero means the upstream's fail_timeout.
	BaseEjection time.Duration `koanf:"base_ejection" json:"base_ejection" yaml:"base_ejection"`
	// MaxEjection caps an ejection. Zero means 5m.
	MaxEjection time.Duration `koanf:"max_ejection" json:"max_ejection" yaml:"max_ejection"`
}

func (v *validator) health(key string, h *Health) {
	if h == nil {
		return
	}
	if _, err := health.ParsePercent(h.PanicThreshold); err != nil {
		v.errs.add(joinKey(key, "panic_threshold"), "%v", err)
	}
	if a := h.Active; a != nil {
		akey := joinKey(key, "active")
		oneOf(&v.errs, joinKey(akey, "type"), a.Type, health.ProbeTypes())
		if _, err := health.ParseStatusRanges(a.ExpectStatus); err != nil {
			v.errs.add(joinKey(akey, "expect_status"), "%v", err)
		}
		if _, err := health.ParsePercent(a.Jitter); err != nil {
			v.errs.add(joinKey(akey, "jitter"), "%v", err)
		}
		if a.Path != "" && a.Path[0] != '/' {
			v.errs.add(joinKey(akey, "path"), "%q must start with /", a.Path)
		}
		if a.Timeout > 0 && a.Interval > 0 && a.Timeout > a.Interval {
			v.errs.add(joinKey(akey, "timeout"), "%v is longer than the interval %v", a.Timeout, a.Interval)
		}
	}
	p := h.Passive
	if p.MaxEjection > 0 && p.BaseEjection > p.MaxEjection {
		v.errs.add(joinKey(key, "passive.max_ejection"), "%v is shorter than base_ejection %v", p.MaxEjection, p.BaseEjection)
	}
}
