package server

import (
	"context"
	"fmt"
)

func (s *Server) notify(f func(Notifier) error) {
	if s.opts.Notifier == nil {
		return
	}
	if err := f(s.opts.Notifier); err != nil {
		s.log.Warn("sd_notify failed", "error", err)
	}
}

// notifyStatus sends the state lines (READY=1, STOPPING=1) together with
// STATUS= and a one-line summary in one datagram, so that systemctl status
// never shows a state with a stale reason (sd_notify(3)).
func (s *Server) notifyStatus(state string, lines ...string) {
	if s.opts.Notifier == nil {
		return
	}
	cfg := s.config()
	healthy, total := 0, 0
	now := s.now()
	for _, p := range s.pools() {
		healthy += p.Healthy(now)
		total += len(p.Targets())
	}
	// STATUS= is one line: a multi-line reason is cut at the first.
	msg := fmt.Sprintf("STATUS=%s: %d listeners, %d routes, %d upstreams, targets %d/%d healthy",
		firstLine(state), len(cfg.Listeners), len(cfg.Routes), len(cfg.Upstreams), healthy, total)
	s.notify(func(n Notifier) error { return n.Send(append(lines, msg)...) })
}

// Healthy reports whether the server's main loop answers before ctx ends:
// the watchdog pings systemd only while it does (sd_watchdog_enabled(3)), so
// a wedged loop gets the service restarted.
func (s *Server) Healthy(ctx context.Context) bool {
	reply := make(chan struct{})
	select {
	case s.pingCh <- reply:
	case <-ctx.Done():
		return false
	}
	select {
	case <-reply:
		return true
	case <-ctx.Done():
		return false
	}
}
