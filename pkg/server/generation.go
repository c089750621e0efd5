package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/handoff-proxy/handoff/pkg/accesslog"
	"github.com/handoff-proxy/handoff/pkg/balance"
	"github.com/handoff-proxy/handoff/pkg/clientip"
	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/health"
	"github.com/handoff-proxy/handoff/pkg/metrics"
	"github.com/handoff-proxy/handoff/pkg/proxy"
	"github.com/handoff-proxy/handoff/pkg/route"
	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// generation is everything built from one config: the handler chain
// (access log, metrics, routes, forwarders), the pools and selectors, and
// the background work they own (health probers, shared-state
// subscriptions, cache refreshers as those features land). A reload builds
// and starts a new generation, swaps it in, and retires the old one; the
// old one is closed once the last request that started on it is done, so
// in-flight requests finish on the config they started with (Caddy's
// Provision/Cleanup, traefik's safe pools).
type generation struct {
	cfg     *config.Config
	log     *slog.Logger
	handler http.Handler
	pools   []*upstream.Pool
	// checkers judge the targets' health, one per upstream; they own
	// the probes and shared-verdict subscriptions.
	checkers []*health.Checker
	cache    *genCache             // cache: the routes' HTTP cache (cache.go)
	l4       map[string]l4Upstream // l4: the upstreams of tcp listeners (l4.go)
	mirrors  *genMirrors           // routes[].mirror copies in flight (mirror.go)
	tracing  *genTracing           // traceparent and span export (tracing.go)
	// fast: the HTTP/1.1 fast path's view of the routes (fastpath.go);
	// accessLog whether requests are logged.
	fast      *fastRoutes
	accessLog bool

	// refs counts requests being served on this generation; once retired
	// and back at zero, idle is closed and the server closes it.
	refs     atomic.Int64
	retired  atomic.Bool
	idleOnce sync.Once
	idle     chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed sync.Once
}

// buildDeps is what a generation borrows from the process: the parts that
// outlive a reload (state keyed by address, connection pools, the metrics
// registry) are shared, never owned.
type buildDeps struct {
	log       *slog.Logger
	accessLog *slog.Logger
	now       func() time.Time
	metrics   *metrics.Metrics
	registry  *upstream.Registry
	tports    *proxy.Transports
	// store shares health verdicts and the probing lease between
	// processes (memory when state.redis is not set); book keeps the
	// health judges' state across reloads; holder names this process.
	store  health.Store
	book   *health.Book
	holder string
	cache  *cacheResources // cache: process-level stores (cache.go)
	// policy: access, rate limits, auth (policy.go)
	policy *policyResources
	l4m    *metrics.L4 // l4 and mirror metrics; nil in tests
}

