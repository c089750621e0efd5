package server

import (
	"context"
	"log/slog"
	"time"
)

// freshGrace bounds how long drain waits for accepted connections that
// have not sent a request yet.
const freshGrace = 5 * time.Second

// freshPoll is how often drain looks at the connections still waiting.
const freshPoll = 5 * time.Millisecond

// drainer prepares a graceful shutdown so that no accepted request goes
// unanswered. http.Server.Shutdown alone drops a request whose connection
// was accepted but whose request line was still being read when it
// started: conn.serve returns without a response once it sees the server
// shutting down (golang/go#75591). That is exactly what happens to
// connections the kernel handed over just before a restart or upgrade.
// So, for every protocol alike: stop accepting (the socket stays open
// where systemd, the fd store or the new process holds it, and its backlog
// goes to them), wait until every accept loop has seen that, quiesce the
// protocol servers (HTTP: keep-alive off, RFC 9112 §9.6), then wait until
// each accepted connection has reached a handler or closed.
type drainer struct {
	log *slog.Logger
	// closeListeners stops accepting.
	closeListeners func()
	// accepted is closed once every accept loop has returned; only then
	// is every accepted connection registered with the tracker.
	accepted <-chan struct{}
	servers  []drainable
	// fresh counts accepted connections that have not reached a handler.
	fresh func() int
	grace time.Duration
}

func (d *drainer) drain(ctx context.Context) {
	d.closeListeners()
	select {
	case <-d.accepted:
	case <-ctx.Done():
	}
	for _, s := range d.servers {
		s.Quiesce()
	}
	waitFresh(ctx, d.fresh, d.grace, d.log)
}

// waitFresh waits until fresh reports zero, ctx ends or grace passes.
func waitFresh(ctx context.Context, fresh func() int, grace time.Duration, log *slog.Logger) {
	if grace <= 0 {
		grace = freshGrace
	}
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	tick := time.NewTicker(freshPoll)
	defer tick.Stop()
	for fresh() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			log.Info("drain: connections that sent no request yet are closed", "count", fresh())
			return
		case <-tick.C:
		}
	}
}
