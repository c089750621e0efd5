package config

import (
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"
)

func TestParseBytes(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want int64
		bad  bool
	}{
		{name: "empty", in: "", want: 0},
		{name: "plain", in: "1048576", want: 1 << 20},
		{name: "bytes", in: "512B", want: 512},
		{name: "KiB", in: "512KiB", want: 512 << 10},
		{name: "MiB", in: "64MiB", want: 64 << 20},
		{name: "GiB", in: "2GiB", want: 2 << 30},
		{name: "nginx style", in: "64m", want: 64 << 20},
		{name: "SI", in: "1GB", want: 1e9},
		{name: "SI kilo lower case", in: "10kb", want: 10000},
		{name: "space", in: " 8 MiB ", want: 8 << 20},
		{name: "TiB", in: "1TiB", want: 1 << 40},
		{name: "no number", in: "MiB", bad: true},
		{name: "negative", in: "-1", bad: true},
		{name: "fraction", in: "1.5GiB", bad: true},
		{name: "unknown unit", in: "5 parsecs", bad: true},
		{name: "overflow by unit", in: "9000000TiB", bad: true},
		{name: "overflow", in: "99999999999999999999", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseBytes(tt.in)
			if tt.bad {
				if !errors.Is(err, ErrBadSize) {
					t.Fatalf("ParseBytes(%q) = %d, %v; want ErrBadSize", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseBytes(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func FuzzParseBytes(f *testing.F) {
	for _, s := range []string{"", "0", "64MiB", "512KiB", "1GB", "1 k", "9223372036854775807", "8EiB", "-3", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseBytes(s)
		if err != nil {
			if !errors.Is(err, ErrBadSize) {
				t.Fatalf("error %v does not wrap ErrBadSize", err)
			}
			return
		}
		if n < 0 {
			t.Fatalf("ParseBytes(%q) = %d < 0", s, n)
		}
		// A plain integer result reads back as itself.
		if m, err := ParseBytes(strconv.FormatInt(n, 10)); err != nil || m != n {
			t.Fatalf("ParseBytes(%d) = %d, %v", n, m, err)
		}
	})
}

func TestCacheDefaults(t *testing.T) {
	var c Cache
	if c.MaxMemoryBytes() != 64<<20 || c.MaxObjectBytes() != 8<<20 {
		t.Fatalf("defaults: %d, %d", c.MaxMemoryBytes(), c.MaxObjectBytes())
	}
	c = Cache{MaxMemory: "32MiB", MaxObject: "1KiB"}
	if c.MaxMemoryBytes() != 32<<20 || c.MaxObjectBytes() != 1<<10 {
		t.Fatalf("set: %d, %d", c.MaxMemoryBytes(), c.MaxObjectBytes())
	}
	if !(CacheKey{}).QueryInKey() || (CacheKey{IncludeQuery: new(false)}).QueryInKey() {
		t.Fatal("include_query: nil must mean true, false false")
	}
}

func TestValidateCache(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   []string // keys with problems
	}{
		{name: "off", mutate: func(c *Config) {}},
		{name: "memory only", mutate: func(c *Config) {
			c.Cache = Cache{MaxMemory: "64MiB", MaxObject: "1MiB"}
			c.Routes[0].Cache = &RouteCache{Enabled: true, DefaultTTL: time.Minute, Key: CacheKey{Headers: []string{"Accept-Language"}}}
		}},
		{name: "shared with redis", mutate: func(c *Config) {
			c.Cache.Shared = true
			c.State.Redis = &Redis{URL: "redis://127.0.0.1:6379/0"}
		}},
		{name: "shared without redis", mutate: func(c *Config) { c.Cache.Shared = true }, want: []string{"cache.shared"}},
		{name: "bad sizes", mutate: func(c *Config) { c.Cache = Cache{MaxMemory: "lots", MaxObject: "1.5MiB"} },
			want: []string{"cache.max_memory", "cache.max_object"}},
		{name: "bad key header", mutate: func(c *Config) {
			c.Routes[1].Cache = &RouteCache{Enabled: true, Key: CacheKey{Headers: []string{"ok", "not a token"}}}
		}, want: []string{"routes[1].cache.key.headers[1]"}},
		{name: "negative ttl", mutate: func(c *Config) { c.Routes[0].Cache = &RouteCache{DefaultTTL: -time.Second} },
			want: []string{"routes[0].cache.default_ttl"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(c)
			err := c.Validate(nil)
			var keys []string
			var errs Errors
			if errors.As(err, &errs) {
				for _, e := range errs {
					keys = append(keys, e.Key)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			slices.Sort(keys)
			if !slices.Equal(keys, tt.want) {
				t.Fatalf("problems at %v, want %v (%v)", keys, tt.want, err)
			}
		})
	}
}

func TestCacheStaticChanges(t *testing.T) {
	old, cur := validConfig(), validConfig()
	cur.Cache = Cache{MaxMemory: "1GiB", MaxObject: "1MiB", Shared: true}
	cur.Routes[0].Cache = &RouteCache{Enabled: true}
	got := StaticChanges(old, cur)
	if want := []string{"cache.max_memory", "cache.shared"}; !slices.Equal(got, want) {
		t.Fatalf("StaticChanges = %v, want %v (max_object and routes[].cache are dynamic)", got, want)
	}
}

func TestLoadCache(t *testing.T) {
	path := writeFile(t, t.TempDir(), "h.yaml", baseYAML+`
state: {redis: {url: "redis://127.0.0.1:6379/0"}}
cache: {max_memory: 32MiB, max_object: 1048576, shared: true}
`)
	l := mustLoad(t, LoadOptions{File: path})
	c := l.Config
	if c.Cache.MaxMemoryBytes() != 32<<20 || c.Cache.MaxObjectBytes() != 1<<20 || !c.Cache.Shared {
		t.Fatalf("cache = %+v", c.Cache)
	}
	path = writeFile(t, t.TempDir(), "h.yaml", `listeners: [{name: http, address: "127.0.0.1:0"}]
upstreams: {web: {targets: [{address: "127.0.0.1:9"}]}}
routes: [{match: {}, upstream: web, cache: {enabled: true, default_ttl: 30s, key: {include_query: false, headers: [Accept-Language]}}}]
`)
	rc := mustLoad(t, LoadOptions{File: path}).Config.Routes[0].Cache
	if rc == nil || !rc.Enabled || rc.DefaultTTL != 30*time.Second || rc.Key.QueryInKey() || !slices.Equal(rc.Key.Headers, []string{"Accept-Language"}) {
		t.Fatalf("route cache = %+v", rc)
	}
}
