package activation

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/handoff-proxy/handoff/pkg/handofftest"
)

// pingRecorder is a Pinger that records when it was pinged, relative to
// start (fake time inside a synctest bubble).
type pingRecorder struct {
	start time.Time
	mu    sync.Mutex
	at    []time.Duration
}

func (p *pingRecorder) Watchdog() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.at = append(p.at, time.Since(p.start))
	return nil
}

func (p *pingRecorder) pings() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.at)
}

func secs(s ...int) []time.Duration {
	out := make([]time.Duration, len(s))
	for i, v := range s {
		out[i] = time.Duration(v) * time.Second
	}
	return out
}

func TestWatchdogPingsAtHalfInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &pingRecorder{start: time.Now()}
		var healthy atomic.Bool
		healthy.Store(true)
		w, err := NewWatchdog(WatchdogOptions{
			Env:     newFakeEnv("WATCHDOG_USEC=10000000", "WATCHDOG_PID=4242").env(4242, 1),
			Pinger:  rec,
			Healthy: func(context.Context) bool { return healthy.Load() },
			Logger:  handofftest.Logger(t),
		})
		if err != nil {
			t.Fatal(err)
		}
		if !w.Enabled() || w.Interval() != 10*time.Second {
			t.Fatalf("enabled %t, interval %v", w.Enabled(), w.Interval())
		}
		w.Start()
		w.Start() // a second Start is a no-op, not a second loop
		time.Sleep(12 * time.Second)
		synctest.Wait()
		if got := rec.pings(); !slices.Equal(got, secs(0, 5, 10)) {
			t.Fatalf("pings at %v, want every 5s from 0", got)
		}
		// Unhealthy: the pings at 15s and 20s are withheld.
		healthy.Store(false)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if got := rec.pings(); !slices.Equal(got, secs(0, 5, 10)) {
			t.Fatalf("pings at %v while unhealthy", got)
		}
		healthy.Store(true)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := rec.pings(); !slices.Equal(got, secs(0, 5, 10, 25)) {
			t.Fatalf("pings at %v, want them to resume at 25s and stop after Close", got)
		}
	})
}

func TestWatchdogHealthCheckContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &pingRecorder{start: time.Now()}
		var calls atomic.Int32
		w, err := NewWatchdog(WatchdogOptions{
			Env:    newFakeEnv("WATCHDOG_USEC=2000000").env(4242, 1),
			Pinger: rec,
			Healthy: func(ctx context.Context) bool {
				switch calls.Add(1) {
				case 1:
					// A stuck check gets half the interval.
					start := time.Now()
					<-ctx.Done()
					if d := time.Since(start); d != time.Second {
						t.Errorf("check context ended after %v, want 1s", d)
					}
					return false
				case 2:
					panic("boom")
				default:
					return true
				}
			},
			Logger: handofftest.Logger(t),
		})
		if err != nil {
			t.Fatal(err)
		}
		w.Start()
		time.Sleep(3500 * time.Millisecond)
		synctest.Wait()
		w.Close()
		// Check 1 blocks 0s..1s, check 2 panics at 1s, check 3 at 2s
		// pings, check 4 at 3s pings.
		if got, want := rec.pings(), []time.Duration{2 * time.Second, 3 * time.Second}; !slices.Equal(got, want) {
			t.Errorf("pings at %v, want %v", got, want)
		}
	})
}

func TestWatchdogCloseStopsStuckCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, err := NewWatchdog(WatchdogOptions{
			Env:     newFakeEnv("WATCHDOG_USEC=3600000000").env(4242, 1),
			Pinger:  &pingRecorder{start: time.Now()},
			Healthy: func(ctx context.Context) bool { <-ctx.Done(); return false },
		})
		if err != nil {
			t.Fatal(err)
		}
		w.Start()
		synctest.Wait()
		start := time.Now()
		w.Close()
		if d := time.Since(start); d != 0 {
			t.Errorf("Close took %v of fake time, want it to cancel the check", d)
		}
	})
}

func TestNewWatchdog(t *testing.T) {
	tests := []struct {
		name    string
		env     []string
		pinger  Pinger
		want    time.Duration
		wantErr error
	}{
		{name: "unset", want: 0},
		{name: "ours", env: []string{"WATCHDOG_USEC=30000000", "WATCHDOG_PID=4242"}, pinger: &pingRecorder{}, want: 30 * time.Second},
		{name: "any pid when WATCHDOG_PID unset", env: []string{"WATCHDOG_USEC=500"}, pinger: &pingRecorder{}, want: 500 * time.Microsecond},
		{name: "another process's", env: []string{"WATCHDOG_USEC=30000000", "WATCHDOG_PID=1"}, want: 0},
		{name: "pid without usec", env: []string{"WATCHDOG_PID=4242"}, want: 0},
		{name: "zero usec", env: []string{"WATCHDOG_USEC=0"}, wantErr: ErrInvalidEnv},
		{name: "garbage usec", env: []string{"WATCHDOG_USEC=30s"}, wantErr: ErrInvalidEnv},
		{name: "overflowing usec", env: []string{"WATCHDOG_USEC=18446744073709551615"}, wantErr: ErrInvalidEnv},
		{name: "garbage pid", env: []string{"WATCHDOG_USEC=1", "WATCHDOG_PID=me"}, wantErr: ErrInvalidEnv},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := NewWatchdog(WatchdogOptions{Env: newFakeEnv(tt.env...).env(4242, 1), Pinger: tt.pinger})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if w.Interval() != tt.want || w.Enabled() != (tt.want > 0) {
				t.Errorf("interval %v enabled %t, want %v", w.Interval(), w.Enabled(), tt.want)
			}
			w.Start() // no-op when disabled
			w.Close()
		})
	}
	if _, err := NewWatchdog(WatchdogOptions{Env: newFakeEnv("WATCHDOG_USEC=1000").env(4242, 1)}); err == nil {
		t.Error("enabled watchdog without a Pinger accepted")
	}
}
