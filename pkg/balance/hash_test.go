package balance

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"strings"
	"testing"

	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// hashPool builds a hash pool over the given addresses and weights, on a
// fresh registry, keyed by header X-Key.
func hashPool(t testing.TB, addrs []string, weights []int) (*upstream.Pool, reqSelector) {
	t.Helper()
	spec := upstream.PoolSpec{Strategy: StrategyHash}
	for i, a := range addrs {
		spec.Targets = append(spec.Targets, upstream.TargetSpec{Address: a, Weight: weights[i]})
	}
	p, err := upstream.NewRegistry().NewPool("hash", spec)
	if err != nil {
		t.Fatalf("new pool: %v", err)
	}
	return p, mustNew(t, &testPool{Pool: p, hashKey: "header:X-Key"}, Options{})
}

func addrs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = addr(i)
	}
	return out
}

func ones(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = 1
	}
	return out
}

// assign maps keys 0..n-1 to the address they hash to.
func assign(t testing.TB, s reqSelector, n int, eligible func(*upstream.Target) bool) []string {
	t.Helper()
	out := make([]string, n)
	r := newRequest()
	for i := range out {
		r.Header.Set("X-Key", fmt.Sprintf("user-%d", i))
		tg := s.Select(r, eligible)
		if tg == nil {
			t.Fatalf("Select returned nil")
			return nil // testing.TB: staticcheck cannot see that Fatalf exits
		}
		out[i] = tg.Address
	}
	return out
}

func TestHashSameKeySameTarget(t *testing.T) {
	_, s := hashPool(t, addrs(5), ones(5))
	first := assign(t, s, 1000, nil)
	for round := range 3 {
		again := assign(t, s, 1000, nil)
		for i := range first {
			if again[i] != first[i] {
				t.Fatalf("round %d: key %d moved %s → %s", round, i, first[i], again[i])
			}
		}
	}
}

// TestHashStableAcrossSelectors: another worker, a restarted process or a
// reloaded config builds a new registry and selector, maybe with the
// targets listed in another order; every key must stay where it was.
func TestHashStableAcrossSelectors(t *testing.T) {
	as, ws := addrs(5), []int{1, 2, 1, 3, 1}
	_, s1 := hashPool(t, as, ws)
	want := assign(t, s1, 2000, nil)

	rev := make([]string, len(as))
	revW := make([]int, len(ws))
	for i := range as {
		rev[len(as)-1-i] = as[i]
		revW[len(ws)-1-i] = ws[i]
	}
	_, s2 := hashPool(t, rev, revW)
	got := assign(t, s2, 2000, nil)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("key %d: %s in the first selector, %s in the second", i, want[i], got[i])
		}
	}
}

// TestHashGoldenMapping pins the mapping itself. During a handoff upgrade
// the old and the new binary serve side by side: if a release changed the
// hash, sessions would be split between them. Change these values only
// with a release note.
func TestHashGoldenMapping(t *testing.T) {
	_, s := hashPool(t, addrs(4), []int{1, 1, 2, 1})
	golden := []struct{ key, target string }{
		{"alice", "10.0.0.2:80"},
		{"bob", "10.0.0.3:80"},
		{"carol", "10.0.0.1:80"},
		{"dave", "10.0.0.3:80"},
		{"erin", "10.0.0.4:80"},
		{"frank", "10.0.0.4:80"},
		{"grace", "10.0.0.3:80"},
		{"heidi", "10.0.0.4:80"},
		{"ivan", "10.0.0.1:80"},
		{"judy", "10.0.0.1:80"},
	}
	r := newRequest()
	for _, g := range golden {
		r.Header.Set("X-Key", g.key)
		if got := s.Select(r, nil).Address; got != g.target {
			t.Errorf("key %q → %s, want %s", g.key, got, g.target)
		}
	}
}

func TestHashAddingTargetMovesAboutOneNth(t *testing.T) {
	const keys = 20_000
	_, s4 := hashPool(t, addrs(4), ones(4))
	_, s5 := hashPool(t, addrs(5), ones(5))
	before, after := assign(t, s4, keys, nil), assign(t, s5, keys, nil)
	moved := 0
	for i := range before {
		if before[i] == after[i] {
			continue
		}
		moved++
		if after[i] != addr(4) {
			t.Fatalf("key %d moved %s → %s, want only moves to the new target", i, before[i], after[i])
		}
	}
	frac, n := float64(moved)/keys, 5.0
	if frac < 0.5/n || frac > 1.5/n {
		t.Fatalf("moved %.3f of keys, want about 1/%v (%.2f..%.2f)", frac, n, 0.5/n, 1.5/n)
	}
	t.Logf("adding a 5th target moved %.3f of keys", frac)
}

