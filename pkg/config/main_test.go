package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/handoff-proxy/handoff/pkg/handofftest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// writeFile writes content to dir/name (creating directories) and returns
// the path.
func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// loadErrors runs Load, which must fail, and returns its problems.
func loadErrors(t *testing.T, opts LoadOptions) Errors {
	t.Helper()
	l, err := Load(opts)
	if err == nil {
		y, _ := MarshalYAML(l.Config)
		t.Fatalf("Load succeeded, want errors; config:\n%s", y)
	}
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Load error %T %v is not Errors", err, err)
	}
	for _, e := range errs {
		t.Logf("problem: %v", e)
	}
	return errs
}

// mustLoad runs Load, which must succeed.
func mustLoad(t *testing.T, opts LoadOptions) *Loaded {
	t.Helper()
	l, err := Load(opts)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return l
}

// findError returns the problem with this source and key, or nil.
func findError(errs Errors, source, key string) *Error {
	for _, e := range errs {
		if e.Source == source && e.Key == key {
			return e
		}
	}
	return nil
}

// wantError fails unless errs has a problem at source and key whose
// message contains every one of msgs.
func wantError(t *testing.T, errs Errors, source, key string, msgs ...string) *Error {
	t.Helper()
	e := findError(errs, source, key)
	if e == nil {
		t.Fatalf("no problem at source %q key %q; have:\n%v", source, key, errs)
	}
	for _, m := range msgs {
		if !strings.Contains(e.Msg, m) {
			t.Errorf("problem %q: message does not contain %q", e, m)
		}
	}
	return e
}

// valueAt returns the value MarshalYAML prints for key, as text.
func valueAt(t *testing.T, c *Config, key string) string {
	t.Helper()
	vals := make(map[string]string)
	leafValues("", c, vals)
	v, ok := vals[key]
	if !ok {
		t.Fatalf("config has no key %q", key)
	}
	_, v, _ = strings.Cut(v, ":") // drop the YAML tag
	return strings.ReplaceAll(v, "\x00", ",")
}

// selfSigned writes a self-signed certificate for name and its key to dir
// and returns their paths.
func selfSigned(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	l := handofftest.SelfSigned(t, dir, name, name)
	return l.CertPath, l.KeyPath
}

// baseYAML is a small valid config.
const baseYAML = `listeners:
  - name: http
    address: 127.0.0.1:0
routes:
  - name: api
    match: {host: api.example.com, path_prefix: /v1}
    upstream: api
  - match: {}
    upstream: web
upstreams:
  api:
    targets:
      - address: 127.0.0.1:9001
      - address: http://127.0.0.1:9002
        weight: 3
  web:
    strategy: least_conn
    targets:
      - address: h2c://127.0.0.1:9003
`
