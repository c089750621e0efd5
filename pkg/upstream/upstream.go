// Package upstream owns targets and pools: the immutable description of a
// backend (address, scheme, weight) and its runtime state (in-flight
// requests, ejection, counters), kept apart so that state survives a
// config reload. State is keyed by address in a Registry; the ejection is
// written only by package health.
//
// It does not know how a target is chosen (package balance) or how a
// request is forwarded (package proxy).
package upstream

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/handoff-proxy/handoff/pkg/hostname"
)

// Schemes a target may use.
const (
	SchemeHTTP  = "http"
	SchemeHTTPS = "https"
	SchemeH2C   = "h2c"
)

// ParseAddress turns a configured target address into a URL with scheme and
// host:port. A bare "host:port" is plain HTTP; "https://host" gets port
// 443, "http://host" port 80. The scheme is http, https or h2c; the host
// an IP literal or a host name (RFC 1123 §2.1 labels, '_' accepted); the
// port a number from 1 to 65535; nothing else (no path other than "/", no
// query, fragment or user). Config validation calls it too, so its
// messages are written for users.
func ParseAddress(addr string) (*url.URL, error) {
	if addr == "" {
		return nil, fmt.Errorf("empty address")
	}
	raw := addr
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%q is not host:port or scheme://host[:port]", addr)
	}
	switch u.Scheme {
	case SchemeHTTP, SchemeHTTPS, SchemeH2C:
	default:
		return nil, fmt.Errorf("%q: scheme %q is not allowed (allowed: %s, %s, %s)", addr, u.Scheme, SchemeHTTP, SchemeHTTPS, SchemeH2C)
	}
	if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || (u.Path != "" && u.Path != "/") || u.Opaque != "" {
		return nil, fmt.Errorf("%q: only scheme://host[:port] is allowed (no path, query or user)", addr)
	}
	host := u.Hostname()
	if u.Host == "" || host == "" {
		return nil, fmt.Errorf("%q: no host", addr)
	}
	if _, err := netip.ParseAddr(host); err != nil {
		if strings.HasPrefix(u.Host, "[") {
			return nil, fmt.Errorf("%q: %q is not an IPv6 address", addr, host)
		}
		if err := hostname.Check(host); err != nil {
			return nil, fmt.Errorf("%q: host: %w", addr, err)
		}
	}
	port := u.Port()
	switch {
	case port == "" && strings.HasSuffix(u.Host, ":"):
		return nil, fmt.Errorf("%q: empty port", addr)
	case port == "":
		port = "80"
		if u.Scheme == SchemeHTTPS {
			port = "443"
		}
		u.Host = net.JoinHostPort(host, port)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return nil, fmt.Errorf("%q: port %q is not a number from 1 to 65535", addr, port)
	}
	u.Path = ""
	return u, nil
}

// Canonical returns the normalized "scheme://host:port" of a URL from
// ParseAddress: host names lower case, IP addresses in their canonical
// form. Two addresses with the same canonical form are the same target.
func Canonical(u *url.URL) string {
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		host = ip.String()
	}
	return u.Scheme + "://" + net.JoinHostPort(strings.ToLower(host), u.Port())
}

// State is the runtime state of one target address. All fields are atomic:
// it is read on every request by every goroutine.
type State struct {
	inFlight  atomic.Int64
	downUntil atomic.Int64 // unix nanoseconds; zero or past means up
	requests  atomic.Uint64
	failures  atomic.Uint64
	health    healthState
}

// Target is one backend of a pool: immutable config plus a pointer to its
// shared runtime state.
type Target struct {
	// Address as configured; the key of its State.
	Address string
	// URL with scheme (http, https or h2c) and host:port.
	URL *url.URL
	// Weight, at least 1.
	Weight int
	// MaxConns caps the requests in flight (TryAcquire); zero means
	// unlimited.
	MaxConns int64

	state *State
}

// InFlight is the number of requests currently sent to the target.
func (t *Target) InFlight() int64 { return t.state.inFlight.Load() }

// Acquire counts a request as in flight until the returned func is called,
// whatever MaxConns says.
func (t *Target) Acquire() (release func()) {
	t.state.inFlight.Add(1)
	return t.acquired()
}

