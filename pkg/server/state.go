package server

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/state"
	"github.com/handoff-proxy/handoff/pkg/state/memory"
	stateredis "github.com/handoff-proxy/handoff/pkg/state/redis"
)

// sharedState is what this process shares with the others of its
// deployment: one state store, on Redis when state.redis is configured
// (one client per process, which the cache and rate limits use too) and in
// memory otherwise. state is static config: it lives as long as the
// process.
type sharedState struct {
	store  state.Store
	client goredis.UniversalClient // nil without Redis
}

func newSharedState(cfg *config.Config, log *slog.Logger, now func() time.Time) (*sharedState, error) {
	o := cfg.State.Redis.RedisOptions()
	if o == nil {
		return &sharedState{store: memory.New(memory.Options{Logger: log, Now: now})}, nil
	}
	o.Logger = log
	client, err := stateredis.NewClient(*o)
	if err != nil {
		return nil, fmt.Errorf("state.redis: %w", err)
	}
	return &sharedState{store: stateredis.NewStore(client, *o), client: client}, nil
}

// Start starts the store's background work (subscriptions, resync,
// reconnects). It does not wait for Redis: a process with Redis down
// serves on local knowledge.
func (s *sharedState) Start(ctx context.Context) error { return s.store.Start(ctx) }

// Close stops the store, then closes the client it uses.
func (s *sharedState) Close() {
	_ = s.store.Close()
	if s.client != nil {
		_ = s.client.Close()
	}
}
