package server

import (
	"os"

	"github.com/handoff-proxy/handoff/pkg/admin"
)

// dashboardOptions fills the admin.Options fields the dashboard, `handoff
// status` and /api/v1/overview read: facts only this package knows.
func (s *Server) dashboardOptions(o admin.Options) admin.Options {
	o.Process = s.processInfo
	o.Listeners = s.listenerInfos
	o.Cache = s.cacheInfo
	o.State = func() admin.StateInfo {
		backend := "memory"
		if s.shared.client != nil {
			backend = "redis"
		}
		return admin.StateInfo{Backend: backend, Up: s.shared.store.Up()}
	}
	o.Stats = s.metrics.LiveSeries
	return o
}

func (s *Server) processInfo() admin.ProcessInfo {
	p := admin.ProcessInfo{
		Version:    s.opts.Version,
		PID:        os.Getpid(),
		Started:    s.started,
		Holder:     s.holder,
		Generation: s.reloads.Load(),
		OpenConns:  s.tracker.open(),
	}
	if p.Version == "" {
		p.Version = "dev"
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
		out = append(out, admin.ListenerInfo{Name: l.Name, Address: addr, Protocol: l.Protocol})
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
