package pin

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCommand(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want []string
	}{
		{name: "unpinned", opts: Options{}, want: []string{"echo", "hi"}},
		{name: "pinned", opts: Options{CPUs: "1"}, want: []string{"taskset", "-c", "1", "echo", "hi"}},
		{name: "niced", opts: Options{CPUs: "1", Nice: -5}, want: []string{"nice", "-n", "-5", "taskset", "-c", "1", "echo", "hi"}},
		{name: "custom taskset", opts: Options{CPUs: "0-1", Taskset: "/usr/bin/taskset"}, want: []string{"/usr/bin/taskset", "-c", "0-1", "echo", "hi"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := Command(context.Background(), tt.opts, "echo", "hi")
			if got := strings.Join(cmd.Args, " "); got != strings.Join(tt.want, " ") {
				t.Fatalf("args %q, want %q", got, tt.want)
			}
		})
	}
}

// TestPinnedAffinity runs taskset for real and reads the child's allowed
// CPUs from /proc/self/status.
func TestPinnedAffinity(t *testing.T) {
	if _, err := exec.LookPath("taskset"); err != nil {
		t.Skip("taskset not installed")
	}
	out, err := Command(t.Context(), Options{CPUs: "0"}, "grep", "Cpus_allowed_list", "/proc/self/status").Output()
	if err != nil {
		t.Fatal(err)
	}
	if f := strings.Fields(string(out)); len(f) != 2 || f[1] != "0" {
		t.Fatalf("child affinity %q, want 0", out)
	}
}
