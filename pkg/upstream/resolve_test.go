package upstream

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/dnstest"
	"github.com/handoff-proxy/handoff/pkg/handofftest"
)

type logBuf = handofftest.Buffer

func newLog() (*slog.Logger, *logBuf) {
	b := &logBuf{}
	return slog.New(slog.NewTextHandler(b, nil)), b
}

func addrsOf(p *Pool) string {
	var out []string
	for _, t := range p.Targets() {
		out = append(out, t.Address)
	}
	return strings.Join(out, " ")
}

func resolvingPool(t *testing.T, srv *dnstest.Server, targets ...TargetSpec) *Pool {
	t.Helper()
	p, err := NewRegistry().NewPool("app", PoolSpec{Targets: targets, Resolver: srv.Addr, ResolveEvery: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Resolving() {
		t.Fatal("pool with a host name target is not Resolving")
	}
	return p
}

func TestResolveFollowsAddressRecords(t *testing.T) {
	srv := dnstest.New(t)
	srv.SetAddrs("app.test", "127.0.0.2", "127.0.0.3")
	log, _ := newLog()
	p := resolvingPool(t, srv, TargetSpec{Address: "app.test:8080", Weight: 3, MaxConns: 7}, TargetSpec{Address: "127.0.0.9:80"})
	if got := addrsOf(p); got != "app.test:8080 127.0.0.9:80" {
		t.Fatalf("before the first lookup: %s", got)
	}
	if err := p.Resolve(t.Context(), log); err != nil {
		t.Fatal(err)
	}
	if got := addrsOf(p); got != "127.0.0.2:8080 127.0.0.3:8080 127.0.0.9:80" {
		t.Fatalf("after the first lookup: %s", got)
	}
	kept := p.Targets()[1]
	if kept.Weight != 3 || kept.MaxConns != 7 || kept.URL.String() != "http://127.0.0.3:8080" {
		t.Fatalf("resolved target %+v: want the configured weight and cap", kept)
	}
	first := p.Targets()
	srv.SetAddrs("app.test", "127.0.0.3", "127.0.0.4", "::1")
	if err := p.Resolve(t.Context(), log); err != nil {
		t.Fatal(err)
	}
	if got := addrsOf(p); got != "127.0.0.3:8080 127.0.0.4:8080 [::1]:8080 127.0.0.9:80" {
		t.Fatalf("after the change: %s", got)
	}
	if p.Targets()[0] != kept {
		t.Error("an address DNS still returns got a new Target; its selector and checker state would start over")
	}
	if first[0].Address != "127.0.0.2:8080" {
		t.Error("a published list changed after the fact")
	}
	// An unchanged answer publishes nothing new.
	cur := p.Targets()
	if err := p.Resolve(t.Context(), log); err != nil {
		t.Fatal(err)
	}
	if &p.Targets()[0] != &cur[0] {
		t.Error("an unchanged answer published a new list")
	}
}

func TestResolveKeepsLastGoodTargets(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(*dnstest.Server)
	}{
		{name: "servfail", break_: func(s *dnstest.Server) { s.SetMode(dnstest.ServFail) }},
		{name: "timeout", break_: func(s *dnstest.Server) { s.SetMode(dnstest.Drop) }},
		{name: "nxdomain", break_: func(s *dnstest.Server) { s.SetAddrs("app.test") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := dnstest.New(t)
			srv.SetAddrs("app.test", "127.0.0.2")
			log, logs := newLog()
			p := resolvingPool(t, srv, TargetSpec{Address: "h2c://app.test:9000"})
			if err := p.Resolve(t.Context(), log); err != nil {
				t.Fatal(err)
			}
			tt.break_(srv)
			for range 3 {
				if err := p.Resolve(t.Context(), log); err == nil {
					t.Fatal("Resolve against a broken server reported no error")
				}
				if got := addrsOf(p); got != "h2c://127.0.0.2:9000" {
					t.Fatalf("targets after a failed lookup: %s", got)
				}
			}
			if n := logs.Count("lookup failed"); n != 1 {
				t.Errorf("failure logged %d times in 3 rounds, want once", n)
			}
			srv.SetMode(dnstest.Answer)
			srv.SetAddrs("app.test", "127.0.0.5")
			for range 2 {
				if err := p.Resolve(t.Context(), log); err != nil {
					t.Fatal(err)
				}
			}
			if got := addrsOf(p); got != "h2c://127.0.0.5:9000" {
				t.Fatalf("targets after recovery: %s", got)
			}
			if n := logs.Count("lookup recovered"); n != 1 {
				t.Errorf("recovery logged %d times, want once", n)
			}
		})
	}
}

func TestResolveSRV(t *testing.T) {
	srv := dnstest.New(t)
	srv.SetSRV("_http._tcp.svc.test",
		dnstest.SRV{Priority: 10, Weight: 5, Port: 8001, Target: "a.svc.test"},
		dnstest.SRV{Priority: 10, Weight: 0, Port: 8002, Target: "b.svc.test"},
		dnstest.SRV{Priority: 20, Weight: 9, Port: 8003, Target: "c.svc.test"}, // backup: not used
	)
	srv.SetAddrs("a.svc.test", "127.0.0.2")
	srv.SetAddrs("b.svc.test", "127.0.0.3")
	srv.SetAddrs("c.svc.test", "127.0.0.4")
	log, _ := newLog()
	p := resolvingPool(t, srv, TargetSpec{SRV: "_http._tcp.svc.test", Weight: 100})
	if n := len(p.Targets()); n != 0 {
		t.Fatalf("an SRV target has %d targets before its first lookup, want none", n)
	}
	if err := p.Resolve(t.Context(), log); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, tg := range p.Targets() {
		got[tg.Address] = tg.Weight
	}
	want := map[string]int{"127.0.0.2:8001": 5, "127.0.0.3:8002": 1}
	if len(got) != len(want) || got["127.0.0.2:8001"] != 5 || got["127.0.0.3:8002"] != 1 {
		t.Fatalf("targets = %v, want %v", got, want)
	}
	srv.SetSRV("_http._tcp.svc.test", dnstest.SRV{Priority: 1, Weight: 1, Port: 9001, Target: "c.svc.test"})
	if err := p.Resolve(t.Context(), log); err != nil {
		t.Fatal(err)
	}
	if got := addrsOf(p); got != "127.0.0.4:9001" {
		t.Fatalf("after the SRV change: %s", got)
	}
}

func TestIPLiteralsAndHTTPSNamesAreNotResolved(t *testing.T) {
	tests := []struct {
		name string
		spec PoolSpec
		want bool
	}{
		{name: "ip literals", spec: PoolSpec{Targets: []TargetSpec{{Address: "127.0.0.1:1"}, {Address: "https://[::1]"}}}},
		{name: "https name without server_name", spec: PoolSpec{Targets: []TargetSpec{{Address: "https://app.test"}}}},
		{name: "https name with server_name", spec: PoolSpec{Targets: []TargetSpec{{Address: "https://app.test"}}, TLSServerName: "app.test"}, want: true},
		{name: "http name", spec: PoolSpec{Targets: []TargetSpec{{Address: "app.test:80"}}}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewRegistry().NewPool("x", tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if p.Resolving() != tt.want {
				t.Fatalf("Resolving = %v, want %v", p.Resolving(), tt.want)
			}
			// RunResolver on a pool that resolves nothing returns at once.
			if !tt.want {
				ctx, cancel := context.WithCancel(t.Context())
				cancel()
				p.RunResolver(ctx, slog.New(slog.DiscardHandler))
			}
		})
	}
}

func TestRunResolverPicksUpChanges(t *testing.T) {
	srv := dnstest.New(t)
	srv.SetAddrs("app.test", "127.0.0.2")
	log, _ := newLog()
	p, err := NewRegistry().NewPool("app", PoolSpec{Targets: []TargetSpec{{Address: "app.test:80"}}, Resolver: srv.Addr, ResolveEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); p.RunResolver(ctx, log) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(5 * time.Second)
	for addrsOf(p) != "127.0.0.2:80" {
		if time.Now().After(deadline) {
			t.Fatalf("targets never followed DNS: %s", addrsOf(p))
		}
		time.Sleep(5 * time.Millisecond) // polling a real socket's effect; the interval itself is not timed
	}
}

func TestParseSRVAndResolver(t *testing.T) {
	tests := []struct {
		name, in, want, wantErr string
		resolver                bool
	}{
		{name: "srv", in: "_http._tcp.svc.example", want: "http _http._tcp.svc.example"},
		{name: "srv scheme", in: "h2c://_grpc._tcp.svc.example.", want: "h2c _grpc._tcp.svc.example."},
		{name: "srv bad scheme", in: "ftp://_a._tcp.x", wantErr: "scheme"},
		{name: "srv not underscore", in: "svc.example", wantErr: "_service._proto"},
		{name: "srv bad name", in: "_a._tcp.bad!", wantErr: "not allowed"},
		{name: "resolver ip", in: "127.0.0.1", want: "127.0.0.1:53", resolver: true},
		{name: "resolver port", in: "127.0.0.1:5353", want: "127.0.0.1:5353", resolver: true},
		{name: "resolver v6", in: "[::1]:5353", want: "[::1]:5353", resolver: true},
		{name: "resolver v6 bare", in: "::1", want: "[::1]:53", resolver: true},
		{name: "resolver name", in: "dns.example:53", wantErr: "IP address", resolver: true},
		{name: "resolver port zero", in: "127.0.0.1:0", wantErr: "IP address", resolver: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			var err error
			if tt.resolver {
				got, err = ParseResolver(tt.in)
			} else {
				var scheme, name string
				scheme, name, err = ParseSRV(tt.in)
				got = scheme + " " + name
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %q, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func FuzzParseSRV(f *testing.F) {
	for _, s := range []string{"_http._tcp.a", "https://_x._tcp.a.", "", "://", "_", "h2c://_a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		scheme, name, err := ParseSRV(s)
		if err != nil {
			return
		}
		if again, n2, err := ParseSRV(scheme + "://" + name); err != nil || again != scheme || n2 != name {
			t.Fatalf("ParseSRV(%q) = %q %q, not stable: %q %q %v", s, scheme, name, again, n2, err)
		}
	})
}

func FuzzParseResolver(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "[::1]:53", "::1", "a:1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseResolver(s)
		if err != nil {
			return
		}
		if b, err := ParseResolver(a); err != nil || b != a {
			t.Fatalf("ParseResolver(%q) = %q, not stable: %q %v", s, a, b, err)
		}
	})
}
