package activation

import (
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestParseListenEnv(t *testing.T) {
	const pid, ppid = 4242, 17
	tests := []struct {
		name    string
		env     listenEnv
		want    []string
		wantErr error
	}{
		{name: "nothing set", env: listenEnv{}},
		{name: "pid of another process", env: listenEnv{pid: "1", fds: "2"}},
		{name: "fds without pid", env: listenEnv{fds: "2", names: "a:b"}},
		{name: "our pid, no fds variable", env: listenEnv{pid: "4242"}},
		{name: "zero fds", env: listenEnv{pid: "4242", fds: "0", names: "ignored"}},
		{name: "names default to unknown", env: listenEnv{pid: "4242", fds: "2"}, want: []string{"unknown", "unknown"}},
		{name: "empty names variable", env: listenEnv{pid: "4242", fds: "1", names: ""}, want: []string{"unknown"}},
		{name: "named", env: listenEnv{pid: "4242", fds: "3", names: "http:admin:http"}, want: []string{"http", "admin", "http"}},
		{name: "empty entry is unknown", env: listenEnv{pid: "4242", fds: "2", names: "http:"}, want: []string{"http", "unknown"}},
		{name: "name with space", env: listenEnv{pid: "4242", fds: "1", names: "my sock"}, want: []string{"my sock"}},
		{name: "parent pid matches", env: listenEnv{ppid: "17", fds: "1", names: "http"}, want: []string{"http"}},
		{name: "parent pid differs", env: listenEnv{ppid: "18", fds: "1", names: "http"}},
		{name: "LISTEN_PID wins over parent pid", env: listenEnv{pid: "1", ppid: "17", fds: "1"}},
		{name: "too few names", env: listenEnv{pid: "4242", fds: "2", names: "http"}, wantErr: ErrInvalidEnv},
		{name: "too many names", env: listenEnv{pid: "4242", fds: "1", names: "a:b"}, wantErr: ErrInvalidEnv},
		{name: "bad pid", env: listenEnv{pid: "42x", fds: "1"}, wantErr: ErrInvalidEnv},
		{name: "signed pid", env: listenEnv{pid: "+4242", fds: "1"}, wantErr: ErrInvalidEnv},
		{name: "zero pid", env: listenEnv{pid: "0", fds: "1"}, wantErr: ErrInvalidEnv},
		{name: "bad fds", env: listenEnv{pid: "4242", fds: "-1"}, wantErr: ErrInvalidEnv},
		{name: "space in fds", env: listenEnv{pid: "4242", fds: " 1"}, wantErr: ErrInvalidEnv},
		{name: "huge fds", env: listenEnv{pid: "4242", fds: "99999999999999999999"}, wantErr: ErrInvalidEnv},
		{name: "fds above limit", env: listenEnv{pid: "4242", fds: strconv.Itoa(maxListenFDs + 1)}, wantErr: ErrInvalidEnv},
		{name: "control byte in name", env: listenEnv{pid: "4242", fds: "1", names: "a\tb"}, wantErr: ErrInvalidName},
		{name: "overlong name", env: listenEnv{pid: "4242", fds: "1", names: strings.Repeat("n", 256)}, wantErr: ErrInvalidName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseListenEnv(tt.env, pid, ppid)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("names = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestReadListenEnvUnsets(t *testing.T) {
	e := newFakeEnv("LISTEN_PID=1", "LISTEN_FDS=2", "LISTEN_FDNAMES=a:b", "HANDOFF_LISTEN_PPID=3", "OTHER=x")
	le, err := readListenEnv(e.env(1, 1))
	if err != nil {
		t.Fatal(err)
	}
	if le != (listenEnv{pid: "1", ppid: "3", fds: "2", names: "a:b"}) {
		t.Errorf("read %+v", le)
	}
	for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "HANDOFF_LISTEN_PPID"} {
		if _, ok := e.get(k); ok {
			t.Errorf("%s still set", k)
		}
	}
	if v, _ := e.get("OTHER"); v != "x" {
		t.Errorf("OTHER = %q, want it untouched", v)
	}
}

func TestChildEnviron(t *testing.T) {
	var f *os.File // ChildEnviron only looks at the names
	tests := []struct {
		name    string
		environ []string
		files   []NamedFile
		want    []string
		wantErr error
	}{
		{
			name:    "replaces inherited variables",
			environ: []string{"PATH=/bin", "LISTEN_PID=1", "LISTEN_FDS=9", "LISTEN_FDNAMES=x", "WATCHDOG_PID=1", "WATCHDOG_USEC=5000000", "NOTIFY_SOCKET=/run/n"},
			files:   []NamedFile{{Name: "http", File: f}, {Name: "http", File: f}, {Name: "admin", File: f}},
			want:    []string{"PATH=/bin", "WATCHDOG_USEC=5000000", "NOTIFY_SOCKET=/run/n", "HANDOFF_LISTEN_PPID=77", "LISTEN_FDS=3", "LISTEN_FDNAMES=http:http:admin"},
		},
		{
			name:    "no files strips only",
			environ: []string{"LISTEN_FDS=1", "A=b"},
			want:    []string{"A=b"},
		},
		{
			name:    "bad name",
			files:   []NamedFile{{Name: "a:b", File: f}},
			wantErr: ErrInvalidName,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ChildEnviron(tt.environ, 77, tt.files)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("environ = %q\nwant %q", got, tt.want)
			}
		})
	}
	if _, err := ChildEnviron(nil, 0, nil); !errors.Is(err, ErrInvalidEnv) {
		t.Errorf("parent pid 0: err = %v", err)
	}
}
