package admin

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/metrics"
)

// PathOverview and PathStats are served by New; "/" is the dashboard.
const (
	PathOverview = "/api/v1/overview"
	PathStats    = "/api/v1/stats"
)

// Overview is the body of PathOverview and what the dashboard and
// `handoff status` show: the whole picture of one process at one time.
type Overview struct {
	Process   ProcessInfo      `json:"process"`
	Listeners []ListenerInfo   `json:"listeners"`
	Routes    []RouteInfo      `json:"routes"`
	Upstreams []UpstreamStatus `json:"upstreams"`
	// Cache is nil when no route caches.
	Cache *CacheInfo `json:"cache,omitempty"`
	// State is the shared state backend.
	State StateInfo `json:"state"`
	// Traffic sums the last 15 minutes (metrics.Live).
	Traffic TrafficInfo `json:"traffic"`
	// Fleet lists the processes sharing the state store, by ID.
	Fleet []MemberInfo `json:"fleet"`
	// RateLimits lists the keys most denied recently, most first.
	RateLimits []RateLimitInfo `json:"rate_limits"`
}

// ProcessInfo describes the running process.
type ProcessInfo struct {
	Version string    `json:"version"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started,omitzero"`
	// Holder names this process in shared health leases (host:pid): a
	// target's health.checked_by equal to it is probed here.
	Holder string `json:"holder,omitempty"`
	// Generation counts reloads since start.
	Generation uint64 `json:"generation"`
	// LastReload is the last reload's outcome; nil before the first.
	LastReload *ReloadInfo `json:"last_reload,omitempty"`
	// OpenConns counts client connections open on the traffic listeners.
	OpenConns int `json:"open_conns"`
	// Upgrades counts the upgrades that led to this process; zero means
	// started by systemd or a person.
	Upgrades int `json:"upgrades"`
	// UpgradesDone counts the upgrades this process handed over to.
	UpgradesDone uint64      `json:"upgrades_done"`
	Systemd      SystemdInfo `json:"systemd"`
}

// ReloadInfo is the outcome of a reload.
type ReloadInfo struct {
	At time.Time `json:"at"`
	// Error is why it failed; empty means it succeeded.
	Error string `json:"error,omitempty"`
}

// ListenerInfo is one traffic listener.
type ListenerInfo struct {
	Name     string `json:"name"`
	Address  string `json:"address"`
	Protocol string `json:"protocol"`
	// Source is SourceSystemd (passed in by systemd, its fd store or an
	// upgrading parent) or SourceSelf (bound by this process).
	Source string `json:"source,omitempty"`
}

// RouteInfo is one route, in match order.
type RouteInfo struct {
	Name     string `json:"name,omitempty"`
	Match    string `json:"match"`
	Upstream string `json:"upstream"`
	Cached   bool   `json:"cached"`
}

// CacheInfo is the response cache's counters since start.
type CacheInfo struct {
	Shared      bool  `json:"shared"`
	MaxMemory   int64 `json:"max_memory"`
	Entries     int64 `json:"entries"`
	Bytes       int64 `json:"bytes"`
	Hits        int64 `json:"hits"`
	Misses      int64 `json:"misses"`
	StaleServed int64 `json:"stale_served"`
	Coalesced   int64 `json:"coalesced"`
}

// HitRatio is hits over lookups, 0 without lookups.
func (c CacheInfo) HitRatio() float64 {
	if n := c.Hits + c.Misses; n > 0 {
		return float64(c.Hits) / float64(n)
	}
	return 0
}

// StateInfo describes the shared state backend.
type StateInfo struct {
	// Backend is "redis" or "memory" (this process alone).
	Backend string `json:"backend"`
	Up      bool   `json:"up"`
	// LatencyMS is the round trip of the last heartbeat, in milliseconds.
	LatencyMS float64 `json:"latency_ms"`
	// LastBeat is when the last heartbeat was sent; zero means none yet.
	LastBeat time.Time `json:"last_heartbeat,omitzero"`
	// Error is why the last heartbeat failed; empty means it succeeded.
	Error string `json:"error,omitempty"`
}

