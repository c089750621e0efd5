package config

import (
	"strconv"
	"strings"
	"time"

	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// Built-in defaults; types.go documents each where it says what zero
// means.
const (
	defaultAdminListen      = "127.0.0.1:9901"
	defaultLogLevel         = "info"
	defaultLogFormat        = "json"
	defaultShutdownTimeout  = 30 * time.Second
	defaultReadHeader       = 10 * time.Second
	defaultIdle             = 120 * time.Second
	defaultMaxHeaderBytes   = 64 << 10
	defaultMaxHeaderFields  = 100
	defaultBodyRead         = 60 * time.Second
	defaultTLSMinVersion    = "1.2"
	defaultHashKey          = "client_ip"
	defaultRetries          = 3
	defaultFailTimeout      = 10 * time.Second
	defaultMaxIdlePerTarget = 256
	defaultDial             = 5 * time.Second
	defaultTLSHandshake     = 10 * time.Second
	defaultResponseHeader   = 60 * time.Second
	defaultIdleConn         = 90 * time.Second
	defaultWeight           = 1
	defaultRetryBudget      = "20%"
	defaultQueueTimeout     = 10 * time.Second
)

// Default returns the configuration with nothing configured: every
// process-wide setting at its default, no listeners, routes or upstreams.
// It does not validate (it has no listeners).
func Default() *Config {
	c := &Config{}
	c.ApplyDefaults()
	return c
}

// ApplyDefaults replaces every zero value whose documented meaning is a
// default with that default, so that the Config says what the process
// does (and `handoff config` prints it): admin.listen, log, timeouts,
// limits, shutdown_timeout; each listener's protocol and TLS min_version;
// each route's name ("route<N>"); each upstream's strategy, hash_key (for
// the hash strategy only), retries, retry_on, retry_budget,
// queue.timeout, fail_timeout, max_idle_per_target,
// timeouts and its targets' weights. It also upper-cases route methods
// (RFC 9110 §9.1: method names are case-sensitive and the standard ones
// are upper-case, so "get" can only be a mistake for "GET").
//
// Load calls it; code that builds a Config by hand may call it too. It is
// idempotent.
func (c *Config) ApplyDefaults() {
	setDefault(&c.Admin.Listen, defaultAdminListen)
	setDefault(&c.Log.Level, defaultLogLevel)
	setDefault(&c.Log.Format, defaultLogFormat)
	if c.Log.Access == nil {
		c.Log.Access = new(true)
	}
	setDefault(&c.ShutdownTimeout, defaultShutdownTimeout)
	setDefault(&c.Timeouts.ReadHeader, defaultReadHeader)
	setDefault(&c.Timeouts.Idle, defaultIdle)
	setDefault(&c.Limits.MaxHeaderBytes, defaultMaxHeaderBytes)
	setDefault(&c.Limits.MaxHeaderFields, defaultMaxHeaderFields)
	setDefault(&c.Timeouts.BodyRead, defaultBodyRead)

	for i := range c.Listeners {
		l := &c.Listeners[i]
		setDefault(&l.Protocol, ProtocolHTTP)
		if l.TLS != nil {
			setDefault(&l.TLS.MinVersion, defaultTLSMinVersion)
			if l.TLS.ACME != nil {
				l.TLS.ACME.applyDefaults() // acme.go
			}
		}
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		setDefault(&r.Name, "route"+strconv.Itoa(i))
		for j, m := range r.Match.Methods {
			r.Match.Methods[j] = strings.ToUpper(m)
		}
	}
	for name, u := range c.Upstreams {
		setDefault(&u.Strategy, StrategyRoundRobin)
		if u.Strategy == StrategyHash {
			setDefault(&u.HashKey, defaultHashKey)
		}
		if u.Retries == nil {
			u.Retries = new(defaultRetries)
		}
		if u.RetryOn == nil {
			u.RetryOn = []string{RetryOnConnectFailure, RetryOnTimeout}
		}
		setDefault(&u.RetryBudget, defaultRetryBudget)
		setDefault(&u.Queue.Timeout, defaultQueueTimeout)
		setDefault(&u.FailTimeout, defaultFailTimeout)
		setDefault(&u.MaxIdlePerTarget, defaultMaxIdlePerTarget)
		setDefault(&u.ResolveEvery, upstream.DefaultResolveEvery)
		setDefault(&u.Timeouts.Dial, defaultDial)
		setDefault(&u.Timeouts.TLSHandshake, defaultTLSHandshake)
		setDefault(&u.Timeouts.ResponseHeader, defaultResponseHeader)
		setDefault(&u.Timeouts.IdleConn, defaultIdleConn)
		for j := range u.Targets {
			setDefault(&u.Targets[j].Weight, defaultWeight)
		}
		c.Upstreams[name] = u
	}
}

func setDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}