// HasRoom reports whether the target is below MaxConns now. Another
// request may take the last slot before TryAcquire: it is a hint for
// selection, TryAcquire decides.
func (t *Target) HasRoom() bool {
	return t.MaxConns <= 0 || t.state.inFlight.Load() < t.MaxConns
}

// TryAcquire is Acquire when the target is below MaxConns; otherwise it
// counts nothing and reports false. The cap holds for the address across
// pools and reloads, since the in-flight count lives in its State.
func (t *Target) TryAcquire() (release func(), ok bool) {
	if t.MaxConns <= 0 {
		return t.Acquire(), true
	}
	for {
		n := t.state.inFlight.Load()
		if n >= t.MaxConns {
			return nil, false
		}
		if t.state.inFlight.CompareAndSwap(n, n+1) {
			return t.acquired(), true
		}
	}
}

// AcquireSlot is Acquire without a release func, for callers that keep
// the target and call ReleaseSlot exactly once (the HTTP/1.1 fast path,
// which must not allocate per request).
func (t *Target) AcquireSlot() {
	t.state.inFlight.Add(1)
	t.state.requests.Add(1)
}

// ReleaseSlot ends a request counted by AcquireSlot.
func (t *Target) ReleaseSlot() { t.state.inFlight.Add(-1) }

func (t *Target) acquired() (release func()) {
	t.state.requests.Add(1)
	var once sync.Once
	return func() { once.Do(func() { t.state.inFlight.Add(-1) }) }
}

// Available reports whether the target may be picked at now: its active
// checks pass (or it has none) and it is not ejected.
func (t *Target) Available(now time.Time) bool {
	return !t.state.health.down.Load() && now.UnixNano() >= t.state.downUntil.Load()
}

// MarkFailed ejects the target until now+d after a failure and counts the
// failure. Only package health, which owns the verdicts, calls it.
func (t *Target) MarkFailed(now time.Time, d time.Duration) {
	t.state.failures.Add(1)
	t.state.downUntil.Store(now.Add(d).UnixNano())
}

// MarkUp clears an ejection. Only package health calls it.
func (t *Target) MarkUp() { t.state.downUntil.Store(0) }

// Snapshot is a point-in-time view of a target for the admin API.
type Snapshot struct {
	Address   string    `json:"address"`
	Weight    int       `json:"weight"`
	Healthy   bool      `json:"healthy"`
	DownUntil time.Time `json:"down_until,omitzero"`
	InFlight  int64     `json:"in_flight"`
	Requests  uint64    `json:"requests"`
	Failures  uint64    `json:"failures"`
	// Health is the latest verdict of package health.
	Health HealthReport `json:"health"`
}

// Snapshot reads the target's state at now.
func (t *Target) Snapshot(now time.Time) Snapshot {
	s := Snapshot{
		Address:  t.Address,
		Weight:   t.Weight,
		Healthy:  t.Available(now),
		InFlight: t.state.inFlight.Load(),
		Requests: t.state.requests.Load(),
		Failures: t.state.failures.Load(),
		Health:   t.HealthReport(),
	}
	if s.Health.State == "" {
		s.Health.State = "healthy"
		if !s.Healthy {
			s.Health.State = "ejected"
		}
	}
	if !s.Healthy && now.UnixNano() < t.state.downUntil.Load() {
		s.DownUntil = time.Unix(0, t.state.downUntil.Load())
	}
	return s
}

// TargetSpec describes one target to build: its configured address (see
// ParseAddress), weight (zero or less means 1) and cap.
type TargetSpec struct {
	// Address as configured; empty when SRV is set.
	Address string
	// SRV names a DNS SRV record ("[scheme://]_service._proto.name",
	// see ParseSRV) whose records are the targets: their port, priority
	// and weight come from DNS. Empty means Address is the target.
	SRV    string
	Weight int
	// MaxConns caps the target's requests in flight; zero or less
	// means unlimited.
	MaxConns int
}

