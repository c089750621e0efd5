package cache_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/cache"
	"github.com/handoff-proxy/handoff/pkg/cache/store"
	"github.com/handoff-proxy/handoff/pkg/cache/store/memory"
	credis "github.com/handoff-proxy/handoff/pkg/cache/store/redis"
	"github.com/handoff-proxy/handoff/pkg/cache/store/tiered"
	"github.com/handoff-proxy/handoff/pkg/handofftest"
	sredis "github.com/handoff-proxy/handoff/pkg/state/redis"
	"github.com/handoff-proxy/handoff/pkg/state/statetest"
)

// origin counts requests per path; /cache/ is max-age=3600 with an ETag,
// /slow/ the same after 100ms, /plain/ has no freshness information.
type origin struct {
	mu   sync.Mutex
	hits map[string]int
	srv  *httptest.Server
}

func newOrigin(t *testing.T) *origin {
	o := &origin{hits: map[string]int{}}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.hits[r.URL.Path]++
		o.mu.Unlock()
		if strings.HasPrefix(r.URL.Path, "/slow/") {
			time.Sleep(100 * time.Millisecond)
		}
		if !strings.HasPrefix(r.URL.Path, "/plain/") {
			w.Header().Set("Cache-Control", "public, max-age=3600")
			w.Header().Set("ETag", `"v1"`)
			if r.Header.Get("If-None-Match") == `"v1"` {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		io.WriteString(w, "body of "+r.URL.Path)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

func (o *origin) count(p string) int { o.mu.Lock(); defer o.mu.Unlock(); return o.hits[p] }

// proxy is a cache in front of a reverse proxy to the origin.
func proxy(t *testing.T, o *origin, opts cache.Options) (*httptest.Server, *cache.Cache) {
	u, _ := url.Parse(o.srv.URL)
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(u); pr.Out.Host = pr.In.Host }}
	opts.Logger = handofftest.Logger(t)
	c, err := cache.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	c.Start(context.Background())
	t.Cleanup(c.Close)
	h := c.Handler(cache.Route{Enabled: true, Key: cache.KeyOptions{IncludeQuery: true}}, rp)
	// The per-request header is added outside the cache, as the lead wires it.
	outer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", fmt.Sprint(time.Now().UnixNano()))
		h.ServeHTTP(w, r)
	})
	s := httptest.NewServer(outer)
	t.Cleanup(s.Close)
	return s, c
}

func get(t *testing.T, base, path string, hdr ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+path, nil)
	req.Host = "example.test"
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

func TestHitAgeCacheStatus(t *testing.T) {
	o := newOrigin(t)
	s, c := proxy(t, o, cache.Options{Store: memory.New(memory.Options{})})
	r1 := get(t, s.URL, "/cache/a")
	if cs := r1.Header.Get("Cache-Status"); !strings.Contains(cs, "fwd=uri-miss") || !strings.Contains(cs, "stored") {
		t.Fatalf("miss Cache-Status = %q", cs)
	}
	r2 := get(t, s.URL, "/cache/a")
	if cs := r2.Header.Get("Cache-Status"); !strings.Contains(cs, "hit") {
		t.Fatalf("RFC 9211: second Cache-Status = %q, want hit", cs)
	}
	if r2.Header.Get("Age") == "" {
		t.Fatal("RFC 9111 §4.2.3: hit without Age")
	}
	if r1.Header.Get("X-Request-Id") == r2.Header.Get("X-Request-Id") {
		t.Fatal("per-request header was stored")
	}
	if n := o.count("/cache/a"); n != 1 {
		t.Fatalf("origin saw %d requests, want 1", n)
	}
	get(t, s.URL, "/plain/n")
	get(t, s.URL, "/plain/n")
	if n := o.count("/plain/n"); n != 2 {
		t.Fatalf("§3: response without freshness served from cache (%d origin requests)", n)
	}
	// §5.2.1.4: request no-cache revalidates (a 304 from the origin).
	r3 := get(t, s.URL, "/cache/a", "Cache-Control", "no-cache")
	if n := o.count("/cache/a"); n != 2 || r3.StatusCode != 200 {
		t.Fatalf("no-cache: origin count %d, status %d", n, r3.StatusCode)
	}
	// §4.3.2: a matching client conditional gets a 304 from the cache.
	if r := get(t, s.URL, "/cache/a", "If-None-Match", `"v1"`); r.StatusCode != http.StatusNotModified {
		t.Fatalf("conditional hit status %d, want 304", r.StatusCode)
	}
	// Range on a stored complete 200 is a 206.
	if r := get(t, s.URL, "/cache/a", "Range", "bytes=0-3"); r.StatusCode != http.StatusPartialContent {
		t.Fatalf("range hit status %d, want 206", r.StatusCode)
	}
	if st := c.Stats(); st.Hits < 3 || st.Entries != 1 {
		t.Fatalf("stats = %+v", st)
	}
	if n, _ := c.Purge(context.Background(), "http://example.test/cache/", false); n != 1 {
		t.Fatalf("purge by prefix removed %d", n)
	}
}