// TrafficInfo sums the live series.
type TrafficInfo struct {
	Seconds  int    `json:"seconds"`
	Requests uint64 `json:"requests"`
	Errors   uint64 `json:"errors"`
}

// overview gathers the picture from the injected funcs.
func (h *handler) overview() Overview {
	now := h.o.Now()
	ov := Overview{Listeners: []ListenerInfo{}, Routes: []RouteInfo{}, Upstreams: h.upstreamList(now),
		Fleet: []MemberInfo{}, RateLimits: []RateLimitInfo{}}
	if h.o.Fleet != nil {
		ov.Fleet = h.o.Fleet()
	}
	if h.o.RateLimits != nil {
		ov.RateLimits = h.o.RateLimits()
	}
	if h.o.Process != nil {
		ov.Process = h.o.Process()
	}
	if h.o.Listeners != nil {
		ov.Listeners = h.o.Listeners()
	}
	if h.o.Config != nil {
		if c := h.o.Config(); c != nil {
			ov.Routes = routeInfos(c.Routes)
		}
	}
	if h.o.Cache != nil {
		if c, ok := h.o.Cache(); ok {
			ov.Cache = &c
		}
	}
	ov.State = StateInfo{Backend: "memory", Up: true}
	if h.o.State != nil {
		ov.State = h.o.State()
	}
	if h.o.Stats != nil {
		s := h.o.Stats(0)
		ov.Traffic.Seconds = len(s.Requests)
		ov.Traffic.Requests, ov.Traffic.Errors = s.Totals()
	}
	return ov
}

func (h *handler) upstreamList(now time.Time) []UpstreamStatus {
	out := []UpstreamStatus{}
	if h.o.Upstreams != nil {
		for _, p := range h.o.Upstreams() {
			if p != nil {
				out = append(out, status(p, now))
			}
		}
	}
	slices.SortStableFunc(out, func(a, b UpstreamStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func routeInfos(routes []config.Route) []RouteInfo {
	out := make([]RouteInfo, 0, len(routes))
	for _, r := range routes {
		out = append(out, RouteInfo{
			Name:     r.Name,
			Match:    describeMatch(r.Match),
			Upstream: r.Upstream,
			Cached:   r.Cache != nil && r.Cache.Enabled,
		})
	}
	return out
}

// describeMatch writes a match the way a person reads it; an empty match
// is the default route.
func describeMatch(m config.Match) string {
	var parts []string
	if m.Host != "" {
		parts = append(parts, "host "+m.Host)
	}
	if m.PathPrefix != "" {
		parts = append(parts, "path "+m.PathPrefix+"*")
	}
	if len(m.Methods) > 0 {
		parts = append(parts, strings.Join(m.Methods, "|"))
	}
	keys := make([]string, 0, len(m.Headers))
	for k := range m.Headers {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		parts = append(parts, k+": "+m.Headers[k])
	}
	if len(parts) == 0 {
		return "everything else"
	}
	return strings.Join(parts, ", ")
}

// FormatAge writes d the short way people read durations on a status
// page: "42s", "5m3s", "2h5m", "3d4h".
func FormatAge(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

// FormatBytes writes n in binary units: "512 B", "1.5 KiB", "64.0 MiB".
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	exp := int(math.Log(float64(n)) / math.Log(unit))
	exp = min(exp, 4)
	return fmt.Sprintf("%.1f %ciB", float64(n)/math.Pow(unit, float64(exp)), "KMGT"[exp-1])
}

// statsSeries is PathStats's answer.
func (h *handler) stats(n int) metrics.LiveSeries {
	if h.o.Stats == nil {
		return metrics.LiveSeries{Step: 1, Requests: []uint64{}, Errors: []uint64{}, P50: []float64{}, P99: []float64{}}
	}
	return h.o.Stats(n)
}