// PoolSpec describes a pool to build.
type PoolSpec struct {
	// Strategy names how the pool is balanced, as configured; package
	// balance interprets it, the pool only carries it for reports (the
	// admin API). Empty means the default strategy.
	Strategy string
	// Targets of the pool.
	Targets []TargetSpec
	// ResolveEvery is how often targets given by host name or SRV
	// record are looked up again (resolve.go). Zero means 30s.
	ResolveEvery time.Duration
	// Resolver is the "host:port" of the DNS server asked (UDP, TCP for
	// truncated answers). Empty means the system resolver.
	Resolver string
	// TLSServerName is the upstream's tls.server_name. An https:// target
	// given by host name is resolved to addresses only when it is set,
	// since otherwise the host name is what its certificate is verified
	// against: without it the target is dialed by name, as before.
	TLSServerName string
}

// Pool is a named list of targets. The list is immutable for a pool of IP
// literals; a pool with targets given by host name or SRV record swaps in
// a new list when DNS changes (resolve.go). A list, once returned by
// Targets, never changes.
type Pool struct {
	Name string
	// Strategy is PoolSpec.Strategy, for reports.
	Strategy string

	targets atomic.Pointer[[]*Target]
	dns     *poolDNS // nil when no target needs DNS
}

// Targets returns the pool's current targets. The slice is shared and
// must not be modified; a later call may return a different one when
// DNS changed (see Resolving).
func (p *Pool) Targets() []*Target {
	if ts := p.targets.Load(); ts != nil {
		return *ts
	}
	return nil
}

// setTargets publishes ts as the pool's targets.
func (p *Pool) setTargets(ts []*Target) { p.targets.Store(&ts) }

// NewStaticPool returns a pool of fixed targets, for callers (tests,
// package balance's benchmarks) that build targets by hand.
func NewStaticPool(name string, targets []*Target) *Pool {
	p := &Pool{Name: name}
	p.setTargets(targets)
	return p
}

// Healthy counts the targets available at now.
func (p *Pool) Healthy(now time.Time) int {
	n := 0
	for _, t := range p.Targets() {
		if t.Available(now) {
			n++
		}
	}
	return n
}

// Registry keeps the runtime state of every target address, so that a
// reload that keeps an address keeps its in-flight count and ejection.
// The zero value is not usable; call NewRegistry.
type Registry struct {
	mu     sync.Mutex
	states map[string]*State
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{states: make(map[string]*State)}
}

// NewPool builds a pool from spec, reusing the state of known addresses.
// Targets given by host name (except https:// without TLSServerName) and
// SRV records make the pool Resolving: until its first Resolve, a host
// name target is dialed by name and an SRV record has no target.
func (r *Registry) NewPool(name string, spec PoolSpec) (*Pool, error) {
	p := &Pool{Name: name, Strategy: spec.Strategy}
	var entries []*dnsEntry
	var targets []*Target
	for i, tc := range spec.Targets {
		e, err := r.buildEntry(tc, spec.TLSServerName)
		if err != nil {
			return nil, fmt.Errorf("upstream %q target %d: %w", name, i, err)
		}
		entries = append(entries, e)
		targets = append(targets, e.current...)
		if e.kind != entryStatic && p.dns == nil {
			p.dns = &poolDNS{}
		}
	}
	if p.dns != nil {
		if spec.Resolver != "" {
			addr, err := ParseResolver(spec.Resolver)
			if err != nil {
				return nil, fmt.Errorf("upstream %q resolver: %w", name, err)
			}
			spec.Resolver = addr
		}
		p.dns.init(r, spec, entries)
	}
	p.setTargets(targets)
	return p, nil
}

// newTarget builds the target for u, with the state of its address.
func (r *Registry) newTarget(address string, u *url.URL, weight, maxConns int) *Target {
	if weight <= 0 {
		weight = 1
	}
	return &Target{Address: address, URL: u, Weight: weight, MaxConns: int64(max(maxConns, 0)), state: r.state(u.String())}
}

func (r *Registry) state(key string) *State {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.states[key]
	if !ok {
		s = &State{}
		r.states[key] = s
	}
	return s
}

// Retain drops the state of every address not in keep (the URLs of the
// current targets of the current pools), so that removed targets do not
// leak. Addresses that DNS stopped returning are dropped at the next
// reload: until then their state is kept in case they come back.
func (r *Registry) Retain(pools []*Pool) {
	keep := make(map[string]bool)
	for _, p := range pools {
		for _, t := range p.Targets() {
			keep[t.URL.String()] = true
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.states {
		if !keep[k] {
			delete(r.states, k)
		}
	}
}
