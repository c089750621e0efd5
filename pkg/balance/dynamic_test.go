package balance

import (
	"log/slog"
	"net/netip"
	"testing"

	"github.com/handoff-proxy/handoff/pkg/dnstest"
	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// TestSelectFollowsResolvedTargets: every strategy over a pool whose
// targets come from DNS picks from the current list, and from nothing
// while an SRV record has not been looked up yet.
func TestSelectFollowsResolvedTargets(t *testing.T) {
	for _, strategy := range Strategies() {
		t.Run(strategy, func(t *testing.T) {
			dns := dnstest.New(t)
			dns.SetSRV("_http._tcp.svc.test", dnstest.SRV{Priority: 1, Weight: 1, Port: 8001, Target: "a.svc.test"})
			dns.SetAddrs("a.svc.test", "10.0.0.1")
			dns.SetAddrs("b.svc.test", "10.0.0.2", "10.0.0.3")
			p, err := upstream.NewRegistry().NewPool("svc", upstream.PoolSpec{
				Targets:  []upstream.TargetSpec{{SRV: "_http._tcp.svc.test"}},
				Resolver: dns.Addr,
			})
			if err != nil {
				t.Fatal(err)
			}
			s, err := New(p, strategy, "", Options{})
			if err != nil {
				t.Fatalf("New on a pool with nothing resolved yet: %v", err)
			}
			k := Key{Client: netip.MustParseAddr("192.0.2.1")}
			if got := s.Select(k, nil); got != nil {
				t.Fatalf("Select before the first lookup = %s, want nil", got.Address)
			}
			log := slog.New(slog.DiscardHandler)
			if err := p.Resolve(t.Context(), log); err != nil {
				t.Fatal(err)
			}
			if got := s.Select(k, nil); got == nil || got.Address != "10.0.0.1:8001" {
				t.Fatalf("Select = %v, want 10.0.0.1:8001", got)
			}
			dns.SetSRV("_http._tcp.svc.test", dnstest.SRV{Priority: 1, Weight: 1, Port: 9000, Target: "b.svc.test"})
			if err := p.Resolve(t.Context(), log); err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for range 200 {
				got := s.Select(Key{Client: netip.AddrFrom4([4]byte{192, 0, 2, byte(len(seen))})}, nil)
				if got == nil {
					t.Fatal("Select = nil after the change")
				}
				seen[got.Address] = true
			}
			if seen["10.0.0.1:8001"] || !(seen["10.0.0.2:9000"] || seen["10.0.0.3:9000"]) {
				t.Fatalf("picked %v after DNS moved to 10.0.0.2-3:9000", seen)
			}
		})
	}
}
