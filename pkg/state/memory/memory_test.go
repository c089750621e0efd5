package memory_test

import (
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/handoff-proxy/handoff/pkg/handofftest"
	"github.com/handoff-proxy/handoff/pkg/state"
	"github.com/handoff-proxy/handoff/pkg/state/memory"
	"github.com/handoff-proxy/handoff/pkg/state/statetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestContract(t *testing.T) {
	statetest.RunStoreContract(t, func(t *testing.T, n int) []state.Store {
		s := statetest.StartStore(t, memory.New(memory.Options{Logger: handofftest.Logger(t)}))
		out := make([]state.Store, n)
		for i := range out {
			out[i] = s // one process: every handle is the same store
		}
		return out
	})
}

// TestExpiryOnTheClock checks TTLs against the (fake) clock rather than
// sleeping through them.
func TestExpiryOnTheClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		s := statetest.StartStore(t, memory.New(memory.Options{}))
		if held, _ := s.TryLease(ctx, "l", "p1", time.Minute); !held {
			t.Fatal("p1 did not get a free lease")
		}
		if err := s.PutVerdict(ctx, state.Verdict{Upstream: "u", Target: "t"}, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
		if n, _ := s.Incr(ctx, "c", time.Minute); n != 1 {
			t.Fatalf("Incr = %d, want 1", n)
		}
		time.Sleep(time.Minute - time.Nanosecond)
		if held, _ := s.TryLease(ctx, "l", "p2", time.Minute); held {
			t.Fatal("p2 got the lease before it expired")
		}
		if n, _ := s.Incr(ctx, "c", time.Minute); n != 2 {
			t.Fatalf("Incr within the window = %d, want 2", n)
		}
		time.Sleep(time.Nanosecond)
		if held, _ := s.TryLease(ctx, "l", "p2", time.Minute); !held {
			t.Fatal("p2 did not get the expired lease")
		}
		if n, _ := s.Incr(ctx, "c", time.Minute); n != 1 {
			t.Fatalf("Incr in a new window = %d, want 1", n)
		}
		if vs, _ := s.Verdicts(ctx); len(vs) != 1 {
			t.Fatalf("Verdicts = %+v, want the verdict kept for 2m", vs)
		}
		time.Sleep(time.Minute)
		if vs, _ := s.Verdicts(ctx); len(vs) != 0 {
			t.Fatalf("Verdicts = %+v after ttl, want none", vs)
		}
	})
}

// TestSweepBoundsMemory checks that expired counters do not pile up.
func TestSweepBoundsMemory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := memory.New(memory.Options{})
		for i := range 10000 {
			if _, err := s.Incr(t.Context(), string(rune('a'+i%26))+time.Duration(i).String(), time.Millisecond); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond)
		}
		if n := s.Len(); n > 2048 {
			t.Fatalf("%d entries kept after 10000 expired counters, want at most 2048", n)
		}
	})
}
