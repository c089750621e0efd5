package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/handoff-proxy/handoff/pkg/config"
)

// countingOrigin counts requests per path; /cache/* is fresh for an hour
// (RFC 9111 §5.2.2.1), everything else has no freshness information.
type countingOrigin struct {
	mu   sync.Mutex
	hits map[string]int
	*httptest.Server
}

func newCountingOrigin(t *testing.T) *countingOrigin {
	o := &countingOrigin{hits: map[string]int{}}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.hits[r.URL.Path]++
		n := o.hits[r.URL.Path]
		o.mu.Unlock()
		if strings.HasPrefix(r.URL.Path, "/cache/") {
			w.Header().Set("Cache-Control", "max-age=3600")
		}
		fmt.Fprintf(w, "%s #%d", r.URL.Path, n)
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *countingOrigin) count(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.hits[path]
}

// cacheConfig routes /cache to the origin through the cache and
// everything else to the same upstream without it.
func cacheConfig(origin string) *config.Config {
	cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, origin)
	cfg.Cache = config.Cache{MaxMemory: "1MiB"}
	cfg.Routes = []config.Route{
		{Name: "cached", Match: config.Match{PathPrefix: "/cache"}, Upstream: "web", Cache: &config.RouteCache{Enabled: true}},
		{Name: "plain", Upstream: "web"},
	}
	return cfg
}

