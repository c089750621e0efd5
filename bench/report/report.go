// Package report turns benchmark samples into the published artefacts: a
// JSON file with every sample, a Markdown table of medians with spread and
// ratios to HAProxy and to the direct baseline, and a gnuplot chart.
//
// It must not know how the samples were measured or which tools ran.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"time"
)

// Reference peers for the ratio columns.
const (
	RefHAProxy = "haproxy"
	RefDirect  = "direct"
)

// Sample is one measured run of one scenario against one peer.
type Sample struct {
	// Rate is operations per second (requests, messages or MiB).
	Rate float64 `json:"rate"`
	// Ops completed during the measurement.
	Ops float64 `json:"ops"`
	// P50Ms and P99Ms are latencies in milliseconds; zero means not
	// measured.
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	// Errors counts failed operations.
	Errors int64 `json:"errors"`
	// CPUSeconds is user+system CPU time of the proxy's process tree
	// during the measurement; zero for the direct baseline.
	CPUSeconds float64 `json:"cpu_seconds"`
	// PeakRSSBytes is the proxy's peak resident memory (sum of VmHWM over
	// its processes) since it started for this run; zero for direct.
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
}

// Row is one scenario × peer cell of the comparison.
type Row struct {
	Scenario string `json:"scenario"`
	Peer     string `json:"peer"`
	// Unit of Rate: "req", "msg" or "MiB".
	Unit string `json:"unit"`
	// NA, when set, is why the peer cannot run the scenario; the row has
	// no samples.
	NA string `json:"na,omitempty"`
	// Failures are the errors of runs that produced no sample.
	Failures []string `json:"failures,omitempty"`
	Samples  []Sample `json:"samples"`
	// Summary, filled by Summarize.
	Summary *Summary `json:"summary,omitempty"`
}

// Summary holds medians over a row's samples.
type Summary struct {
	Rate float64 `json:"rate"`
	// SpreadPct is (max-min)/median of Rate, in percent.
	SpreadPct float64 `json:"spread_pct"`
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
	// CPUPerBasis is CPU seconds per CPUBasis operations.
	CPUPerBasis float64 `json:"cpu_per_basis"`
	// CPUBasis is "10k req", "10k msg" or "GiB".
	CPUBasis string `json:"cpu_basis"`
	// BusyPct is the proxy's CPU time over the measured wall time, in
	// percent of one core: well below 100 × workers means the proxy was
	// not the bottleneck (the load generator or the backend was).
	BusyPct    float64 `json:"busy_pct"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	// Errors summed over samples.
	Errors int64 `json:"errors"`
	// VsHAProxy and VsDirect are Rate divided by the reference's Rate in
	// the same scenario; zero when the reference has no result.
	VsHAProxy float64 `json:"vs_haproxy"`
	VsDirect  float64 `json:"vs_direct"`
}

// Scenario describes a scenario for the report.
type Scenario struct {
	Name  string `json:"name"`
	Title string `json:"title"`
}

// Run is a whole benchmark run.
type Run struct {
	Started   time.Time         `json:"started"`
	Finished  time.Time         `json:"finished"`
	Host      map[string]string `json:"host"`
	Settings  map[string]string `json:"settings"`
	Scenarios []Scenario        `json:"scenarios"`
	Peers     []string          `json:"peers"`
	Rows      []*Row            `json:"rows"`
}

// Row returns the row of scenario × peer, creating it with unit.
func (r *Run) Row(scenario, peer, unit string) *Row {
	for _, row := range r.Rows {
		if row.Scenario == scenario && row.Peer == peer {
			return row
		}
	}
	row := &Row{Scenario: scenario, Peer: peer, Unit: unit}
	r.Rows = append(r.Rows, row)
	return row
}

func (r *Run) find(scenario, peer string) *Row {
	for _, row := range r.Rows {
		if row.Scenario == scenario && row.Peer == peer {
			return row
		}
	}
	return nil
}

// Summarize computes every row's Summary (medians, spread, ratios).
func (r *Run) Summarize() {
	for _, row := range r.Rows {
		row.Summary = summarize(row)
	}
	for _, row := range r.Rows {
		if row.Summary == nil {
			continue
		}
		if ref := r.find(row.Scenario, RefHAProxy); ref != nil && ref.Summary != nil && ref.Summary.Rate > 0 {
			row.Summary.VsHAProxy = row.Summary.Rate / ref.Summary.Rate
		}
		if ref := r.find(row.Scenario, RefDirect); ref != nil && ref.Summary != nil && ref.Summary.Rate > 0 {
			row.Summary.VsDirect = row.Summary.Rate / ref.Summary.Rate
		}
	}
}

func summarize(row *Row) *Summary {
	if len(row.Samples) == 0 {
		return nil
	}
	col := func(f func(Sample) float64) []float64 {
		out := make([]float64, len(row.Samples))
		for i, s := range row.Samples {
			out[i] = f(s)
		}
		return out
	}
	rates := col(func(s Sample) float64 { return s.Rate })
	basis, per := "10k "+row.Unit, 10000.0
	if row.Unit == "MiB" {
		basis, per = "GiB", 1024
	}
	s := &Summary{
		Rate:     Median(rates),
		P50Ms:    Median(col(func(s Sample) float64 { return s.P50Ms })),
		P99Ms:    Median(col(func(s Sample) float64 { return s.P99Ms })),
		CPUBasis: basis,
		CPUPerBasis: Median(col(func(s Sample) float64 {
			if s.Ops <= 0 {
				return 0
			}
			return s.CPUSeconds / s.Ops * per
		})),
		BusyPct: Median(col(func(s Sample) float64 {
			if s.Rate <= 0 || s.Ops <= 0 {
				return 0
			}
			return s.CPUSeconds / (s.Ops / s.Rate) * 100
		})),
		PeakRSSMiB: Median(col(func(s Sample) float64 { return float64(s.PeakRSSBytes) / (1 << 20) })),
	}
	if s.Rate > 0 {
		s.SpreadPct = (slices.Max(rates) - slices.Min(rates)) / s.Rate * 100
	}
	for _, smp := range row.Samples {
		s.Errors += smp.Errors
	}
	return s
}

// Median of xs (mean of the two middle values for even counts); NaN for
// none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// WriteJSON writes the run, indented.
func WriteJSON(w io.Writer, r *Run) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	return nil
}

// ReadJSON reads a run written by WriteJSON.
func ReadJSON(rd io.Reader) (*Run, error) {
	var r Run
	if err := json.NewDecoder(rd).Decode(&r); err != nil {
		return nil, fmt.Errorf("decode results: %w", err)
	}
	return &r, nil
}