func TestHashRemovingTargetMovesOnlyItsKeys(t *testing.T) {
	const keys = 20_000
	_, s5 := hashPool(t, addrs(5), ones(5))
	removed := addr(2)
	_, s4 := hashPool(t, []string{addr(0), addr(1), addr(3), addr(4)}, ones(4))
	before, after := assign(t, s5, keys, nil), assign(t, s4, keys, nil)
	spread := make(map[string]int)
	for i := range before {
		if before[i] == removed {
			spread[after[i]]++
			continue
		}
		if after[i] != before[i] {
			t.Fatalf("key %d on %s moved to %s though its target stayed", i, before[i], after[i])
		}
	}
	// The orphans are shared by all remaining targets, not dumped on one.
	for _, a := range []string{addr(0), addr(1), addr(3), addr(4)} {
		if spread[a] < keys/5/4/2 {
			t.Errorf("%s took %d orphaned keys, want about a quarter of them: %v", a, spread[a], spread)
		}
	}
}

// TestHashIneligibleMovesOnlyItsKeys: an ejected target's keys go
// elsewhere while it is out and come back when it returns; nothing else
// moves.
func TestHashIneligibleMovesOnlyItsKeys(t *testing.T) {
	const keys = 10_000
	p, s := hashPool(t, addrs(4), []int{1, 2, 1, 1})
	out := p.Targets()[1]
	base := assign(t, s, keys, nil)
	during := assign(t, s, keys, except(out))
	for i := range base {
		switch {
		case during[i] == out.Address:
			t.Fatalf("key %d sent to ineligible %s", i, out.Address)
		case base[i] != out.Address && during[i] != base[i]:
			t.Fatalf("key %d moved %s → %s though its target stayed eligible", i, base[i], during[i])
		}
	}
	back := assign(t, s, keys, nil)
	for i := range base {
		if back[i] != base[i] {
			t.Fatalf("key %d did not return: %s → %s", i, base[i], back[i])
		}
	}
}

func TestHashShares(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
	}{
		{name: "uniform", weights: ones(4)},
		{name: "3,1", weights: []int{3, 1}},
		{name: "5,1,1", weights: []int{5, 1, 1}},
		{name: "1,2,3,4", weights: []int{1, 2, 3, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, s := hashPool(t, addrs(len(tt.weights)), tt.weights)
			const keys = 50_000
			got := make(map[string]int)
			for _, a := range assign(t, s, keys, nil) {
				got[a]++
			}
			assertShares(t, got, keys, weightShares(tt.weights...), 0.01)
		})
	}
}

func TestHashKeySources(t *testing.T) {
	type req struct {
		remote string
		host   string
		header map[string]string
	}
	tests := []struct {
		name    string
		hashKey string
		trusted func(*http.Request) string
		a, b    req
		same    bool // whether a and b must map to the same target
	}{
		{
			name: "client ip ignores the port",
			a:    req{remote: "192.0.2.1:1000"}, b: req{remote: "192.0.2.1:2000"}, same: true,
		},
		{
			name: "client ip ipv6",
			a:    req{remote: "[2001:db8::1]:1000"}, b: req{remote: "[2001:db8::1]:2000"}, same: true,
		},
		{
			name:    "trusted client ip wins over remote addr",
			trusted: func(r *http.Request) string { return r.Header.Get("X-Real-Ip") },
			a:       req{remote: "10.9.9.9:1", header: map[string]string{"X-Real-Ip": "198.51.100.7"}},
			b:       req{remote: "10.8.8.8:2", header: map[string]string{"X-Real-Ip": "198.51.100.7"}},
			same:    true,
		},
		{
			name:    "header key",
			hashKey: "header:x-user",
			a:       req{remote: "192.0.2.1:1", header: map[string]string{"X-User": "alice"}},
			b:       req{remote: "192.0.2.2:1", header: map[string]string{"X-User": "alice"}},
			same:    true,
		},
		{
			name:    "host header key",
			hashKey: "header:Host",
			a:       req{remote: "192.0.2.1:1", host: "tenant-a.example"},
			b:       req{remote: "192.0.2.2:1", host: "tenant-a.example"},
			same:    true,
		},
		{
			name:    "cookie key",
			hashKey: "cookie:sid",
			a:       req{remote: "192.0.2.1:1", header: map[string]string{"Cookie": "x=1; sid=s-42"}},
			b:       req{remote: "192.0.2.2:1", header: map[string]string{"Cookie": `sid="s-42"`}},
			same:    true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, StrategyHash, tt.hashKey, ones(16)...)
			s := mustNew(t, p, Options{})
			s.clientIP = tt.trusted
			build := func(q req) *http.Request {
				r := newRequest()
				r.RemoteAddr = q.remote
				if q.host != "" {
					r.Host = q.host
				}
				for k, v := range q.header {
					r.Header.Set(k, v)
				}
				return r
			}
			ra, rb := build(tt.a), build(tt.b)
			for range 20 { // a hashed key is sticky; round robin would move
				ta, tb := s.Select(ra, nil), s.Select(rb, nil)
				if (ta == tb) != tt.same {
					t.Fatalf("a → %s, b → %s, same = %v, want %v", ta.Address, tb.Address, ta == tb, tt.same)
				}
			}
		})
	}
}

