package systemd

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	sdunit "github.com/coreos/go-systemd/v22/unit"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// unit is a parsed unit file: section -> key -> values in order.
type unit map[string]map[string][]string

var errSyntax = errors.New("unit file syntax")

var continuation = regexp.MustCompile(`\\\n[ \t]*`)

// parseUnit parses a unit file with go-systemd's parser (systemd.syntax(7):
// sections, comments, continuation lines) and applies the list semantics
// of systemd.unit(5): repeated keys accumulate, an empty assignment resets
// the list.
func parseUnit(text string) (unit, error) {
	opts, err := sdunit.DeserializeOptions(strings.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errSyntax, err)
	}
	u := unit{}
	for _, o := range opts {
		if o.Name == "" || strings.ContainsAny(o.Name, "=\n\t ") || strings.Contains(o.Section, "\n") {
			// go-systemd is lenient here; systemd.syntax(7) is not.
			return nil, fmt.Errorf("%w: bad key %q in section %q", errSyntax, o.Name, o.Section)
		}
		// systemd.syntax(7): a backslash-newline continues the line and
		// is replaced by a space; go-systemd keeps both in the value.
		o.Value = continuation.ReplaceAllString(o.Value, " ")
		if u[o.Section] == nil {
			u[o.Section] = map[string][]string{}
		}
		if o.Value == "" {
			u[o.Section][o.Name] = []string{}
			continue
		}
		u[o.Section][o.Name] = append(u[o.Section][o.Name], o.Value)
	}
	return u, nil
}

// get returns the last value of key in section ("" if unset).
func (u unit) get(section, key string) string {
	vs := u[section][key]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

func loadUnit(t *testing.T, name string) unit {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	u, err := parseUnit(string(b))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return u
}

func TestParseUnit(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    unit
		wantErr bool
	}{
		{name: "sections and repeats", in: "[Unit]\nDescription=x\n\n[Socket]\nListenStream=80\nListenStream=443\n",
			want: unit{"Unit": {"Description": {"x"}}, "Socket": {"ListenStream": {"80", "443"}}}},
		{name: "comments", in: "# c\n[A]\n; c\nK=v # not a comment\n", want: unit{"A": {"K": {"v # not a comment"}}}},
		{name: "empty resets", in: "[A]\nK=1\nK=\nK=2\n", want: unit{"A": {"K": {"2"}}}},
		{name: "empty value", in: "[A]\nK=\n", want: unit{"A": {"K": {}}}},
		{name: "continuation", in: "[A]\nK=a \\\n  b\n", want: unit{"A": {"K": {"a  b"}}}},
		{name: "value with equals", in: "[A]\nEnvironment=X=1\n", want: unit{"A": {"Environment": {"X=1"}}}},
		{name: "outside section is ignored, as systemd does", in: "K=v\n[A]\nL=w\n", want: unit{"A": {"L": {"w"}}}},
		{name: "no equals", in: "[A]\nnonsense\n", wantErr: true},
		{name: "bad header", in: "[A\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseUnit(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				if !errors.Is(err, errSyntax) {
					t.Errorf("error %v does not wrap errSyntax", err)
				}
				return
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func FuzzParseUnit(f *testing.F) {
	for _, name := range []string{"handoff.service", "handoff.socket", "handoff@.service", "handoff-workers.target"} {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(string(b))
		}
	}
	f.Add("[A]\nK=a \\\n# c\n b\n")
	f.Fuzz(func(t *testing.T, in string) {
		u, err := parseUnit(in)
		if err != nil {
			return
		}
		for s, keys := range u {
			for k := range keys {
				if k == "" || strings.ContainsAny(k, "\n=") || strings.Contains(s, "\n") {
					t.Errorf("bad key %q in section %q", k, s)
				}
			}
		}
	})
}

// TestSockets pins the fd names handoff looks up and that every socket
// triggers a unit that exists.
func TestSockets(t *testing.T) {
	tests := []struct {
		name     string
		file     string
		fdName   string
		listen   string
		service  string
		template bool
		datagram bool // ListenDatagram= rather than ListenStream=
	}{
		{name: "http", file: "handoff.socket", fdName: "http", listen: "80", service: "handoff.service"},
		{name: "https", file: "handoff-https.socket", fdName: "https", listen: "443", service: "handoff.service"},
		{name: "https-quic", file: "handoff-https-quic.socket", fdName: "https-quic", listen: "443", service: "handoff.service", datagram: true},
		{name: "admin", file: "handoff-admin.socket", fdName: "admin", listen: "127.0.0.1:9901", service: "handoff.service"},
		{name: "worker admin", file: "handoff-admin@.socket", fdName: "admin", listen: "/run/handoff-admin/%i.sock", service: "handoff@%i.service", template: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := loadUnit(t, tt.file)
			if got := u["Socket"]["FileDescriptorName"]; !slices.Equal(got, []string{tt.fdName}) {
				t.Errorf("FileDescriptorName = %q, want exactly %q (one name per socket unit, systemd.socket(5))", got, tt.fdName)
			}
			listenKey := "ListenStream"
			if tt.datagram {
				listenKey = "ListenDatagram"
			}
			if got := u["Socket"][listenKey]; !slices.Equal(got, []string{tt.listen}) {
				t.Errorf("%s = %q, want %q", listenKey, got, tt.listen)
			}
			if got := u.get("Socket", "Service"); got != tt.service {
				t.Errorf("Service = %q, want %q", got, tt.service)
			}
			file := tt.service
			if tt.template {
				file = strings.Replace(file, "%i", "", 1)
			}
			if _, err := os.Stat(file); err != nil {
				t.Errorf("Service=%s: %v", tt.service, err)
			}
			if acc := u.get("Socket", "Accept"); acc != "" && acc != "no" {
				t.Errorf("Accept=%s: handoff accepts itself", acc)
			}
		})
	}
}

