package server

// The HTTP cache (package cache) as the server wires it: the stores live
// as long as the process (a reload keeps what is stored; config keys
// cache.max_memory and cache.shared are static), each generation has its
// own *cache.Cache on them (routes[].cache and cache.max_object are
// dynamic), and the cache sits between the route table and the forwarder,
// per route: route table → stampCached → cache → proxy.Handler.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"

	"github.com/handoff-proxy/handoff/pkg/cache"
	"github.com/handoff-proxy/handoff/pkg/cache/store/memory"
	credis "github.com/handoff-proxy/handoff/pkg/cache/store/redis"
	"github.com/handoff-proxy/handoff/pkg/cache/store/tiered"
	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/proxy"
	"github.com/handoff-proxy/handoff/pkg/reqinfo"
	"github.com/handoff-proxy/handoff/pkg/route"
	stateredis "github.com/handoff-proxy/handoff/pkg/state/redis"
)

// cacheResources are the process-level parts of the cache: the memory
// tier, and with cache.shared the Redis tier behind it, plus the counters
// of the caches of generations already closed (so that the stats and the
// metrics count from process start, not from the last reload).
type cacheResources struct {
	log       *slog.Logger
	shared    bool
	maxMemory int64
	mem       *memory.Store
	tier      *tiered.Store // nil unless shared
	client    goredis.UniversalClient
	ownClient bool
	opts      cache.Options // Store, Locker, Logger for each generation
	// purger is a cache on the stores for admin purges, independent of
	// which generations are live.
	purger *cache.Cache

	mu   sync.Mutex
	base cache.Stats // counters of the closed generations' caches
	live map[*cache.Cache]struct{}
}

// newCacheResources builds the stores for cfg.Cache. With cache.shared it
// uses redisClient, the process's one Redis client; nil means it makes its
// own from state.redis (and closes it in Close). It does no I/O.
func newCacheResources(cfg *config.Config, redisClient goredis.UniversalClient, log *slog.Logger) (*cacheResources, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &cacheResources{
		log:       log,
		shared:    cfg.Cache.Shared,
		maxMemory: cfg.Cache.MaxMemoryBytes(),
		mem:       memory.New(memory.Options{MaxBytes: cfg.Cache.MaxMemoryBytes()}),
		live:      make(map[*cache.Cache]struct{}),
	}
	r.opts = cache.Options{Store: r.mem, Logger: log}
	if cfg.Cache.Shared {
		ro := cfg.State.Redis.RedisOptions()
		if ro == nil {
			return nil, errors.New("cache.shared needs state.redis")
		}
		r.client = redisClient
		if r.client == nil {
			ro.Logger = log
			c, err := stateredis.NewClient(*ro)
			if err != nil {
				return nil, fmt.Errorf("cache: redis client: %w", err)
			}
			r.client, r.ownClient = c, true
		}
		var id [6]byte
		_, _ = rand.Read(id[:])
		shared := credis.New(r.client, credis.Options{Prefix: ro.Prefix, Logger: log})
		r.tier = tiered.New(r.mem, shared, fmt.Sprintf("%d-%s", os.Getpid(), hex.EncodeToString(id[:])), log)
		r.opts.Store, r.opts.Locker = r.tier, r.tier
	}
	var err error
	if r.purger, err = cache.New(r.opts); err != nil {
		return nil, err
	}
	return r, nil
}

// Start subscribes to the other processes' invalidations (shared only).
func (r *cacheResources) Start(ctx context.Context) {
	if r != nil && r.tier != nil {
		r.tier.Start(ctx)
	}
}

// Close stops the subscription and closes the Redis client if it is ours.
func (r *cacheResources) Close() {
	if r == nil {
		return
	}
	if r.tier != nil {
		r.tier.Close()
	}
	r.purger.Close()
	if r.ownClient {
		_ = r.client.Close()
	}
}

