package procstat

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseStat(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Stat
		wantErr bool
	}{
		{
			name: "plain",
			in:   "1234 (nginx) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 1 0 100 1000 10 18446744073709551615",
			want: Stat{PID: 1234, PPID: 1, UTime: 250, STime: 75},
		},
		{
			name: "comm with spaces and parens",
			in:   "42 (a (b) c) R 7 42 42 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 1 1 1",
			want: Stat{PID: 42, PPID: 7, UTime: 3, STime: 4},
		},
		{name: "truncated", in: "42 (x) R 7 42", wantErr: true},
		{name: "no comm", in: "42 x R 7", wantErr: true},
		{name: "bad utime", in: "1 (x) S 0 1 1 0 -1 0 0 0 0 0 zz 4 0 0", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStat([]byte(tt.in))
			if tt.wantErr {
				if !errors.Is(err, ErrFormat) {
					t.Fatalf("err = %v, want ErrFormat", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Status
		wantErr bool
	}{
		{
			name: "user process",
			in:   "Name:\thandoff\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nThreads:\t7\n",
			want: Status{RSS: 10240 * 1024, HWM: 20480 * 1024, Threads: 7},
		},
		{name: "kernel thread has no Vm lines", in: "Name:\tkworker\nThreads:\t1\n", want: Status{Threads: 1}},
		{name: "no threads line", in: "VmRSS:\t1 kB\n", wantErr: true},
		{name: "bad unit", in: "VmRSS:\t1 MB\nThreads:\t1\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStatus([]byte(tt.in))
			if tt.wantErr {
				if !errors.Is(err, ErrFormat) {
					t.Fatalf("err = %v, want ErrFormat", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestSampleTree runs a shell with a child and checks both are counted and
// that CPU time grows when the child burns CPU.
func TestSampleTree(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sh -c 'i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; sleep 30' & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r := Reader{}
		tree, _ := r.Tree(cmd.Process.Pid)
		for _, p := range tree[1:] {
			if pr, err := os.FindProcess(p); err == nil {
				_ = pr.Kill()
			}
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	r := Reader{}
	deadline := time.Now().Add(20 * time.Second)
	for {
		s, err := r.Sample(cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if s.Procs >= 2 && s.CPU > 20*time.Millisecond {
			if s.RSS <= 0 || s.HWM < s.RSS || s.FDs <= 0 || s.Threads < 2 {
				t.Fatalf("implausible sample %+v", s)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("child never showed up with CPU time: %+v", s)
		}
		time.Sleep(50 * time.Millisecond) // polling a real process: no clock to inject
	}
}

func TestSampleFakeRoot(t *testing.T) {
	root := t.TempDir()
	write := func(pid, stat, status string, fds int) {
		dir := filepath.Join(root, pid)
		if err := os.MkdirAll(filepath.Join(dir, "fd"), 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range fds {
			if err := os.WriteFile(filepath.Join(dir, "fd", strings.Repeat("x", i+1)), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "status"), []byte(status), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("10", "10 (master) S 1 0 0 0 0 0 0 0 0 0 100 100 0 0", "VmRSS:\t100 kB\nVmHWM:\t200 kB\nThreads:\t1\n", 3)
	write("11", "11 (worker) S 10 0 0 0 0 0 0 0 0 0 300 100 0 0", "VmRSS:\t1000 kB\nVmHWM:\t2000 kB\nThreads:\t2\n", 5)
	write("12", "12 (other) S 1 0 0 0 0 0 0 0 0 0 999 999 0 0", "VmRSS:\t9 kB\nVmHWM:\t9 kB\nThreads:\t1\n", 1)
	s, err := Reader{Root: root}.Sample(10)
	if err != nil {
		t.Fatal(err)
	}
	want := Sample{CPU: 6 * time.Second, RSS: 1100 * 1024, HWM: 2200 * 1024, FDs: 8, Threads: 3, Procs: 2}
	if s != want {
		t.Fatalf("got %+v, want %+v", s, want)
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("1234 (nginx) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 1 0"))
	f.Add([]byte("42 (a (b) c) R 7 42 42 0 -1 0 0 0 0 0 3 4 0 0"))
	f.Add([]byte("(x)"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseStat(b)
		if err != nil && !errors.Is(err, ErrFormat) {
			t.Fatalf("error not wrapping ErrFormat: %v", err)
		}
		if err == nil && s.PID == 0 && !strings.Contains(string(b), "0") {
			t.Fatalf("pid 0 parsed from %q", b)
		}
	})
}

func FuzzParseStatus(f *testing.F) {
	f.Add([]byte("VmHWM:\t20480 kB\nVmRSS:\t10240 kB\nThreads:\t7\n"))
	f.Add([]byte("Threads:\t1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseStatus(b)
		if err != nil && !errors.Is(err, ErrFormat) {
			t.Fatalf("error not wrapping ErrFormat: %v", err)
		}
		if err == nil && (s.RSS < 0 || s.HWM < 0 || s.Threads < 0) {
			t.Fatalf("negative values %+v from %q", s, b)
		}
	})
}
