package server

import (
	"fmt"
	"os"
	"strconv"

	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/health"
	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// defaultPanicThreshold is Envoy's default: below half of the targets
// available, balance over all of them.
const defaultPanicThreshold = 0.5

// healthOptions turns an upstream's health config into the Checker's
// options. Config validation has already parsed every value the same way.
func healthOptions(name string, up config.Upstream, pool *upstream.Pool, d buildDeps) (health.Options, error) {
	o := health.Options{
		Upstream:       name,
		Pool:           pool,
		FailTimeout:    up.FailTimeout,
		PanicThreshold: defaultPanicThreshold,
		Passive:        health.PassiveSpec{TimeoutCounts: true},
		Store:          d.store,
		Book:           d.book,
		Holder:         d.holder,
		Observer:       d.metrics,
		Logger:         d.log,
		Now:            d.now,
	}
	h := up.Health
	if h == nil {
		return o, nil
	}
	if h.PanicThreshold != "" {
		p, err := health.ParsePercent(h.PanicThreshold)
		if err != nil {
			return o, fmt.Errorf("panic_threshold: %w", err)
		}
		o.PanicThreshold = p
	}
	ps := h.Passive
	o.Passive = health.PassiveSpec{
		ConsecutiveFailures: ps.ConsecutiveFailures,
		TimeoutCounts:       ps.TimeoutCounts == nil || *ps.TimeoutCounts,
		Status5xx:           ps.Status5xx,
		BaseEjection:        ps.BaseEjection,
		MaxEjection:         ps.MaxEjection,
	}
	a := h.Active
	if a == nil {
		return o, nil
	}
	expect, err := health.ParseStatusRanges(a.ExpectStatus)
	if err != nil {
		return o, fmt.Errorf("expect_status: %w", err)
	}
	jitter := 0.1
	if a.Jitter != "" {
		if jitter, err = health.ParsePercent(a.Jitter); err != nil {
			return o, fmt.Errorf("jitter: %w", err)
		}
	}
	tlsConf, err := d.tports.TLSConfig(name)
	if err != nil {
		return o, err
	}
	sendProxy := 0
	if pp := up.ProxyProtocol; pp != nil {
		sendProxy = map[string]int{"v1": 1, "v2": 2}[pp.Send]
	}
	o.Active = &health.ActiveSpec{
		ProbeSpec: health.ProbeSpec{
			Type: a.Type, Path: a.Path, Host: a.Host, Expect: expect,
			BodyContains: a.BodyContains, Timeout: a.Timeout, TLS: tlsConf,
			SendProxy: sendProxy,
		},
		Interval:   a.Interval,
		Jitter:     jitter,
		Thresholds: health.Thresholds{Healthy: a.HealthyThreshold, Unhealthy: a.UnhealthyThreshold},
	}
	return o, nil
}

// holderID names this process in leases and shared verdicts: host and
// pid, readable in the admin API (which process checked).
func holderID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return host + ":" + strconv.Itoa(os.Getpid())
}
