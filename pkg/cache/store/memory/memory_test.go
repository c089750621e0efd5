package memory_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/cache/store"
	"github.com/handoff-proxy/handoff/pkg/cache/store/memory"
	"github.com/handoff-proxy/handoff/pkg/cache/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return memory.New(memory.Options{}) })
}

// TestBoundedInBytes: a key space far larger than the budget never holds
// more than the budget, and the most recently used entries survive.
func TestBoundedInBytes(t *testing.T) {
	const budget = 64 << 10
	s := memory.New(memory.Options{MaxBytes: budget})
	ctx := context.Background()
	val := make([]byte, 1000)
	for i := range 1000 {
		_ = s.Set(ctx, fmt.Sprint("k", i), val, time.Hour)
		if st := s.Stats(); st.Bytes > budget {
			t.Fatalf("after %d sets: %d bytes > budget %d", i, st.Bytes, budget)
		}
	}
	if _, _, err := s.Get(ctx, "k999"); err != nil {
		t.Fatalf("most recent entry evicted: %v", err)
	}
	if _, _, err := s.Get(ctx, "k0"); err == nil {
		t.Fatal("oldest entry kept beyond the budget")
	}
	// A value larger than the budget is refused, not stored.
	_ = s.Set(ctx, "huge", make([]byte, budget+1), time.Hour)
	if _, _, err := s.Get(ctx, "huge"); err == nil {
		t.Fatal("value larger than the budget stored")
	}
}

// TestLRUOrder: a Get makes an entry recent, so it outlives older ones.
func TestLRUOrder(t *testing.T) {
	s := memory.New(memory.Options{MaxBytes: 3 * (memory.Overhead + 2 + 10)})
	ctx := context.Background()
	for _, k := range []string{"k1", "k2", "k3"} {
		_ = s.Set(ctx, k, make([]byte, 10), time.Hour)
	}
	_, _, _ = s.Get(ctx, "k1")
	_ = s.Set(ctx, "k4", make([]byte, 10), time.Hour)
	if _, _, err := s.Get(ctx, "k1"); err != nil {
		t.Fatal("recently read k1 evicted")
	}
	if _, _, err := s.Get(ctx, "k2"); err == nil {
		t.Fatal("least recently used k2 kept")
	}
}

func BenchmarkGetParallel(b *testing.B) {
	s := memory.New(memory.Options{})
	ctx := context.Background()
	for i := range 1000 {
		_ = s.Set(ctx, fmt.Sprint("k", i), make([]byte, 1024), time.Hour)
	}
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			_, _, _ = s.Get(ctx, fmt.Sprint("k", i%1000))
			i++
		}
	})
}
