package server

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/handoff-proxy/handoff/pkg/state"
)

// Heartbeat timing: a member is listed while it beat within
// heartbeatTTL, three intervals, so one lost beat does not drop it.
const (
	heartbeatInterval = 5 * time.Second
	heartbeatTTL      = 3 * heartbeatInterval
)

// heartbeat publishes this process's presence in the shared state store
// every interval and keeps the last list of members, so the dashboard
// never waits on Redis. It also times the heartbeat's round trip: the
// Redis latency the page shows. Start it once; Close stops it.
type heartbeat struct {
	store    state.Fleet
	self     func() state.Member
	interval time.Duration
	ttl      time.Duration
	now      func() time.Time
	log      *slog.Logger

	mu      sync.Mutex
	members []state.Member
	rtt     time.Duration // of the last successful heartbeat
	at      time.Time     // when the last heartbeat was attempted
	err     error         // of the last heartbeat or members read

	cancel context.CancelFunc
	done   chan struct{}
}

// fleetView is the heartbeat's last findings.
type fleetView struct {
	members []state.Member // sorted by ID
	rtt     time.Duration
	at      time.Time
	err     error
}

// Start sends the first heartbeat at once, then one every interval, until
// ctx ends or Close is called.
func (h *heartbeat) Start(ctx context.Context) {
	ctx, h.cancel = context.WithCancel(ctx)
	h.done = make(chan struct{})
	go func() {
		defer close(h.done)
		t := time.NewTicker(h.interval)
		defer t.Stop()
		for {
			h.beat(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Close stops the heartbeats and waits for the goroutine. The last
// heartbeat expires by its ttl: a process that exits drops out of the
// fleet within heartbeatTTL.
func (h *heartbeat) Close() {
	if h.cancel != nil {
		h.cancel()
		<-h.done
	}
}

func (h *heartbeat) beat(ctx context.Context) {
	m := h.self()
	start := time.Now()
	err := h.store.Heartbeat(ctx, m, h.ttl)
	rtt := time.Since(start)
	var members []state.Member
	if err == nil {
		members, err = h.store.Members(ctx)
	}
	if ctx.Err() != nil {
		return
	}
	slices.SortFunc(members, func(a, b state.Member) int { return strings.Compare(a.ID, b.ID) })
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil && h.err == nil {
		h.log.Warn("heartbeat failed; the fleet shown is the last one seen", "error", err)
	}
	h.at, h.err = h.now(), err
	if err == nil {
		h.members, h.rtt = members, rtt
	}
}

// view returns the last findings.
func (h *heartbeat) view() fleetView {
	h.mu.Lock()
	defer h.mu.Unlock()
	return fleetView{members: slices.Clone(h.members), rtt: h.rtt, at: h.at, err: h.err}
}
