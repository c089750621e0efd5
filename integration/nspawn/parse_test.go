package nspawn

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestParseShow(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]string
	}{
		{name: "empty", in: "", want: map[string]string{}},
		{name: "typical", in: "ActiveState=active\nSubState=running\nMainPID=42\n",
			want: map[string]string{"ActiveState": "active", "SubState": "running", "MainPID": "42"}},
		{name: "value with equals", in: "ExecMainStatus=0\nEnvironment=A=1 B=2\n",
			want: map[string]string{"ExecMainStatus": "0", "Environment": "A=1 B=2"}},
		{name: "empty value", in: "StatusText=\n", want: map[string]string{"StatusText": ""}},
		{name: "no trailing newline, crlf", in: "A=1\r\nB=2", want: map[string]string{"A": "1", "B": "2"}},
		{name: "junk lines ignored", in: "junk\n=nokey\nA=1\n", want: map[string]string{"A": "1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseShow(tt.in); !maps.Equal(got, tt.want) {
				t.Errorf("ParseShow(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzParseShow(f *testing.F) {
	for _, s := range []string{"", "A=1\n", "A=1\nB==\n", "=\n=x", "A\r\nB=c=d\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := ParseShow(in)
		for k, v := range got {
			if k == "" {
				t.Errorf("empty key with value %q", v)
			}
			if slices.ContainsFunc([]byte(k+v), func(b byte) bool { return b == '\n' }) {
				t.Errorf("newline in %q=%q", k, v)
			}
		}
	})
}

func TestParseOwner(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Owner
		wantErr bool
	}{
		{name: "full", in: "pid=10 start=20 leader=30 leader_start=40\n", want: Owner{10, 20, 30, 40}},
		{name: "before boot", in: "pid=10 start=20", want: Owner{Pid: 10, Start: 20}},
		{name: "unknown key ignored", in: "pid=1 future=x", want: Owner{Pid: 1}},
		{name: "empty", in: "", wantErr: true},
		{name: "no pid", in: "start=3", wantErr: true},
		{name: "bad number", in: "pid=x", wantErr: true},
		{name: "negative leader", in: "pid=1 leader=-1", wantErr: true},
		{name: "no equals", in: "pid 1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseOwner(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseOwner(%q) error %v, want error %v", tt.in, err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, errOwner) {
				t.Errorf("error %v does not wrap errOwner", err)
			}
			if got != tt.want {
				t.Errorf("ParseOwner(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzParseOwner(f *testing.F) {
	f.Add("pid=10 start=20 leader=30 leader_start=40\n")
	f.Add("pid=1")
	f.Add("pid=-1 leader=x")
	f.Fuzz(func(t *testing.T, in string) {
		o, err := ParseOwner(in)
		if err != nil {
			return
		}
		// Whatever parses must survive a round trip.
		back, err := ParseOwner(o.String())
		if err != nil || back != o {
			t.Errorf("round trip of %+v: %+v, %v", o, back, err)
		}
	})
}

func TestParseStatStartTime(t *testing.T) {
	tail := func(start string) string {
		// Fields 3..21, then starttime (22), then more.
		s := "S"
		for i := 4; i <= 21; i++ {
			s += fmt.Sprintf(" %d", i)
		}
		return s + " " + start + " 23 24"
	}
	tests := []struct {
		name    string
		in      string
		want    uint64
		wantErr bool
	}{
		{name: "plain", in: "123 (systemd) " + tail("98765"), want: 98765},
		{name: "comm with spaces and parens", in: "7 (a) (b c)) " + tail("5"), want: 5},
		{name: "no comm", in: "123 systemd " + tail("1"), wantErr: true},
		{name: "short", in: "1 (x) S 1 2", wantErr: true},
		{name: "not a number", in: "1 (x) " + tail("x"), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStatStartTime(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ParseStatStartTime = %d, %v; want %d, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func FuzzParseStatStartTime(f *testing.F) {
	if b, err := os.ReadFile("/proc/self/stat"); err == nil {
		f.Add(string(b))
	}
	f.Add("1 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21")
	f.Add("1 ())) S")
	f.Fuzz(func(t *testing.T, in string) {
		_, _ = ParseStatStartTime(in) // must not panic
	})
}

func TestProcStartTimeAndChildren(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep(1):", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if !slices.Contains(Children(os.Getpid()), cmd.Process.Pid) {
		t.Errorf("Children(self) = %v, want it to contain %d", Children(os.Getpid()), cmd.Process.Pid)
	}
	self, err := ProcStartTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	child, err := ProcStartTime(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if child < self {
		t.Errorf("child started at %d, before its parent at %d", child, self)
	}
}

func TestReapStale(t *testing.T) {
	self, err := ProcStartTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Skip("no true(1):", err)
	}
	old := time.Now().Add(-time.Hour)
	tests := []struct {
		name     string
		dir      string
		owner    string // "" means no owner file
		old      bool
		wantKept bool
	}{
		{name: "owner alive", dir: "m-alive", owner: Owner{Pid: os.Getpid(), Start: self}.String(), wantKept: true},
		{name: "owner dead", dir: "m-dead", owner: Owner{Pid: dead.Process.Pid, Start: 1}.String()},
		{name: "pid recycled", dir: "m-recycled", owner: Owner{Pid: os.Getpid(), Start: self + 1}.String()},
		{name: "young without owner", dir: "m-young", wantKept: true},
		{name: "old without owner", dir: "m-old", old: true},
		{name: "garbage owner", dir: "m-garbage", owner: "nonsense"},
		{name: "not a machine", dir: "other", wantKept: true},
	}
	work := t.TempDir()
	for _, tt := range tests {
		dir := filepath.Join(work, tt.dir)
		if err := os.MkdirAll(filepath.Join(dir, "upper"), 0o755); err != nil {
			t.Fatal(err)
		}
		if tt.owner != "" {
			if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(tt.owner), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if tt.old {
			if err := os.Chtimes(dir, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	n, err := ReapStale(work, nil)
	if err != nil {
		t.Fatal(err)
	}
	removed := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := os.Stat(filepath.Join(work, tt.dir))
			kept := err == nil
			if kept != tt.wantKept {
				t.Errorf("kept %v, want %v", kept, tt.wantKept)
			}
			if !kept {
				removed++
			}
		})
	}
	if n != removed {
		t.Errorf("ReapStale reported %d removed, %d were", n, removed)
	}
}
