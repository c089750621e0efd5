package health

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/dnstest"
	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// TestCheckerFollowsResolvedTargets: a target DNS adds is probed (and
// judged) like a configured one, and a report about a target DNS removed
// (a request that was in flight then) is dropped.
func TestCheckerFollowsResolvedTargets(t *testing.T) {
	up, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	go func() {
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := up.Addr().(*net.TCPAddr).Port
	dns := dnstest.New(t)
	dns.SetAddrs("app.test", "127.0.0.2")
	p, err := upstream.NewRegistry().NewPool("p", upstream.PoolSpec{
		Targets:  []upstream.TargetSpec{{Address: net.JoinHostPort("app.test", strconv.Itoa(port))}},
		Resolver: dns.Addr,
	})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	if err := p.Resolve(t.Context(), log); err != nil {
		t.Fatal(err)
	}
	c := New(Options{Upstream: "p", Pool: p, FailTimeout: time.Minute, Active: &ActiveSpec{
		ProbeSpec: ProbeSpec{Type: ProbeTCP, Timeout: time.Second}, Interval: 20 * time.Millisecond,
		Thresholds: Thresholds{Healthy: 1, Unhealthy: 1},
	}})
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	old := p.Targets()[0]
	// 127.0.0.3 listens on nothing: its probes fail.
	dns.SetAddrs("app.test", "127.0.0.3")
	if err := p.Resolve(t.Context(), log); err != nil {
		t.Fatal(err)
	}
	added := p.Targets()[0]
	if added == old {
		t.Fatal("the pool did not follow DNS")
	}
	deadline := time.Now().Add(5 * time.Second)
	for !added.ActiveDown() {
		if time.Now().After(deadline) {
			t.Fatal("the target DNS added was never probed")
		}
		time.Sleep(10 * time.Millisecond) // the probes use real sockets
	}
	c.Report(old, Result{Outcome: ConnectFailed})
	if !old.Available(time.Now()) {
		t.Error("a report about a removed target ejected it")
	}
}
