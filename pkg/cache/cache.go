package cache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/handoff-proxy/handoff/pkg/cache/store"
)

// Options configure a Cache (config section cache:).
type Options struct {
	// Store keeps the entries: a memory store, or the two-tier store when
	// the cache is shared. Required.
	Store store.Store
	// Locker coalesces misses across processes (store/redis or
	// store/tiered implement it). Nil means within this process only.
	Locker store.Locker
	// MaxObject is the largest body stored (config cache.max_object);
	// larger responses stream through unbuffered. Zero means 8 MiB.
	MaxObject int64
	// LockTTL bounds how long another process's fill of the same key is
	// waited for before fetching anyway. Zero means 5s.
	LockTTL time.Duration
	// ValidatorGrace is how long past its stale windows an entry with an
	// ETag or Last-Modified is kept, so it can be revalidated with a 304
	// instead of fetched again. Zero means 1h.
	ValidatorGrace time.Duration
	// RefreshTimeout bounds a background refresh (stale-while-revalidate).
	// Zero means 30s.
	RefreshTimeout time.Duration
	// NoStoreHeaders are response fields never stored, because whoever
	// adds them adds them per request (matched case-insensitively). Nil
	// means Via and X-Request-Id are not stored; hop-by-hop fields,
	// Cache-Status and Surrogate-Control are never stored either way.
	NoStoreHeaders []string
	// Name is the cache's name in Cache-Status (RFC 9211 §2). Empty means
	// "handoff".
	Name string
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Logger receives store errors and background refresh failures. Nil
	// discards.
	Logger *slog.Logger
}

// Route is the cache setting of one route (config routes[].cache).
type Route struct {
	// Enabled reports whether the route is cached; a disabled route's
	// handler is the next handler itself.
	Enabled bool
	// DefaultTTL is the freshness of responses without explicit freshness
	// (Policy.DefaultTTL). Zero means the RFC 9111 §4.2.2 heuristic only.
	DefaultTTL time.Duration
	// Key says what identifies an entry besides the URI path.
	Key KeyOptions
}

// Cache is one cache (one per config generation; its store may outlive
// it). Build with New, then Start; Close stops its background refreshes.
type Cache struct {
	o       Options
	noStore map[string]bool
	flights flights
	stats   counters
	token   string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type counters struct {
	hits, misses, stale, revalidations, coalesced, errors atomic.Int64
}

// New returns a Cache. It does no I/O.
func New(o Options) (*Cache, error) {
	if o.Store == nil {
		return nil, errors.New("cache needs a store")
	}
	if o.MaxObject == 0 {
		o.MaxObject = 8 << 20
	}
	if o.LockTTL == 0 {
		o.LockTTL = 5 * time.Second
	}
	if o.ValidatorGrace == 0 {
		o.ValidatorGrace = time.Hour
	}
	if o.RefreshTimeout == 0 {
		o.RefreshTimeout = 30 * time.Second
	}
	if o.NoStoreHeaders == nil {
		o.NoStoreHeaders = []string{"Via", "X-Request-Id"}
	}
	if o.Name == "" {
		o.Name = "handoff"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cache{o: o, noStore: map[string]bool{}}
	// RFC 9110 §7.6.1: hop-by-hop fields describe one connection.
	for _, h := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
		"Proxy-Authorization", "TE", "Trailer", "Transfer-Encoding", "Upgrade", "Cache-Status", "Surrogate-Control"} {
		c.noStore[http.CanonicalHeaderKey(h)] = true
	}
	for _, h := range o.NoStoreHeaders {
		c.noStore[http.CanonicalHeaderKey(h)] = true
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	c.token = hex.EncodeToString(b[:])
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// Start ties the background refreshes to ctx (they also stop at Close).
func (c *Cache) Start(ctx context.Context) {
	stop := context.AfterFunc(ctx, c.cancel)
	c.wg.Add(1)
	go func() { defer c.wg.Done(); <-c.ctx.Done(); stop() }()
}

// Close cancels the background refreshes and waits for them.
func (c *Cache) Close() {
	c.cancel()
	c.wg.Wait()
}

// Stats are the cache's counters (for /api/v1/cache and metrics).
type Stats struct {
	// Entries and Bytes are what this process's memory tier holds; zero
	// when the store does not report it.
	Entries, Bytes int64
	Hits           int64 // answered from a stored response, fresh or stale
	Misses         int64 // forwarded because nothing usable was stored
	StaleServed    int64 // answered with a stale response (max-stale, RFC 5861)
	Revalidations  int64 // stored responses validated at the origin
	Coalesced      int64 // requests that waited for another's fill instead of forwarding
	StoreErrors    int64 // store calls that failed (e.g. Redis down)
}

// Stats returns the current counters.
func (c *Cache) Stats() Stats {
	s := Stats{Hits: c.stats.hits.Load(), Misses: c.stats.misses.Load(), StaleServed: c.stats.stale.Load(),
		Revalidations: c.stats.revalidations.Load(), Coalesced: c.stats.coalesced.Load(),
		StoreErrors: c.stats.errors.Load()}
	if r, ok := c.o.Store.(interface{ Stats() store.Stats }); ok {
		st := r.Stats()
		s.Entries, s.Bytes = st.Entries, st.Bytes
	}
	return s
}

// Purge removes entries: with exact, the one URL (all its variants);
// otherwise every URL starting with url; an empty url removes everything.
// url is "scheme://host/path?query" as the client asked for it; a port
// in it is ignored, as in the keys (see PrimaryKey).
func (c *Cache) Purge(ctx context.Context, url string, exact bool) (int, error) {
	if url == "" {
		return c.o.Store.Purge(ctx, "")
	}
	url = normaliseURL(url)
	if !exact {
		return c.o.Store.Purge(ctx, url)
	}
	// Deleting the primary key drops the variant index too, which makes
	// every variant unreachable; header-keyed entries follow "\x00".
	err := c.o.Store.Delete(ctx, url)
	n, err2 := c.o.Store.Purge(ctx, url+"\x00")
	return n + 1, errors.Join(err, err2)
}

func normaliseURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	host, path, _ := strings.Cut(rest, "/")
	return strings.ToLower(scheme) + "://" + keyHost(host) + "/" + path
}

// goBackground runs f on the cache's lifetime, recovering a panic.
func (c *Cache) goBackground(f func(ctx context.Context)) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() {
			if r := recover(); r != nil && r != http.ErrAbortHandler {
				c.o.Logger.Error("cache background refresh panicked", "panic", r, "stack", string(debug.Stack()))
			}
		}()
		f(c.ctx)
	}()
}
