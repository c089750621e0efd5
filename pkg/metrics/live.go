package metrics

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// LiveSeconds is how many one-second buckets Live keeps: 15 minutes, what
// the admin dashboard draws without Prometheus.
const LiveSeconds = 900

// liveBins is the number of latency bins per second: two per octave of
// microseconds (bin 2k covers [2^k, 1.5·2^k) µs, bin 2k+1 [1.5·2^k,
// 2^(k+1))), from 1 µs up to 2^25 µs (33 s); slower requests land in the
// last bin. Half an octave is ±20 %, enough for a sparkline.
const liveBins = 52

// liveBucket is one second of traffic. sec is the Unix second it holds;
// a writer that finds an older second claims the bucket with a CAS and
// clears it. A write racing with that clear can be lost at the turn of a
// second: an approximation the dashboard can afford, and it keeps the
// request path to a few atomic adds with no lock and no allocation.
type liveBucket struct {
	sec      atomic.Int64
	requests atomic.Uint64
	errors   atomic.Uint64
	lat      [liveBins]atomic.Uint64
}

// Live is a ring buffer of per-second request counts, 5xx counts and
// latency histograms over the last LiveSeconds seconds, kept in the
// process for the admin dashboard (GET /api/v1/stats). The zero value is
// ready to use.
type Live struct {
	b [LiveSeconds]liveBucket
}

// Observe records one request that ended at end after d; failed reports
// whether it counts as an error (a 5xx answer).
func (l *Live) Observe(end time.Time, d time.Duration, failed bool) {
	sec := end.Unix()
	b := &l.b[uint64(sec)%LiveSeconds]
	if cur := b.sec.Load(); cur != sec {
		if cur > sec || !b.sec.CompareAndSwap(cur, sec) {
			if b.sec.Load() != sec {
				return // a stale observation for a bucket reused since
			}
		} else {
			b.requests.Store(0)
			b.errors.Store(0)
			for i := range b.lat {
				b.lat[i].Store(0)
			}
		}
	}
	b.requests.Add(1)
	if failed {
		b.errors.Add(1)
	}
	b.lat[latBin(d)].Add(1)
}

func latBin(d time.Duration) int {
	us := uint64(d.Microseconds())
	if us == 0 {
		return 0
	}
	k := bits.Len64(us) - 1 // 2^k <= us < 2^(k+1)
	i := 2 * k
	if k > 0 && us&(1<<(k-1)) != 0 {
		i++
	}
	return min(i, liveBins-1)
}

// binUpper is the upper bound of bin i in milliseconds.
func binUpper(i int) float64 {
	k := i / 2
	us := float64(uint64(1) << k)
	if i%2 == 0 {
		us *= 1.5
	} else {
		us *= 2
	}
	return us / 1000
}

// LiveSeries is the body of GET /api/v1/stats: one value per second in
// each slice, oldest first, the last one for the second in progress.
// Seconds without requests have zero everywhere.
type LiveSeries struct {
	// Start is the Unix second of the first value.
	Start int64 `json:"start"`
	// Step is the seconds between values: always 1.
	Step     int       `json:"step"`
	Requests []uint64  `json:"requests"`
	Errors   []uint64  `json:"errors"`
	P50      []float64 `json:"p50_ms"`
	P99      []float64 `json:"p99_ms"`
}

// Series reads the last n seconds up to now (n is capped to LiveSeconds;
// zero or less means all of them).
func (l *Live) Series(now time.Time, n int) LiveSeries {
	if n <= 0 || n > LiveSeconds {
		n = LiveSeconds
	}
	end := now.Unix()
	s := LiveSeries{
		Start:    end - int64(n) + 1,
		Step:     1,
		Requests: make([]uint64, n),
		Errors:   make([]uint64, n),
		P50:      make([]float64, n),
		P99:      make([]float64, n),
	}
	var hist [liveBins]uint64
	for i := range n {
		sec := s.Start + int64(i)
		b := &l.b[uint64(sec)%LiveSeconds]
		if b.sec.Load() != sec {
			continue
		}
		s.Requests[i] = b.requests.Load()
		s.Errors[i] = b.errors.Load()
		var total uint64
		for j := range hist {
			hist[j] = b.lat[j].Load()
			total += hist[j]
		}
		s.P50[i] = quantile(&hist, total, 0.50)
		s.P99[i] = quantile(&hist, total, 0.99)
	}
	return s
}

// quantile is the upper bound of the bin holding the q-quantile, in ms.
func quantile(hist *[liveBins]uint64, total uint64, q float64) float64 {
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for i, c := range hist {
		seen += c
		if seen >= rank {
			return binUpper(i)
		}
	}
	return binUpper(liveBins - 1)
}

// Totals sums the requests and errors of the last n seconds.
func (s LiveSeries) Totals() (requests, errors uint64) {
	for i := range s.Requests {
		requests += s.Requests[i]
		errors += s.Errors[i]
	}
	return requests, errors
}