// Stats sums the counters of every cache since process start; Entries
// and Bytes are the memory tier's.
func (r *cacheResources) Stats() cache.Stats {
	r.mu.Lock()
	s := r.base
	for c := range r.live {
		add(&s, c.Stats())
	}
	r.mu.Unlock()
	st := r.mem.Stats()
	s.Entries, s.Bytes = st.Entries, st.Bytes
	return s
}

func add(s *cache.Stats, o cache.Stats) {
	s.Hits += o.Hits
	s.Misses += o.Misses
	s.StaleServed += o.StaleServed
	s.Revalidations += o.Revalidations
	s.Coalesced += o.Coalesced
	s.StoreErrors += o.StoreErrors
}

// collector is the cache's metrics (handoff_cache_*), registered once.
func (r *cacheResources) collector() prometheus.Collector { return cache.StatsCollector(r.Stats) }

// genCache is one generation's cache on the process's stores. A nil
// *genCache caches nothing.
type genCache struct {
	res     *cacheResources
	c       *cache.Cache
	started bool
}

// generation builds the cache of a generation of cfg and points every
// route with caching on at its cache: specs[i].Handler becomes the route's
// upstream handler wrapped in it. A nil r, or a config where no route
// caches, gives a nil *genCache.
func (r *cacheResources) generation(cfg *config.Config, specs []route.Spec, handlers map[string]http.Handler) (*genCache, error) {
	if r == nil || !slices.ContainsFunc(cfg.Routes, func(rt config.Route) bool { return rt.Cache != nil && rt.Cache.Enabled }) {
		return nil, nil // nothing to cache: no cache, no goroutine
	}
	o := r.opts
	o.MaxObject = cfg.Cache.MaxObjectBytes()
	c, err := cache.New(o)
	if err != nil {
		return nil, fmt.Errorf("build cache: %w", err)
	}
	g := &genCache{res: r, c: c}
	for i, rt := range cfg.Routes {
		if next, ok := handlers[rt.Upstream]; ok && rt.Cache != nil && rt.Cache.Enabled {
			specs[i].Handler = g.wrap(*rt.Cache, next)
		}
	}
	return g, nil
}

// wrap puts next (the route's forwarder) behind the cache with the
// route's settings.
func (g *genCache) wrap(rc config.RouteCache, next http.Handler) http.Handler {
	if g == nil || !rc.Enabled {
		return next
	}
	return stampCached(g.c.Handler(cache.Route{
		Enabled:    true,
		DefaultTTL: rc.DefaultTTL,
		Key:        cache.KeyOptions{IncludeQuery: rc.Key.QueryInKey(), Headers: rc.Key.Headers},
	}, next))
}

// Start ties the cache's background refreshes to ctx (the generation's).
func (g *genCache) Start(ctx context.Context) {
	if g == nil {
		return
	}
	g.c.Start(ctx)
	g.res.mu.Lock()
	g.res.live[g.c] = struct{}{}
	g.started = true
	g.res.mu.Unlock()
}

// Close waits for the background refreshes and keeps the counters.
func (g *genCache) Close() {
	if g == nil {
		return
	}
	g.c.Close()
	g.res.mu.Lock()
	defer g.res.mu.Unlock()
	if g.started {
		delete(g.res.live, g.c)
		add(&g.res.base, g.c.Stats())
		g.started = false
	}
}

// stampCached gives the responses the cache answers itself (hits, 304s
// from a stored response, only-if-cached 504s) the per-request fields the
// forwarder adds to what it forwards, X-Request-Id and Via (RFC 9110
// §7.6.3), which are never stored (cache.Options.NoStoreHeaders). The
// request is given its id first, so that on a miss the forwarder sends
// and returns the same one and the access log has it either way.
func stampCached(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "" {
			next.ServeHTTP(w, r) // a tunnel: the cache passes it through
			return
		}
		id := proxy.RequestID(r.Header)
		r.Header["X-Request-Id"] = []string{id}
		if in := reqinfo.From(r.Context()); in != nil {
			in.RequestID = id
		}
		next.ServeHTTP(&stampWriter{ResponseWriter: w, id: id}, r)
	})
}

