package server

import (
	"os"

	"github.com/handoff-proxy/handoff/pkg/admin"
	"github.com/handoff-proxy/handoff/pkg/state"
)

// Systemd is what the process's caller knows about systemd and tells the
// dashboard. The zero value means not under systemd.
type Systemd struct {
	// Passed names the listeners passed in (by systemd's socket
	// activation, its fd store or an upgrading parent) rather than bound
	// by this process. Nil means none.
	Passed map[string]bool
	// Notify reports whether NOTIFY_SOCKET is set.
	Notify bool
	// WatchdogSeconds is the watchdog interval (WATCHDOG_USEC); zero
	// means none.
	WatchdogSeconds float64
	// FDStored reports how many listener fds this process keeps in
	// systemd's fd store. Nil means none.
	FDStored func() int
}

// dashboardOptions fills the admin.Options fields the dashboard, `handoff
// status` and /api/v1/overview read: facts only this package knows.
func (s *Server) dashboardOptions(o admin.Options) admin.Options {
	o.Process = s.processInfo
	o.Listeners = s.listenerInfos
	o.Cache = s.cacheInfo
	o.State = s.stateInfo
	o.Fleet = s.fleetInfo
	o.RateLimits = s.rateLimitInfos
	o.Stats = s.metrics.LiveSeries
	return o
}

func (s *Server) stateInfo() admin.StateInfo {
	backend := "memory"
	if s.shared.client != nil {
		backend = "redis"
	}
	v := s.fleet.view()
	info := admin.StateInfo{Backend: backend, Up: s.shared.store.Up(), LastBeat: v.at,
		LatencyMS: float64(v.rtt.Microseconds()) / 1000}
	if v.err != nil {
		info.Error = v.err.Error()
	}
	return info
}

// member is this process's heartbeat.
func (s *Server) member() state.Member {
	m := state.Member{ID: s.holder, Version: s.version(), Started: s.started, Beat: s.now(),
		Generation: s.reloads.Load(), Upgrades: s.opts.Upgrades}
	for _, l := range s.listenerInfos() {
		m.Listeners = append(m.Listeners, l.Name+" "+l.Address)
	}
	return m
}

func (s *Server) fleetInfo() []admin.MemberInfo {
	v := s.fleet.view()
	out := make([]admin.MemberInfo, 0, len(v.members))
	for _, m := range v.members {
		out = append(out, admin.MemberInfo{ID: m.ID, Version: m.Version, Started: m.Started, LastBeat: m.Beat,
			Listeners: m.Listeners, Generation: m.Generation, Upgrades: m.Upgrades, Self: m.ID == s.holder})
	}
	return out
}

func (s *Server) version() string {
	if s.opts.Version == "" {
		return "dev"
	}
	return s.opts.Version
}

func (s *Server) processInfo() admin.ProcessInfo {
	sd := s.opts.Systemd
	p := admin.ProcessInfo{
		Version:      s.version(),
		PID:          os.Getpid(),
		Started:      s.started,
		Holder:       s.holder,
		Generation:   s.reloads.Load(),
		OpenConns:    s.tracker.open(),
		Upgrades:     s.opts.Upgrades,
		UpgradesDone: s.upgradesDone.Load(),
		Systemd:      admin.SystemdInfo{Notify: sd.Notify, WatchdogSeconds: sd.WatchdogSeconds},
	}
	for _, passed := range sd.Passed {
		p.Systemd.SocketActivated = p.Systemd.SocketActivated || passed
	}
	if sd.FDStored != nil {
		p.Systemd.FDStored = sd.FDStored()
	}
	if r := s.lastReload.Load(); r != nil {
		p.LastReload = &admin.ReloadInfo{At: r.At, Error: r.Error}
	}
	return p
}

// listenerInfos lists the configured listeners with the address they are
// bound to (a systemd socket has no address in the config).
func (s *Server) listenerInfos() []admin.ListenerInfo {
	cfg := s.config()
	out := make([]admin.ListenerInfo, 0, len(cfg.Listeners))
	for _, l := range cfg.Listeners {
		addr := l.Address
		if ln, ok := s.opts.Listeners[l.Name]; ok && ln != nil {
			addr = ln.Addr().String()
		}
		src := admin.SourceSelf
		if s.opts.Systemd.Passed[l.Name] {
			src = admin.SourceSystemd
		}
		out = append(out, admin.ListenerInfo{Name: l.Name, Address: addr, Protocol: l.Protocol, Source: src})
	}
	return out
}

// cacheInfo reports the cache when a route of the current config caches.
func (s *Server) cacheInfo() (admin.CacheInfo, bool) {
	caching := false
	for _, r := range s.config().Routes {
		if r.Cache != nil && r.Cache.Enabled {
			caching = true
		}
	}
	if !caching || s.cache == nil {
		return admin.CacheInfo{}, false
	}
	st := s.cache.Stats()
	return admin.CacheInfo{
		Shared: s.cache.shared, MaxMemory: s.cache.maxMemory,
		Entries: st.Entries, Bytes: st.Bytes, Hits: st.Hits, Misses: st.Misses,
		StaleServed: st.StaleServed, Coalesced: st.Coalesced,
	}, true
}
