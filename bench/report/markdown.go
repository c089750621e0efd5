package report

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
)

// WriteMarkdown writes one table with a row per scenario × peer, in the
// run's scenario and peer order.
func WriteMarkdown(w io.Writer, r *Run) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Run %s, %s.\n\n", r.Started.UTC().Format("2006-01-02 15:04 UTC"), describe(r.Settings))
	b.WriteString("| Scenario | Peer | Rate (median) | Spread | p50 | p99 | Proxy CPU | Proxy busy | Peak RSS | vs HAProxy | vs direct | Errors |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, sc := range r.Scenarios {
		for _, peer := range r.Peers {
			row := r.find(sc.Name, peer)
			if row == nil {
				continue
			}
			b.WriteString("| " + sc.Title + " | " + peer + " | ")
			switch {
			case row.NA != "":
				b.WriteString("n/a (" + row.NA + ") | | | | | | | | | |\n")
				continue
			case row.Summary == nil:
				reason := "no sample"
				if len(row.Failures) > 0 {
					reason = row.Failures[0]
				}
				b.WriteString("failed: " + escape(truncate(reason, 120)) + " | | | | | | | | | |\n")
				continue
			}
			s := row.Summary
			cpu, busy, rss := "–", "–", "–"
			if peer != RefDirect {
				cpu = fmt.Sprintf("%.3f s/%s", s.CPUPerBasis, s.CPUBasis)
				busy = fmt.Sprintf("%.0f%%", s.BusyPct)
				rss = fmt.Sprintf("%.1f MiB", s.PeakRSSMiB)
			}
			fmt.Fprintf(&b, "%s %s/s | ±%.1f%% | %s | %s | %s | %s | %s | %s | %s | %d |\n",
				humanRate(s.Rate), row.Unit, s.SpreadPct/2, ms(s.P50Ms), ms(s.P99Ms), cpu, busy, rss,
				ratio(s.VsHAProxy), ratio(s.VsDirect), s.Errors)
		}
	}
	b.WriteString("\nRate is the median over repeats; spread is half the range (max−min) as a percentage of the median. ")
	b.WriteString("Latency percentiles come from the load generator (wrk closed loop, h2load's per-request log, the Go drivers). ")
	b.WriteString("Proxy CPU is user+system time of the proxy's processes during the measurement, per 10,000 operations (per GiB for L4). ")
	b.WriteString("Proxy busy is that CPU time over the measured wall time (100% = one core): well below 100% per worker means the proxy was not the bottleneck, the load generator or backend core was. ")
	b.WriteString("Peak RSS is the sum of VmHWM over the proxy's processes. Ratios compare median rates in the same scenario.\n")
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("write markdown: %w", err)
	}
	return nil
}

func describe(settings map[string]string) string {
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+settings[k])
	}
	return strings.Join(parts, ", ")
}

func humanRate(v float64) string {
	switch {
	case v >= 100:
		return commas(int64(math.Round(v)))
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func commas(n int64) string {
	s := fmt.Sprint(n)
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func ms(v float64) string {
	switch {
	case v == 0 || math.IsNaN(v):
		return "–"
	case v < 1:
		return fmt.Sprintf("%.0f µs", v*1000)
	case v < 100:
		return fmt.Sprintf("%.2f ms", v)
	default:
		return fmt.Sprintf("%.0f ms", v)
	}
}

func ratio(v float64) string {
	if v == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", v)
}

func escape(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
