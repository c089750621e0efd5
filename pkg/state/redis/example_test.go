package redis_test

import (
	"context"
	"log/slog"
	"time"

	"github.com/handoff-proxy/handoff/pkg/state"
	"github.com/handoff-proxy/handoff/pkg/state/redis"
)

// How a process wires the shared state: one client, one store, the
// current verdicts loaded before READY=1, then changes from the others.
func Example() {
	ctx := context.Background()
	o := redis.Options{URL: "redis://127.0.0.1:6379/0", Prefix: "handoff", Logger: slog.Default()}
	if err := o.Validate(); err != nil { // config validation calls this
		panic(err)
	}
	client, err := redis.NewClient(o) // shared with the cache and rate limits
	if err != nil {
		panic(err)
	}
	defer client.Close()
	store := redis.NewStore(client, o)
	if err := store.Start(ctx); err != nil {
		panic(err)
	}
	defer store.Close()

	stop := store.Watch(func(v state.Verdict) { /* update the local view */ })
	defer stop()
	if vs, err := store.Verdicts(ctx); err == nil { // before READY=1
		_ = vs
	} // on error: start on local knowledge; the watch resyncs later

	// The prober of upstream "web": only the lease holder probes.
	if held, _ := store.TryLease(ctx, "probe/web", "host-a/1234", 10*time.Second); held {
		_ = store.PutVerdict(ctx, state.Verdict{Upstream: "web", Target: "10.0.0.1:80", Healthy: true, Holder: "host-a/1234"}, 0)
	}
}
