// Package load drives load at a proxy and reports rate and latency: it runs
// wrk(1) and h2load(1) and parses their output, and it has its own Go
// drivers for what those tools cannot do (WebSocket echo round trips, raw
// TCP throughput).
//
// It must not know which proxy is under test, how it was started or where
// the numbers end up.
package load

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// ErrFormat is returned (wrapped) when a tool's output does not parse.
var ErrFormat = errors.New("unexpected load tool output")

// Units of Result.Ops.
const (
	UnitRequests = "req"
	UnitMessages = "msg"
	UnitMiB      = "MiB"
)

// Result is what one load run measured.
type Result struct {
	// Ops is the number of completed operations in Unit (requests,
	// WebSocket round trips or MiB transferred).
	Ops float64 `json:"ops"`
	// Unit of Ops and Rate.
	Unit string `json:"unit"`
	// Elapsed is the measured duration.
	Elapsed time.Duration `json:"elapsed_ns"`
	// Rate is Ops per second.
	Rate float64 `json:"rate"`
	// P50 and P99 latencies. Zero means not measured (TCP throughput).
	P50 time.Duration `json:"p50_ns"`
	P99 time.Duration `json:"p99_ns"`
	// Errors counts failed operations: socket errors, timeouts and
	// responses outside 2xx/3xx.
	Errors int64 `json:"errors"`
}

// summarize is the Result of a driver that kept per-worker latency lists
// over a window of d: one operation per latency, errs errors.
func summarize(unit string, d time.Duration, lat [][]time.Duration, errs int64) Result {
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	r := Result{Unit: unit, Elapsed: d, Ops: float64(len(all)), Errors: errs}
	r.Rate = r.Ops / d.Seconds()
	r.P50, r.P99 = percentiles(all)
	return r
}

// percentiles returns the p50 and p99 of ds, sorting ds in place. The
// nearest-rank method: the smallest value with at least p% at or below it.
func percentiles(ds []time.Duration) (p50, p99 time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	slices.Sort(ds)
	rank := func(p float64) time.Duration {
		i := int(float64(len(ds))*p+0.999999) - 1
		i = max(0, min(i, len(ds)-1))
		return ds[i]
	}
	return rank(0.50), rank(0.99)
}

// checkDuration rejects durations the tools cannot express.
func checkDuration(d time.Duration) error {
	if d < time.Second {
		return fmt.Errorf("duration %v below 1s", d)
	}
	return nil
}