// TestServices pins the lifecycle contract of both services.
func TestServices(t *testing.T) {
	want := map[string]string{
		"Type":                    "notify",
		"NotifyAccess":            "all",
		"Restart":                 "on-failure",
		"User":                    "handoff",
		"ProtectSystem":           "strict",
		"NoNewPrivileges":         "yes",
		"PrivateTmp":              "yes",
		"SystemCallFilter":        "~@privileged @resources",
		"SystemCallArchitectures": "native",
		"RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
		"StateDirectory":          "handoff",
		"ConfigurationDirectory":  "handoff",
	}
	for _, file := range []string{"handoff.service", "handoff@.service"} {
		t.Run(file, func(t *testing.T) {
			u := loadUnit(t, file)
			s := u["Service"]
			for k, v := range want {
				if got := u.get("Service", k); got != v {
					t.Errorf("%s=%q, want %q", k, got, v)
				}
			}
			if !slices.Contains(s["SystemCallFilter"], "@system-service") {
				t.Errorf("SystemCallFilter=%q lacks @system-service", s["SystemCallFilter"])
			}
			for _, k := range []string{"WatchdogSec", "FileDescriptorStoreMax", "ExecReload", "CapabilityBoundingSet", "RuntimeDirectory"} {
				if _, ok := s[k]; !ok {
					t.Errorf("%s is not set", k)
				}
			}
			// A minimal Debian has no kill(1) (it comes with procps).
			for _, r := range s["ExecReload"] {
				if strings.Contains(r, "kill") {
					t.Errorf("ExecReload=%s needs kill(1)", r)
				}
				if !strings.HasPrefix(r, "/usr/bin/handoff reload ") || !strings.HasSuffix(r, "$MAINPID") {
					t.Errorf("ExecReload=%s, want /usr/bin/handoff reload … $MAINPID", r)
				}
			}
			if n, err := strconv.Atoi(u.get("Service", "FileDescriptorStoreMax")); err != nil || n < 8 {
				t.Errorf("FileDescriptorStoreMax=%q, want room for every self-bound listener", u.get("Service", "FileDescriptorStoreMax"))
			}
		})
	}
}

// TestTemplateMatchesService keeps handoff@.service's [Service] identical to
// handoff.service's except for the keys that must differ per instance.
func TestTemplateMatchesService(t *testing.T) {
	single, tmpl := loadUnit(t, "handoff.service"), loadUnit(t, "handoff@.service")
	differ := map[string]bool{"Sockets": true, "ExecReload": true, "RuntimeDirectory": true}
	keys := map[string]bool{}
	for k := range single["Service"] {
		keys[k] = true
	}
	for k := range tmpl["Service"] {
		keys[k] = true
	}
	for k := range keys {
		if differ[k] {
			continue
		}
		if a, b := single["Service"][k], tmpl["Service"][k]; !slices.Equal(a, b) {
			t.Errorf("[Service] %s: handoff.service %q, handoff@.service %q", k, a, b)
		}
	}
	for _, k := range []string{"StartLimitIntervalSec", "StartLimitBurst"} {
		if a, b := single.get("Unit", k), tmpl.get("Unit", k); a != b || a == "" {
			t.Errorf("[Unit] %s: handoff.service %q, handoff@.service %q", k, a, b)
		}
	}
	if got := tmpl.get("Service", "Sockets"); !strings.Contains(got, "handoff.socket") || !strings.Contains(got, "handoff-admin@%i.socket") {
		t.Errorf("handoff@.service Sockets=%q, want handoff.socket and its own admin socket", got)
	}
	target := loadUnit(t, "handoff-workers.target")
	if wants := strings.Fields(strings.Join(target["Unit"]["Wants"], " ")); len(wants) < 2 {
		t.Errorf("handoff-workers.target wants %q, want several handoff@N.service", wants)
	}
}

func TestSysusers(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("sysusers.d", "handoff.conf"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^u handoff - "[^"]+" /var/lib/handoff$`)
	if !re.Match(b) {
		t.Errorf("sysusers.d/handoff.conf has no `u handoff` line:\n%s", b)
	}
}

// TestSecurityScore runs `systemd-analyze security --offline=yes` when the
// host has it: exposure must stay at 2.0 ("OK") or below.
func TestSecurityScore(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("no systemd-analyze")
	}
	re := regexp.MustCompile(`Overall exposure level for \S+: (\d+\.\d+)`)
	for _, file := range []string{"handoff.service", "handoff@.service"} {
		t.Run(file, func(t *testing.T) {
			abs, err := filepath.Abs(file)
			if err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("systemd-analyze", "security", "--offline=yes", "--threshold=20", "--no-pager", abs).CombinedOutput()
			m := re.FindSubmatch(out)
			if m == nil {
				var ee *exec.ExitError
				if errors.As(err, &ee) || err == nil {
					t.Fatalf("no score in output (%v):\n%s", err, out)
				}
				t.Skipf("systemd-analyze security --offline unsupported here: %v", err)
			}
			t.Logf("exposure %s", m[1])
			if err != nil {
				t.Errorf("exposure %s above the threshold 2.0: %v", m[1], err)
			}
		})
	}
}
