package upstream

import (
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseAddress(t *testing.T) {
	tests := []struct {
		name, in, want, wantErr string
	}{
		{name: "bare host port is http", in: "127.0.0.1:9000", want: "http://127.0.0.1:9000"},
		{name: "http scheme", in: "http://backend:80", want: "http://backend:80"},
		{name: "https default port", in: "https://origin.example.com", want: "https://origin.example.com:443"},
		{name: "http default port", in: "http://origin.example.com", want: "http://origin.example.com:80"},
		{name: "h2c", in: "h2c://10.0.0.1:8080", want: "h2c://10.0.0.1:8080"},
		{name: "ipv6", in: "[::1]:9000", want: "http://[::1]:9000"},
		{name: "ipv6 https default port", in: "https://[::1]", want: "https://[::1]:443"},
		{name: "trailing slash allowed", in: "http://a:1/", want: "http://a:1"},
		{name: "empty", in: "", wantErr: "empty"},
		{name: "bad host name", in: "bad!host:80", wantErr: "not allowed in a host name"},
		{name: "port zero", in: "a:0", wantErr: "from 1 to 65535"},
		{name: "port range", in: "a:65536", wantErr: "from 1 to 65535"},
		{name: "empty port", in: "http://a:", wantErr: "empty port"},
		{name: "bad scheme", in: "ftp://a:1", wantErr: "scheme"},
		{name: "path", in: "http://a:1/x", wantErr: "only scheme://host"},
		{name: "query", in: "http://a:1?x=1", wantErr: "only scheme://host"},
		{name: "userinfo", in: "http://u:p@a:1", wantErr: "only scheme://host"},
		{name: "no host", in: "http://:80", wantErr: "no host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := ParseAddress(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseAddress(%q) = %v, %v; want error containing %q", tt.in, u, err, tt.wantErr)
				}
				return
			}
			if err != nil || u.String() != tt.want {
				t.Fatalf("ParseAddress(%q) = %v, %v; want %s", tt.in, u, err, tt.want)
			}
		})
	}
}

func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"127.0.0.1:9000", "https://a", "h2c://[::1]:1", "http://u@h:1/p?q#f", "", "::", "http://[::1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseAddress(s)
		if err != nil {
			return
		}
		// A parsed address always has a known scheme and an explicit port,
		// and parsing its own string form gives it back.
		if u.Port() == "" || u.Hostname() == "" {
			t.Fatalf("ParseAddress(%q) = %v without host or port", s, u)
		}
		again, err := ParseAddress(u.String())
		if err != nil || again.String() != u.String() {
			t.Fatalf("round trip of %q: %v -> %v, %v", s, u, again, err)
		}
	})
}

func pool(t *testing.T, r *Registry, addrs ...string) *Pool {
	t.Helper()
	var spec PoolSpec
	for _, a := range addrs {
		spec.Targets = append(spec.Targets, TargetSpec{Address: a})
	}
	p, err := r.NewPool("web", spec)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestStateSurvivesReload: a reload that keeps an address keeps its
// in-flight count and ejection; Retain forgets removed addresses.
func TestStateSurvivesReload(t *testing.T) {
	r := NewRegistry()
	now := time.Unix(1000, 0)
	p1 := pool(t, r, "127.0.0.1:1", "127.0.0.1:2")
	release := p1.Targets()[0].Acquire()
	p1.Targets()[1].MarkFailed(now, 10*time.Second)

	// The same address spelled with a scheme is the same target.
	p2 := pool(t, r, "http://127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3")
	if got := p2.Targets()[0].InFlight(); got != 1 {
		t.Errorf("in-flight after reload = %d, want 1", got)
	}
	if p2.Targets()[1].Available(now.Add(5 * time.Second)) {
		t.Errorf("ejection lost across reload")
	}
	if !p2.Targets()[1].Available(now.Add(10 * time.Second)) {
		t.Errorf("ejection did not expire after fail_timeout")
	}
	if h := p2.Healthy(now); h != 2 {
		t.Errorf("Healthy = %d, want 2", h)
	}
	release()
	release() // idempotent
	if got := p2.Targets()[0].InFlight(); got != 0 {
		t.Errorf("in-flight after double release = %d, want 0", got)
	}

	r.Retain([]*Pool{pool(t, r, "127.0.0.1:3")})
	p3 := pool(t, r, "127.0.0.1:2")
	if !p3.Targets()[0].Available(now) {
		t.Errorf("state of a removed address survived Retain")
	}
	snap := p2.Targets()[0].Snapshot(now)
	if snap.Requests != 1 || !snap.Healthy || snap.Weight != 1 {
		t.Errorf("snapshot = %+v", snap)
	}
}

func TestNewPoolRejectsBadAddress(t *testing.T) {
	_, err := NewRegistry().NewPool("web", PoolSpec{Targets: []TargetSpec{{Address: "ftp://x:1"}}})
	if err == nil || !strings.Contains(err.Error(), `upstream "web" target 0`) {
		t.Fatalf("err = %v", err)
	}
}

// TestTryAcquire: the cap holds under concurrent acquirers, HasRoom
// follows it, and zero means unlimited.
func TestTryAcquire(t *testing.T) {
	tests := []struct {
		name     string
		maxConns int
		tries    int
		wantOK   int
	}{
		{name: "unlimited", maxConns: 0, tries: 100, wantOK: 100},
		{name: "capped", maxConns: 7, tries: 100, wantOK: 7},
		{name: "negative is unlimited", maxConns: -1, tries: 10, wantOK: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewRegistry().NewPool("web", PoolSpec{Targets: []TargetSpec{{Address: "127.0.0.1:1", MaxConns: tt.maxConns}}})
			if err != nil {
				t.Fatal(err)
			}
			tg := p.Targets()[0]
			var (
				mu       sync.Mutex
				releases []func()
				wg       sync.WaitGroup
			)
			for range tt.tries {
				wg.Go(func() {
					if rel, ok := tg.TryAcquire(); ok {
						mu.Lock()
						releases = append(releases, rel)
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if len(releases) != tt.wantOK || tg.InFlight() != int64(tt.wantOK) {
				t.Fatalf("acquired %d (in flight %d), want %d", len(releases), tg.InFlight(), tt.wantOK)
			}
			if tt.maxConns > 0 && tg.HasRoom() {
				t.Errorf("HasRoom at the cap")
			}
			releases[0]()
			if !tg.HasRoom() {
				t.Errorf("no room after a release")
			}
			if _, ok := tg.TryAcquire(); !ok {
				t.Errorf("TryAcquire failed with room")
			}
		})
	}
}
