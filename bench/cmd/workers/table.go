package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/handoff-proxy/handoff/bench/report"
)

// cell is one mode × scenario: every repeat's rate and p99, and the CPU
// time each worker used during the measured windows, summed over repeats.
type cell struct {
	Mode     string
	Scenario string
	Rates    []float64
	P99s     []time.Duration
	Errors   int64
	// WorkerCPU[i] is worker i's CPU time over all measured windows.
	WorkerCPU []time.Duration
}

// shares returns each duration's fraction of their sum. All zeros (or no
// CPU at all) gives all zeros rather than NaN.
func shares(cpu []time.Duration) []float64 {
	var total time.Duration
	for _, c := range cpu {
		total += c
	}
	out := make([]float64, len(cpu))
	if total <= 0 {
		return out
	}
	for i, c := range cpu {
		out[i] = float64(c) / float64(total)
	}
	return out
}

// spread is half the max−min range in percent of the median, as bench/report
// computes it for the main matrix. Fewer than two values means zero.
func spread(xs []float64) float64 {
	if len(xs) < 2 {
		return 0
	}
	m := report.Median(xs)
	if m == 0 {
		return 0
	}
	return (slices.Max(xs) - slices.Min(xs)) / 2 / m * 100
}

// medianDuration is the median of ds (the mean of the middle two for an
// even count); zero for none.
func medianDuration(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	xs := make([]float64, len(ds))
	for i, d := range ds {
		xs[i] = float64(d)
	}
	return time.Duration(report.Median(xs))
}

// writeTable writes the Markdown table of cells, one row each, in order.
func writeTable(w io.Writer, cells []cell) error {
	var b strings.Builder
	b.WriteString("| Mode | Scenario | Req/s (median) | Spread | p99 | Errors | CPU share per worker |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---|\n")
	for _, c := range cells {
		sh := shares(c.WorkerCPU)
		parts := make([]string, len(sh))
		for i, s := range sh {
			parts[i] = fmt.Sprintf("%.0f%%", s*100)
		}
		fmt.Fprintf(&b, "| %s | %s | %.0f | ±%.1f%% | %s | %d | %s |\n",
			c.Mode, c.Scenario, report.Median(c.Rates), spread(c.Rates),
			medianDuration(c.P99s).Round(10*time.Microsecond), c.Errors, strings.Join(parts, " / "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
