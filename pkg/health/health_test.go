package health

import (
	"context"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/upstream"
)

func target(t *testing.T) *upstream.Target {
	t.Helper()
	p, err := upstream.NewRegistry().NewPool("p", upstream.PoolSpec{Targets: []upstream.TargetSpec{{Address: "127.0.0.1:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	return p.Targets[0]
}

func TestPassive(t *testing.T) {
	tests := []struct {
		name        string
		failTimeout time.Duration
		result      Result
		after       time.Duration
		available   bool
	}{
		{name: "connect failure ejects", failTimeout: 10 * time.Second, result: Result{Outcome: ConnectFailed}, after: 9 * time.Second, available: false},
		{name: "ejection ends after fail timeout", failTimeout: 10 * time.Second, result: Result{Outcome: ConnectFailed}, after: 10 * time.Second, available: true},
		{name: "zero fail timeout never ejects", result: Result{Outcome: ConnectFailed}, available: true},
		{name: "timeout does not eject", failTimeout: 10 * time.Second, result: Result{Outcome: Timeout}, available: true},
		{name: "5xx does not eject", failTimeout: 10 * time.Second, result: Result{Outcome: Success, Status: 503}, available: true},
		{name: "other failure does not eject", failTimeout: 10 * time.Second, result: Result{Outcome: Failed}, available: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Unix(1_700_000_000, 0)
			c := New(Options{FailTimeout: tt.failTimeout, Now: func() time.Time { return now }})
			if err := c.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			tg := target(t)
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

func TestOutcomeString(t *testing.T) {
	for o, want := range map[Outcome]string{Success: "success", ConnectFailed: "connect_failed", Timeout: "timeout", Failed: "failed", 99: "unknown"} {
		if got := o.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", o, got, want)
		}
	}
}
