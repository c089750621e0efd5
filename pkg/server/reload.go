package server

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/handoff-proxy/handoff/pkg/config"
)

// ReloadResult says how a reload went.
type ReloadResult struct {
	// Generation counts successful and failed reloads since start.
	Generation uint64 `json:"generation"`
	// Error is why the reload failed; empty on success.
	Error string `json:"error,omitempty"`
	// StaticChanges lists static keys that changed and need a restart.
	StaticChanges []string `json:"static_changes,omitempty"`
	// At is when the reload finished.
	At time.Time `json:"at"`
}

// Reload asks the running server to reload its config and waits for the
// outcome. It is safe from any goroutine (a signal handler, the admin API).
func (s *Server) Reload(ctx context.Context) (ReloadResult, error) {
	reply := make(chan ReloadResult, 1)
	select {
	case s.reloadCh <- reply:
	case <-ctx.Done():
		return ReloadResult{}, ctx.Err()
	}
	select {
	case r := <-reply:
		return r, nil
	case <-ctx.Done():
		return ReloadResult{}, ctx.Err()
	}
}

// LastReload returns the outcome of the most recent reload, if any.
func (s *Server) LastReload() (ReloadResult, bool) {
	r := s.lastReload.Load()
	if r == nil {
		return ReloadResult{Generation: s.reloads.Load()}, false
	}
	return *r, true
}

// reload runs on the Run goroutine only (Reload hands it over through
// reloadCh), so reloads are serialised without a lock.
func (s *Server) reload() ReloadResult {
	// sd_notify(3): RELOADING=1 with MONOTONIC_USEC, and READY=1 must
	// follow even when the reload fails, or the unit hangs in "reloading".
	s.notify(func(n Notifier) error { return n.Reloading() })
	if s.opts.ReopenLogs != nil {
		if err := s.opts.ReopenLogs(); err != nil {
			s.log.Error("reopen the access log, still writing to the old file", "error", err)
		}
	}
	res, status := s.reloadConfig()
	res.At = s.now()
	s.lastReload.Store(&res)
	s.notifyStatus(status, "READY=1")
	return res
}

// reloadConfig loads and applies the config; it returns the result (At
// unset) and the STATUS= text.
func (s *Server) reloadConfig() (ReloadResult, string) {
	res := ReloadResult{Generation: s.reloads.Add(1)}
	if s.opts.Load == nil {
		res.Error = "reload not supported"
		return res, "reload failed: not supported"
	}
	cfg, err := s.opts.Load()
	if err == nil {
		err = s.apply(cfg, &res)
	}
	if err != nil {
		res.Error = err.Error()
		s.metrics.Reload(false)
		s.log.Error("reload failed, keeping the running config", "error", err)
		return res, "reload failed, old config serving: " + firstLine(err.Error())
	}
	s.metrics.Reload(true)
	s.log.Info("config reloaded", "routes", len(cfg.Routes), "upstreams", len(cfg.Upstreams), "static_changes", res.StaticChanges)
	if len(res.StaticChanges) > 0 {
		return res, "reloaded; restart needed for: " + strings.Join(res.StaticChanges, ", ")
	}
	return res, "reloaded"
}

func (s *Server) apply(cfg *config.Config, res *ReloadResult) error {
	old := s.config()
	// Certificates of existing TLS listeners are reloaded in place; other
	// listener changes need new sockets and are reported.
	newCerts := make(map[string]*certificates)
	for _, l := range cfg.Listeners {
		if l.Protocol != config.ProtocolHTTPS || s.certs[l.Name] == nil {
			continue
		}
		c, err := parseCerts(l.TLS)
		if err != nil {
			return fmt.Errorf("listener %q: %w", l.Name, err)
		}
		newCerts[l.Name] = c
	}
	g, err := newGeneration(cfg, s.buildDeps())
	if err != nil {
		return err
	}
	if err := g.Start(s.baseCtx); err != nil {
		g.Close()
		return fmt.Errorf("start: %w", err)
	}
	if err := s.acme.update(s, cfg); err != nil { // acme.go
		g.Close()
		return fmt.Errorf("acme: %w", err)
	}
	for name, c := range newCerts {
		s.certs[name].set(c)
	}
	s.gens.swap(g)
	s.registry.Retain(g.pools)
	res.StaticChanges = config.StaticChanges(old, cfg)
	if len(res.StaticChanges) > 0 {
		s.log.Warn("static config changed; it takes effect on restart or upgrade", "keys", res.StaticChanges)
	}
	return nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}