// TestHashMissingKeyFallsBackToRoundRobin: requests without the key are
// spread round robin, not all hashed onto one target.
func TestHashMissingKeyFallsBackToRoundRobin(t *testing.T) {
	tests := []struct {
		name    string
		hashKey string
		trusted func(*http.Request) string
		remote  string
		header  map[string]string
	}{
		{name: "no header", hashKey: "header:X-User", remote: "192.0.2.1:1"},
		{name: "empty header", hashKey: "header:X-User", remote: "192.0.2.1:1", header: map[string]string{"X-User": ""}},
		{name: "no cookie", hashKey: "cookie:sid", remote: "192.0.2.1:1", header: map[string]string{"Cookie": "other=1"}},
		{name: "unix socket peer", remote: "@"},
		{name: "empty trusted ip", trusted: func(*http.Request) string { return "" }, remote: "192.0.2.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, StrategyHash, tt.hashKey, ones(4)...)
			s := mustNew(t, p, Options{})
			s.clientIP = tt.trusted
			r := newRequest()
			r.RemoteAddr = tt.remote
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			seen := make(map[*upstream.Target]bool)
			for range 4 {
				seen[s.Select(r, nil)] = true
			}
			if len(seen) != 4 {
				t.Fatalf("4 keyless requests reached %d targets, want all 4 (round robin)", len(seen))
			}
		})
	}
}

