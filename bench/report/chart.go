package report

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// ChartOptions configure WriteChart.
type ChartOptions struct {
	// Dir receives chart.dat, chart.gp and chart.png.
	Dir string
	// Gnuplot is the gnuplot executable. Empty means "gnuplot".
	Gnuplot string
}

// WriteChart plots, per scenario, every peer's rate as a percentage of the
// direct baseline (top) and the proxy CPU per operation (bottom), as
// clustered bars, with gnuplot. It returns the PNG's path.
func WriteChart(ctx context.Context, r *Run, o ChartOptions) (string, error) {
	dat, peers := chartData(r)
	datPath := filepath.Join(o.Dir, "chart.dat")
	gpPath := filepath.Join(o.Dir, "chart.gp")
	pngPath := filepath.Join(o.Dir, "chart.png")
	if err := os.WriteFile(datPath, dat, 0o644); err != nil {
		return "", fmt.Errorf("write chart data: %w", err)
	}
	if err := os.WriteFile(gpPath, gnuplotScript(datPath, pngPath, peers), 0o644); err != nil {
		return "", fmt.Errorf("write chart script: %w", err)
	}
	gp := o.Gnuplot
	if gp == "" {
		gp = "gnuplot"
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, gp, gpPath).CombinedOutput(); err != nil {
		return "", fmt.Errorf("run gnuplot: %w: %s", err, bytes.TrimSpace(out))
	}
	return pngPath, nil
}

// chartData writes one line per scenario: its title, then per peer the
// rate as % of direct and the CPU per basis ("-" when missing).
func chartData(r *Run) ([]byte, []string) {
	var peers []string
	for _, p := range r.Peers {
		if p != RefDirect {
			peers = append(peers, p)
		}
	}
	var b bytes.Buffer
	b.WriteString("# scenario")
	for _, p := range peers {
		fmt.Fprintf(&b, "\t%s_pct_direct", p)
	}
	for _, p := range peers {
		fmt.Fprintf(&b, "\t%s_cpu", p)
	}
	b.WriteString("\n")
	for _, sc := range r.Scenarios {
		// Short names: the titles are for the table.
		fmt.Fprintf(&b, "%q", sc.Name)
		cells := make([]string, 0, 2*len(peers))
		for _, p := range peers {
			row := r.find(sc.Name, p)
			if row == nil || row.Summary == nil || row.Summary.VsDirect == 0 {
				cells = append(cells, "-")
				continue
			}
			cells = append(cells, fmt.Sprintf("%.2f", row.Summary.VsDirect*100))
		}
		for _, p := range peers {
			row := r.find(sc.Name, p)
			if row == nil || row.Summary == nil || row.Summary.CPUPerBasis == 0 {
				cells = append(cells, "-")
				continue
			}
			cells = append(cells, fmt.Sprintf("%.4f", row.Summary.CPUPerBasis))
		}
		b.WriteString("\t" + strings.Join(cells, "\t") + "\n")
	}
	return b.Bytes(), peers
}

func gnuplotScript(dat, png string, peers []string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "set terminal pngcairo size 1600,1100 font 'sans,11'\nset output %q\n", png)
	b.WriteString(`set datafile separator "\t"
set datafile missing "-"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key outside right top vertical
set grid ytics
set xtics rotate by -25 scale 0 font ',10'
set multiplot layout 2,1 title "Proxy throughput and CPU cost (median of repeats)"
set ylabel "% of direct throughput"
set yrange [0:*]
set arrow 1 from graph 0, first 100 to graph 1, first 100 nohead dashtype 2 linecolor rgb "#555555"
`)
	n := len(peers)
	plot := func(first int, title func(string) string) {
		b.WriteString("plot ")
		for i, p := range peers {
			if i > 0 {
				b.WriteString(", \\\n     ")
			}
			fmt.Fprintf(&b, "%q using %d:xtic(1) title %q", dat, first+i, title(p))
		}
		b.WriteString("\n")
	}
	plot(2, func(p string) string { return p })
	b.WriteString("unset arrow 1\nset ylabel \"proxy CPU seconds per 10k ops (per GiB for L4)\"\nset logscale y\nset yrange [*:*]\n")
	plot(2+n, func(p string) string { return p })
	b.WriteString("unset multiplot\n")
	return []byte(b.String())
}
