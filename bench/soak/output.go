package soak

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// WriteJSON writes the samples and the verdict.
func WriteJSON(w io.Writer, r *Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("encode soak result: %w", err)
	}
	return nil
}

// WriteMarkdown writes the verdict as a short Markdown summary.
func WriteMarkdown(w io.Writer, r *Result, title string) error {
	v := r.Verdict
	var b strings.Builder
	verdict := "PASS"
	if !v.Pass {
		verdict = "FAIL"
	}
	fmt.Fprintf(&b, "### Soak: %s — %s\n\n", title, verdict)
	b.WriteString("| Criterion | Measured | Limit |\n|---|---:|---:|\n")
	fmt.Fprintf(&b, "| RSS slope, second half of load | %.3f %%/min (mean %.1f MiB) | ≤ %.2f %%/min |\n",
		v.RSSSlopePctPerMin, v.MeanRSSBytes/(1<<20), v.RSSLimitPctPerMin)
	if v.Baseline.Goroutines >= 0 {
		fmt.Fprintf(&b, "| Goroutine slope, second half of load | %.3f /min (mean %.0f) | ≤ %.2f /min |\n",
			v.GoroutineSlopePerMin, v.MeanGoroutines, v.GoroutineLimitPerMin)
		fmt.Fprintf(&b, "| Goroutines after load (baseline) | %.0f (%.0f) | ≤ baseline + %d |\n", v.Final.Goroutines, v.Baseline.Goroutines, v.Thresholds.SettleSlack)
	}
	fmt.Fprintf(&b, "| Open fds after load (baseline) | %d (%d) | ≤ baseline + %d |\n", v.Final.FDs, v.Baseline.FDs, v.Thresholds.SettleSlack)
	settled := "never"
	if v.SettledAfter >= 0 {
		settled = v.SettledAfter.Round(time.Second).String()
	}
	fmt.Fprintf(&b, "| Back to baseline after load | %s | ≤ 30s |\n", settled)
	fmt.Fprintf(&b, "| Failed requests | %d of %d | 0 |\n", v.Failures, v.Requests)
	for _, p := range v.Problems {
		fmt.Fprintf(&b, "\n- %s", p)
	}
	for _, f := range r.FirstFailures {
		fmt.Fprintf(&b, "\n- failure: %s", f)
	}
	b.WriteString("\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write soak summary: %w", err)
	}
	return nil
}

// PlotOptions configure WritePlot.
type PlotOptions struct {
	// Dir receives soak.dat, soak.gp and soak.png.
	Dir string
	// Title of the chart.
	Title string
	// Gnuplot executable. Empty means "gnuplot".
	Gnuplot string
}

// WritePlot draws RSS, goroutines and fds over time, with the load phase
// shaded, using gnuplot. It returns the PNG's path.
func WritePlot(ctx context.Context, r *Result, o PlotOptions) (string, error) {
	var dat bytes.Buffer
	dat.WriteString("# seconds\trss_mib\tgoroutines\tfds\n")
	var loadFrom, loadTo float64 = -1, -1
	for _, s := range r.Samples {
		sec := s.At.Seconds()
		if s.Phase == PhaseLoad {
			if loadFrom < 0 {
				loadFrom = sec
			}
			loadTo = sec
		}
		g := "-"
		if s.Goroutines >= 0 {
			g = fmt.Sprintf("%.0f", s.Goroutines)
		}
		fmt.Fprintf(&dat, "%.1f\t%.2f\t%s\t%d\n", sec, float64(s.RSS)/(1<<20), g, s.FDs)
	}
	datPath := filepath.Join(o.Dir, "soak.dat")
	gpPath := filepath.Join(o.Dir, "soak.gp")
	pngPath := filepath.Join(o.Dir, "soak.png")
	if err := os.WriteFile(datPath, dat.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("write soak data: %w", err)
	}
	var gp strings.Builder
	fmt.Fprintf(&gp, "set terminal pngcairo size 1400,1000 font 'sans,11'\nset output %q\n", pngPath)
	gp.WriteString("set datafile separator \"\\t\"\nset datafile missing \"-\"\nset grid\nset key off\nset xlabel \"seconds\"\n")
	if loadFrom >= 0 {
		fmt.Fprintf(&gp, "set object 1 rectangle from %.1f, graph 0 to %.1f, graph 1 behind fillcolor rgb '#eeeeff' fillstyle solid noborder\n", loadFrom, loadTo)
	}
	type panel struct {
		col   int
		label string
	}
	panels := []panel{{2, "RSS (MiB)"}, {3, "goroutines"}, {4, "open fds"}}
	if len(r.Samples) > 0 && r.Samples[0].Goroutines < 0 {
		panels = []panel{panels[0], panels[2]} // not a Go process
	}
	fmt.Fprintf(&gp, "set multiplot layout %d,1 title %q\n", len(panels), o.Title+" (shaded: load)")
	for _, p := range panels {
		fmt.Fprintf(&gp, "set ylabel %q\nplot %q using 1:%d with lines lw 2\n", p.label, datPath, p.col)
	}
	gp.WriteString("unset multiplot\n")
	if err := os.WriteFile(gpPath, []byte(gp.String()), 0o644); err != nil {
		return "", fmt.Errorf("write soak plot script: %w", err)
	}
	bin := o.Gnuplot
	if bin == "" {
		bin = "gnuplot"
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bin, gpPath).CombinedOutput(); err != nil {
		return "", fmt.Errorf("run gnuplot: %w: %s", err, bytes.TrimSpace(out))
	}
	return pngPath, nil
}
