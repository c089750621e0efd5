package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/handoff-proxy/handoff/bench/load"
	"github.com/handoff-proxy/handoff/bench/report"
	"github.com/handoff-proxy/handoff/pkg/origin"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func noEnv(string) string { return "" }

func TestDriveTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	src := origin.NewSource(ln)
	t.Cleanup(func() { _ = src.Close() })
	var out bytes.Buffer
	if err := run(t.Context(), []string{"drive", "tcp", "-addr", ln.Addr().String(), "-conns", "2", "-duration", "1s"}, &out, os.Stderr, noEnv); err != nil {
		t.Fatal(err)
	}
	var r load.Result
	if err := json.Unmarshal(out.Bytes(), &r); err != nil || r.Unit != load.UnitMiB || r.Rate <= 0 {
		t.Fatalf("result %s: %+v %v", out.String(), r, err)
	}
}

func TestReportRerenders(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "results.json")
	run0 := &report.Run{
		Scenarios: []report.Scenario{{Name: "h1-get-1k", Title: "GET 1 KiB"}},
		Peers:     []string{"direct", "haproxy"},
	}
	run0.Row("h1-get-1k", "direct", "req").Samples = []report.Sample{{Rate: 100, Ops: 1000}}
	run0.Row("h1-get-1k", "haproxy", "req").Samples = []report.Sample{{Rate: 50, Ops: 500, CPUSeconds: 1}}
	f, err := os.Create(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := report.WriteJSON(f, run0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out := filepath.Join(dir, "out")
	if err := run(t.Context(), []string{"report", "-in", in, "-out", out}, os.Stdout, os.Stderr, noEnv); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(out, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "| GET 1 KiB | haproxy | 50.0 req/s |") || !strings.Contains(string(md), "0.50×") {
		t.Fatalf("table:\n%s", md)
	}
}

func TestRunRejectsBadInput(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
	}{
		{name: "unknown command", args: []string{"frobnicate"}},
		{name: "bad BENCH_REPEAT", args: []string{"run"}, env: map[string]string{"BENCH_REPEAT": "zero"}},
		{name: "bad BENCH_DURATION", args: []string{"run"}, env: map[string]string{"BENCH_DURATION": "ten"}},
		{name: "drive without kind", args: []string{"drive"}},
		{name: "report without -in", args: []string{"report"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string { return tt.env[k] }
			if err := run(t.Context(), tt.args, &bytes.Buffer{}, &bytes.Buffer{}, getenv); err == nil {
				t.Fatal("want error")
			}
		})
	}
}

func TestList(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), []string{"run", "-list"}, &out, os.Stderr, noEnv); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "h1-get-1k") || !strings.Contains(out.String(), "l4-tcp") {
		t.Fatalf("list:\n%s", out.String())
	}
}
