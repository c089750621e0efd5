package metrics

import (
	"testing"
	"time"
)

func TestLiveSeries(t *testing.T) {
	base := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name      string
		observe   func(l *Live)
		now       time.Time
		n         int
		wantReq   []uint64
		wantErr   []uint64
		wantP50ms []float64
		wantP99ms []float64
	}{
		{
			name:    "empty",
			observe: func(*Live) {},
			now:     base, n: 3,
			wantReq: []uint64{0, 0, 0}, wantErr: []uint64{0, 0, 0},
			wantP50ms: []float64{0, 0, 0}, wantP99ms: []float64{0, 0, 0},
		},
		{
			name: "two seconds",
			observe: func(l *Live) {
				for range 99 {
					l.Observe(base.Add(-time.Second), time.Millisecond, false)
				}
				l.Observe(base.Add(-time.Second), 100*time.Millisecond, true)
				l.Observe(base, 3*time.Microsecond, false)
			},
			now: base, n: 3,
			wantReq: []uint64{0, 100, 1}, wantErr: []uint64{0, 1, 0},
			// 1 ms = 1000 µs: bin [768, 1024) µs·… upper 1.024 ms;
			// 100 ms lands in [98.304, 131.072) ms.
			wantP50ms: []float64{0, 1.024, 0.004}, wantP99ms: []float64{0, 1.024, 0.004},
		},
		{
			name: "a bucket a full ring ago is not reported",
			observe: func(l *Live) {
				l.Observe(base.Add(-LiveSeconds*time.Second), time.Millisecond, false)
			},
			now: base, n: 1,
			wantReq: []uint64{0}, wantErr: []uint64{0}, wantP50ms: []float64{0}, wantP99ms: []float64{0},
		},
		{
			name: "a reused bucket starts from zero",
			observe: func(l *Live) {
				l.Observe(base.Add(-LiveSeconds*time.Second), time.Millisecond, true)
				l.Observe(base, time.Millisecond, false)
				// A late observation for the old second is dropped.
				l.Observe(base.Add(-LiveSeconds*time.Second), time.Millisecond, true)
			},
			now: base, n: 1,
			wantReq: []uint64{1}, wantErr: []uint64{0}, wantP50ms: []float64{1.024}, wantP99ms: []float64{1.024},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l Live
			tt.observe(&l)
			s := l.Series(tt.now, tt.n)
			if s.Start != tt.now.Unix()-int64(tt.n)+1 || s.Step != 1 {
				t.Errorf("start, step = %d, %d", s.Start, s.Step)
			}
			eq(t, "requests", s.Requests, tt.wantReq)
			eq(t, "errors", s.Errors, tt.wantErr)
			eq(t, "p50", s.P50, tt.wantP50ms)
			eq(t, "p99", s.P99, tt.wantP99ms)
		})
	}
}

func eq[T comparable](t *testing.T, what string, got, want []T) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
		return
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("%s = %v, want %v", what, got, want)
			return
		}
	}
}

func TestLiveSeriesP99(t *testing.T) {
	var l Live
	now := time.Unix(1_700_000_000, 0)
	for range 98 {
		l.Observe(now, time.Millisecond, false)
	}
	l.Observe(now, time.Second, false)
	l.Observe(now, time.Second, false)
	s := l.Series(now, 1)
	if s.P50[0] != 1.024 || s.P99[0] < 1000 || s.P99[0] > 1400 {
		t.Errorf("p50, p99 = %v, %v; want 1.024, about 1 s", s.P50[0], s.P99[0])
	}
	if s := l.Series(now, 0); len(s.Requests) != LiveSeconds {
		t.Errorf("n=0 gives %d values", len(s.Requests))
	}
}

func TestLiveObserveAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	var l Live
	now := time.Now()
	if n := testing.AllocsPerRun(1000, func() { l.Observe(now, time.Millisecond, false) }); n != 0 {
		t.Errorf("Observe allocates %v times", n)
	}
}

func BenchmarkLiveObserve(b *testing.B) {
	var l Live
	now := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Observe(now, time.Millisecond, false)
		}
	})
}