// TestCoalescingInProcess: concurrent misses for one key make one origin
// request.
func TestCoalescingInProcess(t *testing.T) {
	o := newOrigin(t)
	s, c := proxy(t, o, cache.Options{Store: memory.New(memory.Options{})})
	var wg sync.WaitGroup
	for range 40 {
		wg.Add(1)
		go func() { defer wg.Done(); get(t, s.URL, "/slow/burst") }()
	}
	wg.Wait()
	if n := o.count("/slow/burst"); n != 1 {
		t.Fatalf("40 concurrent misses made %d origin requests", n)
	}
	if c.Stats().Coalesced == 0 {
		t.Fatal("no coalesced waiters counted")
	}
}

func sharedStore(t *testing.T, addr, id string) (*tiered.Store, *memory.Store) {
	// Generous timeouts: this test is about sharing and coalescing, and a
	// Redis call that times out on a loaded machine rightly degrades to
	// no cross-process coalescing (TestRedisKilledUnderLoad covers that).
	client, err := sredis.NewClient(sredis.Options{URL: "redis://" + addr, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	mem := memory.New(memory.Options{})
	ts := tiered.New(mem, credis.New(client, credis.Options{Logger: handofftest.Logger(t), RetryAfter: 200 * time.Millisecond, Timeout: 2 * time.Second}), id, handofftest.Logger(t))
	ts.Start(context.Background())
	t.Cleanup(ts.Close)
	return ts, mem
}

// TestTwoInstancesShareRedis: a hit stored by one is served by the
// other; invalidation through one is seen by the other; concurrent misses
// across both make one origin request.
func TestTwoInstancesShareRedis(t *testing.T) {
	rs := statetest.StartRedis(t)
	o := newOrigin(t)
	st1, _ := sharedStore(t, rs.Addr, "p1")
	st2, _ := sharedStore(t, rs.Addr, "p2")
	p1, _ := proxy(t, o, cache.Options{Store: st1, Locker: st1})
	p2, _ := proxy(t, o, cache.Options{Store: st2, Locker: st2})

	get(t, p1.URL, "/cache/a")
	if r := get(t, p2.URL, "/cache/a"); !strings.Contains(r.Header.Get("Cache-Status"), "hit") || o.count("/cache/a") != 1 {
		t.Fatalf("second process missed: %q, origin %d", r.Header.Get("Cache-Status"), o.count("/cache/a"))
	}
	// §4.4: POST through p1 invalidates p2's memory copy too.
	req, _ := http.NewRequest(http.MethodPost, p1.URL+"/cache/a", nil)
	req.Host = "example.test"
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	time.Sleep(50 * time.Millisecond) // pub/sub delivery to p2's subscriber
	get(t, p2.URL, "/cache/a")
	if n := o.count("/cache/a"); n < 3 {
		t.Fatalf("invalidation not seen by the other process: origin count %d", n)
	}

	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		base := p1.URL
		if i%2 == 1 {
			base = p2.URL
		}
		go func() { defer wg.Done(); get(t, base, "/slow/both") }()
	}
	wg.Wait()
	if n := o.count("/slow/both"); n != 1 {
		t.Fatalf("40 concurrent misses across two processes made %d origin requests", n)
	}
}

// TestRedisKilledUnderLoad: killing Redis fails no request, and the
// memory tier keeps serving.
func TestRedisKilledUnderLoad(t *testing.T) {
	rs := statetest.StartRedis(t)
	o := newOrigin(t)
	st, _ := sharedStore(t, rs.Addr, "p1")
	p, _ := proxy(t, o, cache.Options{Store: st, Locker: st})
	var failed, total atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/cache/k%d", p.URL, (w*7+i)%20), nil)
				res, err := http.DefaultClient.Do(req)
				total.Add(1)
				if err != nil || res.StatusCode != 200 {
					failed.Add(1)
				}
				if err == nil {
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	rs.Stop()
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed with Redis killed", failed.Load(), total.Load())
	}
	before := o.count("/cache/z")
	get(t, p.URL, "/cache/z")
	get(t, p.URL, "/cache/z")
	if o.count("/cache/z") != before+1 {
		t.Fatal("memory tier did not serve with Redis down")
	}
}

var _ store.Store = (*tiered.Store)(nil)