// newGeneration builds the handlers of cfg without starting anything.
func newGeneration(cfg *config.Config, d buildDeps) (*generation, error) {
	trusted, err := clientip.ParsePrefixes(cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	if err := d.tports.Update(cfg.Upstreams); err != nil {
		return nil, fmt.Errorf("build transports: %w", err)
	}
	names := make([]string, 0, len(cfg.Upstreams))
	for n := range cfg.Upstreams {
		names = append(names, n)
	}
	sort.Strings(names)
	handlers := make(map[string]http.Handler, len(names))
	pools := make([]*upstream.Pool, 0, len(names))
	var checkers []*health.Checker
	ups := make(map[string]l4Upstream, len(names)) // l4
	for _, name := range names {
		up := cfg.Upstreams[name]
		pool, err := d.registry.NewPool(name, proxy.PoolSpec(up))
		if err != nil {
			return nil, err
		}
		sel, err := balance.New(pool, up.Strategy, up.HashKey, balance.Options{})
		if err != nil {
			return nil, fmt.Errorf("upstream %q: %w", name, err)
		}
		ho, err := healthOptions(name, up, pool, d)
		if err != nil {
			return nil, fmt.Errorf("upstream %q health: %w", name, err)
		}
		hc := health.New(ho)
		checkers = append(checkers, hc)
		ups[name] = l4Upstream{pool: pool, sel: sel, hc: hc} // l4
		h, err := proxy.New(proxy.Options{
			Pool:           pool,
			Upstream:       up,
			Selector:       sel,
			Health:         hc,
			Transports:     d.tports,
			TrustedProxies: trusted,
			Logger:         d.log,
			Observer:       d.metrics,
			Now:            d.now,
			MaxRequestBody: cfg.Limits.MaxRequestBody,
			RequestTimeout: cfg.Timeouts.Request,
			// fastpath.go: the same default on both engines
			BodyReadTimeout: orDefault(cfg.Timeouts.BodyRead, defaultBodyIdle),
		})
		if err != nil {
			return nil, fmt.Errorf("upstream %q: %w", name, err)
		}
		handlers[name] = h
		pools = append(pools, pool)
	}
	specs := routeSpecs(cfg.Routes)
	gc, err := d.cache.generation(cfg, specs, handlers) // cache: wraps the cached routes' handlers
	if err != nil {
		return nil, err
	}
	mirrors := wrapMirrors(cfg, specs, handlers, d.log, d.mirrorObs())                 // mirror.go
	if err := wrapL7(cfg, specs, handlers, clientip.NewTrusted(trusted)); err != nil { // l7.go
		return nil, err
	}
	// policy.go: access, rate_limit, auth in front of each route
	if err := d.policy.wrapRoutes(cfg, specs, handlers, clientip.NewTrusted(trusted), d.metrics); err != nil {
		return nil, err
	}
	table, err := route.New(specs, handlers)
	if err != nil {
		return nil, fmt.Errorf("build routes: %w", err)
	}
	g := &generation{cfg: cfg, log: d.log, pools: pools, checkers: checkers, idle: make(chan struct{})}
	g.cache = gc // cache
	g.l4 = ups   // l4
	g.mirrors = mirrors
	// policy.go: listener access, forward proxies
	lh, err := d.policy.listeners(cfg, newListenerDeps(d, cfg, trusted), table)
	if err != nil {
		return nil, err
	}
	// tracing.go: last, so that no error above leaves its exporter open
	if g.tracing, err = newGenTracing(cfg.Tracing, d.log); err != nil {
		return nil, err
	}
	g.handler = g.chain(lh, d, cfg)
	g.fast = newFastRoutes(g, table) // fastpath.go
	g.accessLog = cfg.Log.Access == nil || *cfg.Log.Access
	return g, nil
}

// chain wraps the route table in the middleware of this generation,
// outermost first: access log, tracing, metrics, routes. The order lives here, with
// the config that decides it, not in the Server.
func (g *generation) chain(h http.Handler, d buildDeps, cfg *config.Config) http.Handler {
	h = d.metrics.Middleware(h)
	h = g.tracing.handler(h) // tracing.go: inside the access log, which logs the trace id
	if cfg.Log.Access == nil || *cfg.Log.Access {
		h = accesslog.New(accesslog.Options{Logger: d.accessLog, Sample: cfg.Log.AccessSample}, h)
	}
	return h
}

// routeSpecs converts the configured routes for package route.
func routeSpecs(rs []config.Route) []route.Spec {
	out := make([]route.Spec, len(rs))
	for i, r := range rs {
		out[i] = route.Spec{Name: r.Name, Upstream: r.Upstream, Match: route.Conditions{
			Host: r.Match.Host, PathPrefix: r.Match.PathPrefix, Methods: r.Match.Methods, Headers: r.Match.Headers,
		}}
	}
	return out
}

// Start launches the generation's background work under ctx. It returns
// once the generation is ready to serve (for example, shared verdicts
// loaded), so a process never serves on a generation that does not know
// what the others know.
func (g *generation) Start(ctx context.Context) error {
	g.ctx, g.cancel = context.WithCancel(ctx)
	g.startResolvers()   // resolve.go: targets given by host name
	g.cache.Start(g.ctx) // cache
	for _, c := range g.checkers {
		if err := c.Start(g.ctx); err != nil {
			return fmt.Errorf("start health checks: %w", err)
		}
	}
	return nil
}

// Close stops the background work and waits for it. It is idempotent and
// safe on a generation that was never started.
func (g *generation) Close() {
	g.closed.Do(func() {
		if g.cancel != nil {
			g.cancel()
		}
		for _, c := range g.checkers {
			_ = c.Close()
		}
		g.cache.Close()   // cache
		g.mirrors.Close() // mirror.go
		g.tracing.Close() // tracing.go: flushes the last spans
		g.wg.Wait()
	})
}

// goFunc runs f on a goroutine the generation owns: f's context ends when
// the generation is closed, and Close waits for f to return. A panic in f
// is logged with its stack and does not take the process down: background
// work (probes, subscriptions) must never kill the proxy (traefik
// pkg/safe). Only valid after Start.
func (g *generation) goFunc(name string, f func(ctx context.Context)) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer func() {
			if v := recover(); v != nil {
				g.log.Error("background task panicked", "task", name, "panic", v, "stack", string(debug.Stack()))
			}
		}()
		f(g.ctx)
	}()
}

// acquire counts a request as served by g; release ends it.
func (g *generation) acquire() { g.refs.Add(1) }

func (g *generation) release() {
	if g.refs.Add(-1) == 0 && g.retired.Load() {
		g.idleOnce.Do(func() { close(g.idle) })
	}
}

// retire marks g as replaced: no new request starts on it, and idle is
// closed once the requests that did are done.
func (g *generation) retire() {
	g.retired.Store(true)
	if g.refs.Load() == 0 {
		g.idleOnce.Do(func() { close(g.idle) })
	}
}

// generations holds the current generation and closes retired ones when
// their last request is done.
type generations struct {
	current atomic.Pointer[generation]
	wg      sync.WaitGroup
}

// acquire returns the current generation with a request counted on it.
// The loop closes the race with a reload: a request that counted itself on
// a generation that was swapped out meanwhile tries the new one, so no
// request ever starts on a generation that retire already saw idle.
func (gs *generations) acquire() *generation {
	for {
		g := gs.current.Load()
		g.acquire()
		if gs.current.Load() == g {
			return g
		}
		g.release()
	}
}

// swap makes next current and retires the previous generation, closing it
// in the background once its requests are done. The first swap has no
// previous generation.
func (gs *generations) swap(next *generation) {
	prev := gs.current.Swap(next)
	if prev == nil {
		return
	}
	prev.retire()
	gs.wg.Add(1)
	go func() {
		defer gs.wg.Done()
		<-prev.idle
		prev.Close()
	}()
}

// close retires the current generation and waits until every generation
// is closed, which is when every request on them is done.
func (gs *generations) close() {
	if g := gs.current.Load(); g != nil {
		g.retire()
		<-g.idle
		g.Close()
	}
	gs.wg.Wait()
}
