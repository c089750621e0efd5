package suite

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/handoff-proxy/handoff/bench/peers"
	"github.com/handoff-proxy/handoff/bench/report"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestScenariosAreConsistent(t *testing.T) {
	seen := map[string]bool{}
	caps := map[peers.Capability]bool{}
	for _, s := range Scenarios() {
		if s.Name == "" || s.Title == "" || seen[s.Name] {
			t.Errorf("scenario %+v: empty or duplicate name/title", s)
		}
		seen[s.Name] = true
		caps[s.Cap] = true
		if !slices.Contains([]string{ToolWrk, ToolH2load, ToolWS, ToolTCP, ToolRate, ToolH3}, s.Tool) {
			t.Errorf("scenario %s: unknown tool %q", s.Name, s.Tool)
		}
		if s.Tool != ToolTCP && s.Path == "" {
			t.Errorf("scenario %s: no path", s.Name)
		}
	}
	// Every capability a peer is compared on has a scenario.
	for _, spec := range peers.Specs("") {
		for c := range spec.Caps {
			if !caps[c] {
				t.Errorf("peer %s capability %q has no scenario", spec.Name, c)
			}
		}
	}
}

func TestSelectScenarios(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    int
		wantErr bool
	}{
		{name: "all", in: nil, want: len(Scenarios())},
		{name: "two", in: []string{"h1-get-1k", "ws-echo"}, want: 2},
		{name: "unknown", in: []string{"nope"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := selectScenarios(tt.in)
			if (err != nil) != tt.wantErr || len(got) != tt.want {
				t.Fatalf("got %d scenarios, err %v", len(got), err)
			}
		})
	}
}

func TestWorst(t *testing.T) {
	run := &report.Run{}
	add := func(sc, peer string, rate, cpu float64) {
		run.Row(sc, peer, "req").Samples = []report.Sample{{Rate: rate, Ops: rate * 10, CPUSeconds: cpu * rate * 10 / 10000}}
	}
	// h1: handoff slower by rate (0.5×) but only 2× the CPU;
	// h2c: same rate, 4× the CPU: the CPU gap decides.
	add("h1", peers.HAProxy, 20000, 0.3)
	add("h1", peers.Handoff, 10000, 0.6)
	add("h2c", peers.HAProxy, 10000, 0.3)
	add("h2c", peers.Handoff, 10000, 1.2)
	add("ws", peers.Handoff, 10000, 9) // no HAProxy row: not comparable
	run.Summarize()
	if got := Worst(run); got != "h2c" {
		t.Fatalf("Worst = %q, want h2c", got)
	}
	if got := Worst(&report.Run{}); got != "" {
		t.Fatalf("Worst of nothing = %q", got)
	}
}

// TestRunDirect runs one short scenario against the direct baseline with
// the real backend binary and wrk, end to end.
func TestRunDirect(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the backend and runs wrk")
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		t.Skip("wrk not installed")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "backend")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "github.com/handoff-proxy/handoff/bench/cmd/backend")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build backend: %v: %s", err, out)
	}
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	res, err := Run(t.Context(), Options{
		Peers: []string{peers.Direct}, Scenarios: []string{"h1-get-1k", "cache-hit-1k"},
		Duration: time.Second, Warmup: -1, Repeat: 2, Connections: 4,
		ProxyCPUs: "", LoadCPUs: "", WorkDir: work, BackendBinary: bin,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 2 {
		t.Fatalf("%d rows, want 2", len(res.Rows))
	}
	for _, row := range res.Rows {
		if len(row.Samples) != 2 || row.Summary == nil || row.Summary.Rate <= 0 || row.Summary.VsDirect != 1 {
			t.Fatalf("row %s: %+v (failures %v)", row.Scenario, row.Summary, row.Failures)
		}
	}
}
