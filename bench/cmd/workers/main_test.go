package main

import (
	"math"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestShares(t *testing.T) {
	tests := []struct {
		name string
		cpu  []time.Duration
		want []float64
	}{
		{name: "even", cpu: []time.Duration{time.Second, time.Second, time.Second}, want: []float64{1.0 / 3, 1.0 / 3, 1.0 / 3}},
		{name: "one idle", cpu: []time.Duration{3 * time.Second, time.Second, 0}, want: []float64{0.75, 0.25, 0}},
		{name: "no cpu at all", cpu: []time.Duration{0, 0}, want: []float64{0, 0}},
		{name: "none", cpu: nil, want: []float64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := shares(tt.cpu)
			if len(got) != len(tt.want) {
				t.Fatalf("shares(%v) = %v, want %v", tt.cpu, got, tt.want)
			}
			for i := range got {
				if math.Abs(got[i]-tt.want[i]) > 1e-9 {
					t.Fatalf("shares(%v) = %v, want %v", tt.cpu, got, tt.want)
				}
			}
		})
	}
}

func TestSpread(t *testing.T) {
	tests := []struct {
		name string
		xs   []float64
		want float64
	}{
		{name: "single", xs: []float64{100}, want: 0},
		{name: "none", xs: nil, want: 0},
		{name: "pair", xs: []float64{90, 110}, want: 10},
		{name: "zero median", xs: []float64{0, 0}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := spread(tt.xs); math.Abs(got-tt.want) > 1e-9 {
				t.Fatalf("spread(%v) = %v, want %v", tt.xs, got, tt.want)
			}
		})
	}
}

func TestMedianDuration(t *testing.T) {
	if got := medianDuration(nil); got != 0 {
		t.Fatalf("medianDuration(nil) = %v, want 0", got)
	}
	if got := medianDuration([]time.Duration{time.Millisecond, 3 * time.Millisecond}); got != 2*time.Millisecond {
		t.Fatalf("medianDuration = %v, want 2ms", got)
	}
}

func TestWriteTable(t *testing.T) {
	var b strings.Builder
	err := writeTable(&b, []cell{{
		Mode: "shared", Scenario: "keepalive",
		Rates: []float64{9000, 11000}, P99s: []time.Duration{2 * time.Millisecond, 4 * time.Millisecond},
		WorkerCPU: []time.Duration{2 * time.Second, time.Second, time.Second},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := "| shared | keepalive | 10000 | ±10.0% | 3ms | 0 | 50% / 25% / 25% |\n"
	if !strings.HasSuffix(b.String(), want) {
		t.Fatalf("table:\n%s\nwant last row:\n%s", b.String(), want)
	}
}

func TestEnv(t *testing.T) {
	env := map[string]string{"D": "5s", "N": "2", "BAD": "x"}
	getenv := func(k string) string { return env[k] }
	if d, err := envDuration(getenv, "D", time.Second); err != nil || d != 5*time.Second {
		t.Fatalf("envDuration(D) = %v, %v", d, err)
	}
	if d, err := envDuration(getenv, "MISSING", time.Second); err != nil || d != time.Second {
		t.Fatalf("envDuration(MISSING) = %v, %v", d, err)
	}
	if _, err := envDuration(getenv, "BAD", time.Second); err == nil {
		t.Fatal("envDuration(BAD): no error")
	}
	if n, err := envInt(getenv, "N", 3); err != nil || n != 2 {
		t.Fatalf("envInt(N) = %v, %v", n, err)
	}
	if _, err := envInt(getenv, "BAD", 3); err == nil {
		t.Fatal("envInt(BAD): no error")
	}
}

// TestBindSockets checks the two socket layouts the modes hand to workers:
// shared is one socket repeated, reuseport is n distinct sockets on one port.
func TestBindSockets(t *testing.T) {
	for _, mode := range []string{"shared", "reuseport"} {
		t.Run(mode, func(t *testing.T) {
			files, addr, err := bindSockets(mode, 3)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				for _, f := range files {
					f.Close()
				}
			}()
			if len(files) != 3 {
				t.Fatalf("got %d files, want 3", len(files))
			}
			distinct := map[*os.File]bool{}
			for _, f := range files {
				distinct[f] = true
				l, err := net.FileListener(f)
				if err != nil {
					t.Fatal(err)
				}
				if got := l.Addr().String(); got != addr {
					t.Errorf("socket on %s, want %s", got, addr)
				}
				l.Close()
			}
			want := map[string]int{"shared": 1, "reuseport": 3}[mode]
			if len(distinct) != want {
				t.Fatalf("%d distinct sockets, want %d", len(distinct), want)
			}
		})
	}
}
