package suite

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/handoff-proxy/handoff/bench/load"
	"github.com/handoff-proxy/handoff/bench/peers"
	"github.com/handoff-proxy/handoff/bench/pin"
	"github.com/handoff-proxy/handoff/bench/report"
	"github.com/handoff-proxy/handoff/bench/selfcert"
)

// ProfileOptions configure Profile.
type ProfileOptions struct {
	// Options supply the machine settings (CPUs, binaries, load sizes,
	// Duration, Warmup, WorkDir); Peers, Scenarios and Repeat are ignored.
	Options
	// Scenario to profile, by name. Required.
	Scenario string
	// Profiler is bench/cmd/handoff-profile's executable. Required.
	Profiler string
	// OutDir receives cpu.pprof, allocs.pprof, allocs.pprof-base and
	// the text summaries cpu-top.txt and allocs-top.txt. Required.
	OutDir string
	// Go is the go command for `go tool pprof`. Empty means "go".
	Go string
}

// Profile runs one scenario against handoff-profile (handoff's server in a
// profilable process), with the CPU profile covering exactly the measured
// window and the allocation profile diffed against its start, and writes
// `go tool pprof -top` summaries next to the profiles.
func Profile(ctx context.Context, o ProfileOptions) (load.Result, error) {
	o.defaults()
	scs, err := selectScenarios([]string{o.Scenario})
	if err != nil {
		return load.Result{}, err
	}
	sc := scs[0]
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return load.Result{}, fmt.Errorf("create profile dir: %w", err)
	}
	tlsDir := filepath.Join(o.WorkDir, "tls")
	if err := os.MkdirAll(tlsDir, 0o755); err != nil {
		return load.Result{}, fmt.Errorf("create work dir: %w", err)
	}
	files, err := selfcert.Write(tlsDir)
	if err != nil {
		return load.Result{}, err
	}
	be, stopBackend, err := StartBackend(ctx, BackendOptions{Binary: o.BackendBinary, TLS: files, Pin: pin.Options{CPUs: o.LoadCPUs, Nice: o.Nice}, LogPath: filepath.Join(o.WorkDir, "backend.log")})
	if err != nil {
		return load.Result{}, err
	}
	defer stopBackend()
	outAbs, err := filepath.Abs(o.OutDir)
	if err != nil {
		return load.Result{}, fmt.Errorf("profile dir: %w", err)
	}
	cpu, allocs := filepath.Join(outAbs, "cpu.pprof"), filepath.Join(outAbs, "allocs.pprof")
	dir := filepath.Join(o.WorkDir, "profile-"+sc.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return load.Result{}, fmt.Errorf("create run dir: %w", err)
	}
	proc, err := peers.Start(ctx, peers.Handoff, peers.StartOptions{
		Dir: dir, Backend: be, TLS: files, Pin: pin.Options{CPUs: o.ProxyCPUs, Nice: o.Nice}, Workers: o.Workers,
		HandoffBinary: o.Profiler, HandoffArgs: []string{"-cpuprofile", cpu, "-allocsprofile", allocs}, Logger: o.Logger,
	})
	if err != nil {
		return load.Result{}, err
	}
	defer proc.Stop()
	if o.Warmup > 0 {
		if _, err := o.drive(ctx, sc, proc.Endpoints, dir, max(o.Warmup, time.Second)); err != nil {
			return load.Result{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	if err := proc.Signal(syscall.SIGUSR1); err != nil {
		return load.Result{}, err
	}
	r, err := o.drive(ctx, sc, proc.Endpoints, dir, o.Duration)
	if err != nil {
		return load.Result{}, err
	}
	if err := proc.Signal(syscall.SIGUSR2); err != nil {
		return load.Result{}, err
	}
	// Stop waits for the process, which writes the profiles on SIGUSR2
	// and again (no-op) on exit.
	if err := proc.Stop(); err != nil {
		return r, err
	}
	goCmd := o.Go
	if goCmd == "" {
		goCmd = "go"
	}
	tops := []struct {
		out  string
		args []string
	}{
		{"cpu-top.txt", []string{"tool", "pprof", "-top", "-nodecount=40", o.Profiler, cpu}},
		{"cpu-cum.txt", []string{"tool", "pprof", "-top", "-cum", "-nodecount=40", o.Profiler, cpu}},
		{"allocs-top.txt", []string{"tool", "pprof", "-top", "-sample_index=alloc_space", "-nodecount=40", "-diff_base", allocs + "-base", o.Profiler, allocs}},
		{"allocs-count-top.txt", []string{"tool", "pprof", "-top", "-sample_index=alloc_objects", "-nodecount=40", "-diff_base", allocs + "-base", o.Profiler, allocs}},
	}
	for _, t := range tops {
		out, err := exec.CommandContext(ctx, goCmd, t.args...).CombinedOutput()
		if err != nil {
			return r, fmt.Errorf("go tool pprof for %s: %w: %s", t.out, err, lastLine(out))
		}
		if err := os.WriteFile(filepath.Join(o.OutDir, t.out), out, 0o644); err != nil {
			return r, fmt.Errorf("write %s: %w", t.out, err)
		}
	}
	return r, nil
}

// Worst returns the scenario where handoff spends the most CPU per
// operation relative to HAProxy in a results run; "" when handoff has no
// comparable row. CPU per operation, not rate: on a 2-core machine the
// rate of a cheap proxy is often capped by the load generator's core, so
// rate ratios understate the gap while CPU cost does not.
func Worst(r *report.Run) string {
	cpu := map[string]float64{}
	for _, row := range r.Rows {
		if row.Peer == report.RefHAProxy && row.Summary != nil && row.Summary.CPUPerBasis > 0 {
			cpu[row.Scenario] = row.Summary.CPUPerBasis
		}
	}
	worst, ratio := "", 0.0
	for _, row := range r.Rows {
		if row.Peer != peers.Handoff || row.Summary == nil || cpu[row.Scenario] == 0 {
			continue
		}
		if x := row.Summary.CPUPerBasis / cpu[row.Scenario]; x > ratio {
			worst, ratio = row.Scenario, x
		}
	}
	return worst
}
