package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/handoff-proxy/handoff/pkg/admin"
	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/state"
	"github.com/handoff-proxy/handoff/pkg/state/memory"
	stateredis "github.com/handoff-proxy/handoff/pkg/state/redis"
	"github.com/handoff-proxy/handoff/pkg/state/statetest"
)

// waitFleet polls h until it lists want members or 5s pass.
func waitFleet(t *testing.T, h *heartbeat, want int) fleetView {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		v := h.view()
		if len(v.members) == want {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("fleet %+v (err %v), want %d members", v.members, v.err, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func newBeat(store state.Fleet, id string, gen uint64) *heartbeat {
	return &heartbeat{store: store, interval: 20 * time.Millisecond, ttl: time.Second, now: time.Now,
		log: slog.New(slog.DiscardHandler),
		self: func() state.Member {
			return state.Member{ID: id, Version: "test", Beat: time.Now(), Generation: gen}
		}}
}

// TestHeartbeatFleet: two members on one backend see each other, and one
// that stops drops out once its ttl passes.
func TestHeartbeatFleet(t *testing.T) {
	tests := []struct {
		name   string
		stores func(t *testing.T) (a, b state.Store)
	}{
		{name: "memory", stores: func(t *testing.T) (state.Store, state.Store) {
			s := statetest.StartStore(t, memory.New(memory.Options{}))
			return s, s
		}},
		{name: "redis", stores: func(t *testing.T) (state.Store, state.Store) {
			rd := statetest.StartRedis(t)
			mk := func() state.Store {
				c := goredis.NewClient(&goredis.Options{Addr: rd.Addr})
				t.Cleanup(func() { c.Close() })
				return statetest.StartStore(t, stateredis.NewStore(c, stateredis.Options{Prefix: "fleettest"}))
			}
			return mk(), mk()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sa, sb := tt.stores(t)
			a, b := newBeat(sa, "host-a:1", 3), newBeat(sb, "host-b:2", 0)
			a.Start(context.Background())
			b.Start(context.Background())
			defer a.Close()
			v := waitFleet(t, b, 2)
			if v.members[0].ID != "host-a:1" || v.members[0].Generation != 3 || v.members[1].ID != "host-b:2" {
				t.Fatalf("members %+v", v.members)
			}
			if v.err != nil || v.rtt <= 0 || v.at.IsZero() {
				t.Fatalf("view %+v: want a measured round trip", v)
			}
			b.Close()
			waitFleet(t, a, 1)
		})
	}
}

// TestOverviewFleet: a running server lists itself in the fleet, marked,
// and reports its listeners' source and the state round trip.
func TestOverviewFleet(t *testing.T) {
	cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, "127.0.0.1:9")
	r := serve(t, cfg, nil)
	deadline := time.Now().Add(5 * time.Second)
	for {
		var ov admin.Overview
		w := &recorder{h: http.Header{}}
		req := mustReq(t, admin.PathOverview)
		req.Host = "127.0.0.1"
		admin.New(r.srv.dashboardOptions(admin.Options{})).ServeHTTP(w, req)
		if err := json.Unmarshal(w.b, &ov); err != nil {
			t.Fatalf("overview %d %q: %v", w.code, w.b, err)
		}
		if len(ov.Fleet) == 1 {
			m := ov.Fleet[0]
			if !m.Self || m.ID != r.srv.holder || m.LastBeat.IsZero() || len(m.Listeners) != 1 {
				t.Fatalf("fleet %+v", ov.Fleet)
			}
			if ov.Listeners[0].Source != admin.SourceSelf || ov.State.LastBeat.IsZero() {
				t.Fatalf("listeners %+v state %+v", ov.Listeners, ov.State)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("fleet %+v, want this process", ov.Fleet)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type recorder struct {
	h    http.Header
	b    []byte
	code int
}

func (r *recorder) Header() http.Header         { return r.h }
func (r *recorder) Write(p []byte) (int, error) { r.b = append(r.b, p...); return len(p), nil }
func (r *recorder) WriteHeader(c int)           { r.code = c }

// TestOverviewRateLimitedKeys: the keys a rate limit denies show in the
// overview, a header key only as a digest.
func TestOverviewRateLimitedKeys(t *testing.T) {
	be := sawBackend(t)
	cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, hostOf(be))
	cfg.Routes = []config.Route{
		{Name: "by-ip", Match: config.Match{PathPrefix: "/ip"}, Upstream: "web",
			RateLimit: &config.RateLimit{Requests: 1, Per: time.Hour}},
		{Name: "by-key", Match: config.Match{PathPrefix: "/key"}, Upstream: "web",
			RateLimit: &config.RateLimit{Requests: 1, Per: time.Hour, Key: "header:X-Api-Key"}},
		{Name: "default", Upstream: "web"},
	}
	r := serve(t, cfg, nil)
	base := "http://" + r.addrs["http"]
	for range 4 {
		pget(t, base+"/ip")
	}
	for range 2 {
		pget(t, base+"/key", "X-Api-Key", "secret-token")
	}
	got := r.srv.rateLimitInfos()
	if len(got) != 2 || got[0].Route != "by-ip" || got[0].Key != "127.0.0.1" || got[0].Denied != 3 ||
		got[1].Route != "by-key" || got[1].Denied != 1 || !strings.HasPrefix(got[1].Key, "X-Api-Key #") ||
		strings.Contains(got[1].Key, "secret") {
		t.Fatalf("rate-limited keys %+v", got)
	}
}
