package ratelimit

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestTop(t *testing.T) {
	clock := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	tests := []struct {
		name    string
		size    int
		records []string // "route key", in order
		advance time.Duration
		window  time.Duration
		want    []string // "route key denied"
	}{
		{name: "counts and orders", size: 4,
			records: []string{"a 1", "a 2", "a 1", "b 1", "a 1"},
			want:    []string{"a 1 3", "a 2 1", "b 1 1"}},
		{name: "bounded: newcomer inherits the evicted count", size: 2,
			records: []string{"a x", "a x", "a x", "a y", "a z"},
			want:    []string{"a x 3", "a z 2"}},
		{name: "window hides stale keys", size: 4,
			records: []string{"a 1"}, advance: time.Minute, window: 30 * time.Second,
			want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
			top := NewTop(tt.size, now)
			for _, r := range tt.records {
				var route, key string
				fmt.Sscan(r, &route, &key)
				top.Record(route, key)
				clock = clock.Add(time.Millisecond)
			}
			clock = clock.Add(tt.advance)
			var got []string
			for _, e := range top.List(tt.window, 0) {
				got = append(got, fmt.Sprintf("%s %s %d", e.Route, e.Key, e.Denied))
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("List = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTopConcurrentBounded(t *testing.T) {
	top := NewTop(8, nil)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 1000 {
				top.Record("r", fmt.Sprint(g*1000+i%50))
			}
		})
	}
	wg.Wait()
	if n := len(top.List(0, 0)); n != 8 {
		t.Fatalf("%d entries, want 8", n)
	}
	if n := len(top.List(0, 3)); n != 3 {
		t.Fatalf("List(0, 3) gave %d", n)
	}
}
