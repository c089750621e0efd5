package health

import (
	"context"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/upstream"
)

func pool(t *testing.T, addrs ...string) *upstream.Pool {
	t.Helper()
	spec := upstream.PoolSpec{}
	for _, a := range addrs {
		spec.Targets = append(spec.Targets, upstream.TargetSpec{Address: a})
	}
	p, err := upstream.NewRegistry().NewPool("p", spec)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func noJitter() float64 { return 0 }

func TestPassive(t *testing.T) {
	tests := []struct {
		name        string
		failTimeout time.Duration
		passive     PassiveSpec
		result      Result
		after       time.Duration
		available   bool
	}{
		{name: "connect failure ejects", failTimeout: 10 * time.Second, result: Result{Outcome: ConnectFailed}, after: 9 * time.Second, available: false},
		{name: "ejection ends after fail timeout", failTimeout: 10 * time.Second, result: Result{Outcome: ConnectFailed}, after: 10 * time.Second, available: true},
		{name: "timeout does not eject unless it counts", failTimeout: 10 * time.Second, result: Result{Outcome: Timeout}, available: true},
		{name: "timeout ejects when it counts", failTimeout: 10 * time.Second, passive: PassiveSpec{TimeoutCounts: true}, result: Result{Outcome: Timeout}, after: time.Second, available: false},
		{name: "5xx does not eject unless it counts", failTimeout: 10 * time.Second, result: Result{Outcome: Success, Status: 503}, available: true},
		{name: "5xx ejects when it counts", failTimeout: 10 * time.Second, passive: PassiveSpec{Status5xx: true}, result: Result{Outcome: Success, Status: 503}, after: time.Second, available: false},
		// nginx counts "error" (a reset or malformed response) against
		// max_fails like a failed connect.
		{name: "reset ejects", failTimeout: 10 * time.Second, result: Result{Outcome: Failed}, after: time.Second, available: false},
		{name: "base ejection overrides fail timeout", failTimeout: 10 * time.Second, passive: PassiveSpec{BaseEjection: 2 * time.Second}, result: Result{Outcome: ConnectFailed}, after: 2 * time.Second, available: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Unix(1_700_000_000, 0)
			p := pool(t, "127.0.0.1:1")
			c := New(Options{Upstream: "p", Pool: p, FailTimeout: tt.failTimeout, Passive: tt.passive, Now: func() time.Time { return now }, Rand: noJitter})
			if err := c.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			tg := p.Targets()[0]
			if !c.Available(tg) {
				t.Fatal("new target unavailable")
			}
			c.Report(tg, tt.result)
			now = now.Add(tt.after)
			if got := c.Available(tg); got != tt.available {
				t.Fatalf("Available after %v = %v, want %v", tt.after, got, tt.available)
			}
		})
	}
}

// TestPanicThreshold: below the threshold share of available targets,
// every target is available (Envoy); zero fails closed.
func TestPanicThreshold(t *testing.T) {
	tests := []struct {
		name      string
		threshold float64
		ejected   int // of 4 targets
		want      bool
	}{
		{name: "half healthy at 50%: no panic", threshold: 0.5, ejected: 2, want: false},
		{name: "quarter healthy at 50%: panic", threshold: 0.5, ejected: 3, want: true},
		{name: "none healthy at 50%: panic", threshold: 0.5, ejected: 4, want: true},
		{name: "none healthy at 0: fail closed", threshold: 0, ejected: 4, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Unix(1_700_000_000, 0)
			p := pool(t, "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4")
			c := New(Options{Upstream: "p", Pool: p, FailTimeout: time.Minute, PanicThreshold: tt.threshold, Now: func() time.Time { return now }, Rand: noJitter})
			for _, tg := range p.Targets()[:tt.ejected] {
				c.Report(tg, Result{Outcome: ConnectFailed})
			}
			if got := c.Available(p.Targets()[0]); got != tt.want {
				t.Fatalf("ejected target available = %v, want %v", got, tt.want)
			}
			if tt.ejected < 4 && !c.Available(p.Targets()[3]) {
				t.Fatal("healthy target unavailable")
			}
		})
	}
}

func TestReportDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector; make unit runs this without -race")
	}
	p := pool(t, "127.0.0.1:1", "127.0.0.1:2")
	c := New(Options{Upstream: "p", Pool: p, FailTimeout: time.Minute, PanicThreshold: 0.5})
	allocs := testing.AllocsPerRun(1000, func() {
		if c.Available(p.Targets()[0]) {
			c.Report(p.Targets()[0], Result{Outcome: Success, Status: 200})
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per request, want 0", allocs)
	}
}

func TestOutcomeString(t *testing.T) {
	for o, want := range map[Outcome]string{Success: "success", ConnectFailed: "connect_failed", Timeout: "timeout", Failed: "failed", 99: "unknown"} {
		if got := o.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", o, got, want)
		}
	}
}