// stampWriter adds X-Request-Id and Via to a final response that has no
// X-Request-Id: one the forwarder did not answer (it sets X-Request-Id on
// everything it answers, its own errors included).
type stampWriter struct {
	http.ResponseWriter
	id      string
	stamped bool
}

func (s *stampWriter) stamp() {
	if s.stamped {
		return
	}
	s.stamped = true
	h := s.ResponseWriter.Header()
	if _, ok := h["X-Request-Id"]; ok {
		return
	}
	h["X-Request-Id"] = []string{s.id}
	if _, ok := h["Via"]; !ok {
		// The stored response came over HTTP/1.1 or later; RFC 9110
		// §7.6.3 names the protocol it was received with.
		h["Via"] = []string{"1.1 handoff"}
	}
}

func (s *stampWriter) WriteHeader(code int) {
	if code >= 200 {
		s.stamp() // not on 1xx: their fields are not the final response's
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *stampWriter) Write(p []byte) (int, error) {
	s.stamp()
	return s.ResponseWriter.Write(p)
}

func (s *stampWriter) Flush() {
	s.stamp()
	_ = http.NewResponseController(s.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the writer underneath.
func (s *stampWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// cacheStats is the answer to GET /api/v1/cache.
type cacheStats struct {
	// Shared reports whether the Redis tier is on (cache.shared).
	Shared        bool  `json:"shared"`
	MaxMemory     int64 `json:"max_memory"`
	Entries       int64 `json:"entries"`
	Bytes         int64 `json:"bytes"`
	Hits          int64 `json:"hits"`
	Misses        int64 `json:"misses"`
	StaleServed   int64 `json:"stale_served"`
	Revalidations int64 `json:"revalidations"`
	Coalesced     int64 `json:"coalesced"`
	StoreErrors   int64 `json:"store_errors"`
}

// serveStats is GET /api/v1/cache.
func (r *cacheResources) serveStats(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s := r.Stats()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(cacheStats{
		Shared: r.shared, MaxMemory: r.maxMemory, Entries: s.Entries, Bytes: s.Bytes,
		Hits: s.Hits, Misses: s.Misses, StaleServed: s.StaleServed, Revalidations: s.Revalidations,
		Coalesced: s.Coalesced, StoreErrors: s.StoreErrors,
	})
}

// purgeRequest is the body of POST /api/v1/cache/purge.
type purgeRequest struct {
	// URL as clients ask for it: "http://host[:port]/path?query", the
	// host as in their Host header.
	URL string `json:"url"`
	// Prefix reports whether every URL starting with URL is purged
	// instead of URL exactly (all its variants).
	Prefix bool `json:"prefix"`
	// All reports whether everything is purged; URL must be empty then.
	All bool `json:"all"`
}

// servePurge is POST /api/v1/cache/purge (behind admin.Guard, so only
// with Content-Type: application/json and from no browser page). A
// purge reaches the memory tiers of the other processes too, through the
// shared tier's invalidation messages.
func (r *cacheResources) servePurge(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var p purgeRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		http.Error(w, "purge: bad request body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := p.check(); err != nil {
		http.Error(w, "purge: "+err.Error(), http.StatusBadRequest)
		return
	}
	n, err := r.purger.Purge(req.Context(), p.URL, !p.Prefix && !p.All)
	res := struct {
		Purged int    `json:"purged"`
		Error  string `json:"error,omitempty"`
	}{Purged: n}
	status := http.StatusOK
	if err != nil {
		res.Error, status = err.Error(), http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(res)
}

func (p purgeRequest) check() error {
	if p.All {
		if p.URL != "" || p.Prefix {
			return errors.New(`"all" purges everything: give no "url" or "prefix" with it`)
		}
		return nil
	}
	u, err := url.Parse(p.URL)
	switch {
	case p.URL == "":
		return errors.New(`give "url" (and "prefix": true for a prefix), or "all": true`)
	case err != nil:
		return fmt.Errorf("url: %w", err)
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return fmt.Errorf("url %q: want http://host/path or https://host/path, as clients ask for it", p.URL)
	}
	return nil
}