func TestParseHashKey(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    HashKey
		wantErr bool
	}{
		{name: "empty is client ip", in: "", want: HashKey{Source: HashKeyClientIP}},
		{name: "client ip", in: "client_ip", want: HashKey{Source: HashKeyClientIP}},
		{name: "header canonicalized", in: "header:x-user-id", want: HashKey{Source: HashKeyHeader, Name: "X-User-Id"}},
		{name: "cookie keeps case", in: "cookie:SessionID", want: HashKey{Source: HashKeyCookie, Name: "SessionID"}},
		{name: "unknown source", in: "query:id", wantErr: true},
		{name: "source is case sensitive", in: "Header:X", wantErr: true},
		{name: "no name", in: "header:", wantErr: true},
		{name: "name with space", in: "header:X User", wantErr: true},
		{name: "name with colon", in: "cookie:a:b", wantErr: true},
		{name: "bare word", in: "ip", wantErr: true},
		{name: "client ip with name", in: "client_ip:x", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseHashKey(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidHashKey) {
					t.Fatalf("ParseHashKey(%q) = %v, %v; want ErrInvalidHashKey", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseHashKey(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}

func FuzzParseHashKey(f *testing.F) {
	for _, s := range []string{"", "client_ip", "header:X-User", "cookie:sid", "header:", "cookie:a b", "x:y:z", "header:Host"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseHashKey(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidHashKey) {
				t.Fatalf("error %v does not wrap ErrInvalidHashKey", err)
			}
			return
		}
		// A parsed key prints back to a string that parses to itself.
		again, err := ParseHashKey(k.String())
		if err != nil || again != k {
			t.Fatalf("ParseHashKey(%q) = %+v; reparsed %q = %+v, %v", s, k, k.String(), again, err)
		}
		switch k.Source {
		case HashKeyClientIP:
			if k.Name != "" {
				t.Fatalf("client_ip key with name %q", k.Name)
			}
		case HashKeyHeader:
			if k.Name != http.CanonicalHeaderKey(k.Name) {
				t.Fatalf("header name %q not canonical", k.Name)
			}
		case HashKeyCookie:
		default:
			t.Fatalf("unknown source %q", k.Source)
		}
		if k.Source != HashKeyClientIP && (k.Name == "" || strings.ContainsAny(k.Name, " :;\t")) {
			t.Fatalf("bad name %q", k.Name)
		}
	})
}

func TestFNV1aMatchesStdlib(t *testing.T) {
	for _, s := range []string{"", "a", "alice", "http://10.0.0.1:80", strings.Repeat("x", 1000), "\x00\xff"} {
		h := fnv.New64a()
		h.Write([]byte(s))
		if got, want := fnv1a(s), h.Sum64(); got != want {
			t.Errorf("fnv1a(%q) = %#x, want %#x", s, got, want)
		}
	}
}

func TestCookieValue(t *testing.T) {
	tests := []struct {
		name   string
		lines  []string
		cookie string
		want   string
		found  bool
	}{
		{name: "only cookie", lines: []string{"sid=abc"}, cookie: "sid", want: "abc", found: true},
		{name: "among others", lines: []string{"a=1; sid=abc; b=2"}, cookie: "sid", want: "abc", found: true},
		{name: "second line", lines: []string{"a=1", "sid=xyz"}, cookie: "sid", want: "xyz", found: true},
		{name: "quoted", lines: []string{`sid="abc"`}, cookie: "sid", want: "abc", found: true},
		{name: "first wins", lines: []string{"sid=1; sid=2"}, cookie: "sid", want: "1", found: true},
		{name: "invalid value skipped", lines: []string{`sid=a\b; sid=ok`}, cookie: "sid", want: "ok", found: true},
		{name: "empty value", lines: []string{"sid="}, cookie: "sid", want: "", found: true},
		{name: "name is case sensitive", lines: []string{"SID=abc"}, cookie: "sid"},
		{name: "prefix is not a match", lines: []string{"sidx=abc"}, cookie: "sid"},
		{name: "absent", lines: []string{"a=1"}, cookie: "sid"},
		{name: "no header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{"Cookie": tt.lines}
			got, found := cookieValue(h, tt.cookie)
			if got != tt.want || found != tt.found {
				t.Fatalf("cookieValue = %q, %v; want %q, %v", got, found, tt.want, tt.found)
			}
		})
	}
}

// FuzzCookieValue checks cookieValue against net/http's Request.Cookie,
// which it must agree with while not allocating.
func FuzzCookieValue(f *testing.F) {
	f.Add("a=1; sid=abc", "", "sid")
	f.Add(`sid="q"`, "sid=2", "sid")
	f.Add(" sid = x ;", "\tsid=y", "sid")
	f.Add(`sid=a\b; sid=c`, "", "sid")
	f.Add("=;;=; ", "sid", "sid")
	f.Add("a b=1", "a b=2", "a b")
	f.Fuzz(func(t *testing.T, line1, line2, name string) {
		h := http.Header{"Cookie": {line1, line2}}
		if strings.Count(line1+line2, ";") > 1000 {
			t.Skip("net/http drops all cookies past its cookie count limit")
		}
		got, found := cookieValue(h, name)
		r := &http.Request{Header: h}
		c, err := r.Cookie(name)
		switch {
		case err != nil && found:
			t.Fatalf("cookieValue found %q, net/http found none (%v)", got, err)
		case err == nil && !found:
			t.Fatalf("net/http found %q, cookieValue none", c.Value)
		case err == nil && got != c.Value:
			t.Fatalf("cookieValue = %q, net/http = %q", got, c.Value)
		}
	})
}

// TestHashClientIPIgnoresPort: every connection of a client comes from a
// new port; all must reach the client's one target, while different
// clients spread.
func TestHashClientIPIgnoresPort(t *testing.T) {
	p := newPool(t, StrategyHash, "", ones(8)...)
	s := mustNew(t, p, Options{})
	for _, ip := range []string{"192.0.2.1", "[2001:db8::7]"} {
		r := newRequest()
		var first *upstream.Target
		for port := 1000; port < 1100; port++ {
			r.RemoteAddr = fmt.Sprintf("%s:%d", ip, port)
			got := s.Select(r, nil)
			if first == nil {
				first = got
			}
			if got != first {
				t.Fatalf("%s: port %d → %s, port 1000 → %s", ip, port, got.Address, first.Address)
			}
		}
	}
	seen := make(map[*upstream.Target]bool)
	r := newRequest()
	for i := range 100 {
		r.RemoteAddr = fmt.Sprintf("198.51.100.%d:5555", i)
		seen[s.Select(r, nil)] = true
	}
	if len(seen) != 8 {
		t.Fatalf("100 clients reached %d of 8 targets", len(seen))
	}
}
