package report

import (
	"bytes"
	"math"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMedian(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want float64
	}{
		{name: "odd", in: []float64{3, 1, 2}, want: 2},
		{name: "even", in: []float64{4, 1, 3, 2}, want: 2.5},
		{name: "one", in: []float64{7}, want: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Median(tt.in); got != tt.want {
				t.Fatalf("Median(%v) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
	if !math.IsNaN(Median(nil)) {
		t.Fatal("Median(nil) should be NaN")
	}
}

// sampleRun has two scenarios; handoff is n/a in the cache one.
func sampleRun() *Run {
	r := &Run{
		Settings:  map[string]string{"duration": "10s", "repeat": "3"},
		Scenarios: []Scenario{{Name: "get", Title: "GET"}, {Name: "cache", Title: "Cache"}},
		Peers:     []string{RefDirect, "handoff", RefHAProxy},
	}
	add := func(sc, peer string, rates ...float64) {
		row := r.Row(sc, peer, "req")
		for _, rate := range rates {
			row.Samples = append(row.Samples, Sample{Rate: rate, Ops: rate * 10, P50Ms: 1, P99Ms: 4, CPUSeconds: rate * 10 / 20000, PeakRSSBytes: 20 << 20})
		}
	}
	add("get", RefDirect, 40000, 40000, 40000)
	add("get", "handoff", 18000, 20000, 22000)
	add("get", RefHAProxy, 25000, 25000)
	r.Row("cache", "handoff", "req").NA = "not implemented yet"
	add("cache", RefHAProxy, 80000)
	r.Row("cache", RefDirect, "req").Failures = []string{"boom | pipe"}
	r.Summarize()
	return r
}

func TestSummarize(t *testing.T) {
	r := sampleRun()
	h := r.find("get", "handoff").Summary
	if h.Rate != 20000 {
		t.Fatalf("median rate %v, want 20000", h.Rate)
	}
	if math.Abs(h.SpreadPct-20) > 1e-9 {
		t.Fatalf("spread %v%%, want 20%%", h.SpreadPct)
	}
	if h.VsHAProxy != 0.8 || h.VsDirect != 0.5 {
		t.Fatalf("ratios %v vs haproxy, %v vs direct; want 0.8 and 0.5", h.VsHAProxy, h.VsDirect)
	}
	// CPU: rate*10 ops cost rate*10/20000 s, so 0.5 s per 10k.
	if math.Abs(h.CPUPerBasis-0.5) > 1e-9 || h.CPUBasis != "10k req" {
		t.Fatalf("cpu %v s/%s, want 0.5 s/10k req", h.CPUPerBasis, h.CPUBasis)
	}
	if s := r.find("cache", RefHAProxy).Summary; s.VsDirect != 0 {
		t.Fatalf("direct failed in cache, ratio should be absent, got %v", s.VsDirect)
	}
	if r.find("cache", "handoff").Summary != nil {
		t.Fatal("n/a row has a summary")
	}
}

func TestWriteMarkdown(t *testing.T) {
	var b bytes.Buffer
	if err := WriteMarkdown(&b, sampleRun()); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"| GET | handoff | 20,000 req/s | ±10.0% | 1.00 ms | 4.00 ms | 0.500 s/10k req | 100% | 20.0 MiB | 0.80× | 0.50× | 0 |",
		"| Cache | handoff | n/a (not implemented yet) |",
		`| Cache | direct | failed: boom \| pipe |`,
		"| GET | direct | 40,000 req/s | ±0.0% | 1.00 ms | 4.00 ms | – | – | – | 1.60× | 1.00× | 0 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	// Every table line has the same number of cells.
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "| ") {
			if n := strings.Count(strings.ReplaceAll(line, `\|`, ""), "|"); n != 13 {
				t.Errorf("%d separators in %q, want 13", n, line)
			}
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	r := sampleRun()
	var b bytes.Buffer
	if err := WriteJSON(&b, r); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSON(&b)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Rows) != len(r.Rows) || back.find("get", "handoff").Summary.Rate != 20000 {
		t.Fatalf("round trip lost data: %+v", back.Rows)
	}
}

func TestChartData(t *testing.T) {
	dat, peers := chartData(sampleRun())
	if strings.Join(peers, ",") != "handoff,haproxy" {
		t.Fatalf("peers %v, want handoff,haproxy (direct is the 100%% line)", peers)
	}
	lines := strings.Split(strings.TrimSpace(string(dat)), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want header + 2:\n%s", len(lines), dat)
	}
	if lines[1] != "\"get\"\t50.00\t62.50\t0.5000\t0.5000" {
		t.Fatalf("GET line %q", lines[1])
	}
	if lines[2] != "\"cache\"\t-\t-\t-\t0.5000" {
		t.Fatalf("Cache line %q", lines[2])
	}
}

func TestWriteChart(t *testing.T) {
	if _, err := exec.LookPath("gnuplot"); err != nil {
		t.Skip("gnuplot not installed")
	}
	dir := t.TempDir()
	png, err := WriteChart(t.Context(), sampleRun(), ChartOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if png != filepath.Join(dir, "chart.png") {
		t.Fatalf("png at %s", png)
	}
}