func cacheGet(t *testing.T, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestCacheRoutes(t *testing.T) {
	origin := newCountingOrigin(t)
	cfg := cacheConfig(hostOf(origin.Server))
	r := serve(t, cfg, func() (*config.Config, error) { return cacheConfig(hostOf(origin.Server)), nil })
	base := "http://" + r.addrs["http"]

	miss, _ := cacheGet(t, base+"/cache/a")
	if cs := miss.Header.Get("Cache-Status"); !strings.Contains(cs, "fwd=uri-miss") {
		t.Errorf("first GET Cache-Status %q, want fwd=uri-miss", cs)
	}
	hit, body := cacheGet(t, base+"/cache/a")
	t.Run("hit with Cache-Status and Age", func(t *testing.T) {
		if cs := hit.Header.Get("Cache-Status"); !strings.Contains(cs, "hit") {
			t.Errorf("Cache-Status %q, want a hit", cs)
		}
		if hit.Header.Get("Age") == "" {
			t.Error("no Age on a cached response (RFC 9111 §5.1)")
		}
		if body != "/cache/a #1" || origin.count("/cache/a") != 1 {
			t.Errorf("body %q, origin saw %d requests", body, origin.count("/cache/a"))
		}
	})
	t.Run("hit carries its own X-Request-Id and Via", func(t *testing.T) {
		mid, hid := miss.Header.Get("X-Request-Id"), hit.Header.Get("X-Request-Id")
		if hid == "" || hid == mid || len(hit.Header.Values("X-Request-Id")) != 1 {
			t.Errorf("X-Request-Id miss %q hit %q (%d lines): want a fresh one on the hit", mid, hid, len(hit.Header.Values("X-Request-Id")))
		}
		if v := hit.Header.Values("Via"); len(v) != 1 || v[0] != "1.1 handoff" {
			t.Errorf("hit Via %q, want [1.1 handoff] (RFC 9110 §7.6.3)", v)
		}
		if v := miss.Header.Values("Via"); len(v) != 1 || v[0] != "1.1 handoff" {
			t.Errorf("miss Via %q, want [1.1 handoff]", v)
		}
		again, _ := cacheGet(t, base+"/cache/a", "X-Request-Id", "client-id-1")
		if got := again.Header.Get("X-Request-Id"); got != "client-id-1" {
			t.Errorf("hit X-Request-Id %q, want the client's client-id-1", got)
		}
	})
	t.Run("route without cache", func(t *testing.T) {
		cacheGet(t, base+"/cache-not/b") // "/cache" matches on segment boundaries only
		resp, _ := cacheGet(t, base+"/cache-not/b")
		if n := origin.count("/cache-not/b"); n != 2 {
			t.Errorf("origin saw %d requests for two GETs on an uncached route", n)
		}
		if cs := resp.Header.Get("Cache-Status"); cs != "" {
			t.Errorf("uncached route has Cache-Status %q", cs)
		}
	})
	t.Run("reload keeps the memory tier", func(t *testing.T) {
		if res, err := r.srv.Reload(context.Background()); err != nil || res.Error != "" {
			t.Fatalf("reload: %v %+v", err, res)
		}
		resp, body := cacheGet(t, base+"/cache/a")
		if !strings.Contains(resp.Header.Get("Cache-Status"), "hit") || origin.count("/cache/a") != 1 || body != "/cache/a #1" {
			t.Errorf("after reload: Cache-Status %q, origin count %d, body %q", resp.Header.Get("Cache-Status"), origin.count("/cache/a"), body)
		}
	})
	t.Run("stats count across generations", func(t *testing.T) {
		rec := httptest.NewRecorder()
		r.srv.adminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/cache", nil))
		var st cacheStats
		if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
			t.Fatalf("%v: %s", err, rec.Body)
		}
		if st.Hits != 3 || st.Misses != 1 || st.Entries != 1 || st.Bytes == 0 || st.MaxMemory != 1<<20 {
			t.Errorf("stats %+v, want 3 hits, 1 miss, 1 entry", st)
		}
		rec = httptest.NewRecorder()
		r.srv.adminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		if !strings.Contains(rec.Body.String(), `handoff_cache_events_total{kind="hit"} 3`) {
			t.Errorf("metrics lack the cache hits:\n%s", grepLines(rec.Body.String(), "handoff_cache"))
		}
	})
	t.Run("purge", func(t *testing.T) {
		host := strings.TrimPrefix(base, "http://")
		purge := func(body, ctype string) (int, string) {
			req := httptest.NewRequest(http.MethodPost, "/api/v1/cache/purge", strings.NewReader(body))
			req.Host = "127.0.0.1:9901"
			if ctype != "" {
				req.Header.Set("Content-Type", ctype)
			}
			rec := httptest.NewRecorder()
			r.srv.adminHandler().ServeHTTP(rec, req)
			return rec.Code, rec.Body.String()
		}
		tests := []struct {
			name, body, ctype string
			want              int
		}{
			{name: "form post refused by the guard", body: `{"all":true}`, ctype: "text/plain", want: http.StatusForbidden},
			{name: "nothing to purge", body: `{}`, ctype: "application/json", want: http.StatusBadRequest},
			{name: "relative url", body: `{"url":"/cache/a"}`, ctype: "application/json", want: http.StatusBadRequest},
			{name: "all with url", body: `{"all":true,"url":"http://x/"}`, ctype: "application/json", want: http.StatusBadRequest},
			{name: "unknown field", body: `{"uri":"http://x/"}`, ctype: "application/json", want: http.StatusBadRequest},
			{name: "exact", body: `{"url":"http://` + host + `/cache/a"}`, ctype: "application/json", want: http.StatusOK},
		}
		for _, tt := range tests {
			if code, body := purge(tt.body, tt.ctype); code != tt.want {
				t.Errorf("%s: %d %s, want %d", tt.name, code, body, tt.want)
			}
		}
		cacheGet(t, base+"/cache/a")
		if n := origin.count("/cache/a"); n != 2 {
			t.Errorf("after an exact purge the origin saw %d requests, want 2", n)
		}
		cacheGet(t, base+"/cache/b")
		if code, body := purge(`{"url":"http://`+host+`/cache/","prefix":true}`, "application/json"); code != http.StatusOK || !strings.Contains(body, `"purged":2`) {
			t.Errorf("prefix purge: %d %s", code, body)
		}
		cacheGet(t, base+"/cache/b")
		if code, _ := purge(`{"all":true}`, "application/json"); code != http.StatusOK {
			t.Errorf("purge all: %d", code)
		}
		cacheGet(t, base+"/cache/b")
		if n := origin.count("/cache/b"); n != 3 {
			t.Errorf("origin saw %d requests for /cache/b across two purges, want 3", n)
		}
	})
}
