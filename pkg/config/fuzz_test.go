package config

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"

	"github.com/handoff-proxy/handoff/pkg/balance"
)

// checkLoadResult asserts Load's contract: Errors with located, non-empty
// problems, or a config that validates and survives a MarshalYAML round
// trip.
func checkLoadResult(t *testing.T, l *Loaded, err error, opts LoadOptions) {
	t.Helper()
	if err != nil {
		var errs Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Fatalf("Load error %T %v is not a non-empty Errors", err, err)
		}
		for _, e := range errs {
			if e == nil || e.Msg == "" {
				t.Fatalf("empty problem in %v", errs)
			}
		}
		return
	}
	if err := l.Config.Validate(activatedNames(opts.ActivatedNames, len(opts.Overrides.Backends) > 0)); err != nil {
		t.Fatalf("Load returned a config that does not validate: %v", err)
	}
	out, err := MarshalYAML(l.Config)
	if err != nil {
		t.Fatalf("MarshalYAML: %v", err)
	}
	again, err := Load(LoadOptions{File: writeFile(t, t.TempDir(), "effective.yaml", string(out)), ActivatedNames: opts.ActivatedNames})
	if err != nil {
		t.Fatalf("reloading the marshaled config: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(again.Config, l.Config) {
		t.Fatalf("round trip changed the config:\n%s", out)
	}
}

func FuzzLoad(f *testing.F) {
	full, err := os.ReadFile(filepath.Join("testdata", "full.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		"",
		baseYAML,
		string(full),
		"listeners: [{name: http}]\n",
		"shutdown_timeout: 5 parsecs\n",
		"upstreams:\n  a:\n    targets: [{address: 'x:1', weigth: 2}]\n",
		"a: &a [*a]\n",
		"x: &x {<<: *x}\n",
		"listeners: [~, 1, {}]\nroutes: {}\n",
		"log: {access: yes}\nlimits: {max_header_bytes: 1e99}\n",
		"routes:\n  - match: {methods: GET,post, headers: {X: y}}\n    upstream: a\n",
		"upstreams: {\"a.b\": {targets: [{address: '[::1]:80'}]}}\nroutes: [{upstream: a.b}]\n",
		"\t- ]",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, content string) {
		opts := LoadOptions{
			File:           writeFile(t, t.TempDir(), "handoff.yaml", content),
			ActivatedNames: []string{"http", "web"},
		}
		l, err := Load(opts)
		checkLoadResult(t, l, err, opts)
	})
}

func FuzzEnv(f *testing.F) {
	for _, seed := range [][2]string{
		{"HANDOFF_ADMIN__LISTEN", "127.0.0.1:9"},
		{"HANDOFF_SHUTDOWN_TIMEOUT", "5s"},
		{"HANDOFF_TRUSTED_PROXIES", "10.0.0.0/8,127.0.0.1"},
		{"HANDOFF_UPSTREAMS__DEFAULT__RETRIES", "3"},
		{"HANDOFF_UPSTREAMS__DEFAULT__TARGETS", "x:1"},
		{"HANDOFF_LOG", "x"},
		{"HANDOFF_", ""},
		{"HANDOFF___", "x"},
		{"HANDOFF_CONFIG", "/nonexistent"},
		{"HANDOFF_LOG__ACCESS", "maybe"},
		{"HANDOFF_LIMITS__MAX_HEADER_BYTES", "-5"},
		{"PATH", "/bin"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		opts := LoadOptions{
			Env:       []string{name + "=" + value, "HANDOFF_LOG__LEVEL=debug"},
			Overrides: Overrides{Listen: []string{"127.0.0.1:0"}, Backends: []string{"127.0.0.1:1"}},
		}
		l, err := Load(opts)
		checkLoadResult(t, l, err, opts)
		if err != nil || name == "HANDOFF_LOG__LEVEL" || strings.Contains(name, "=") {
			return
		}
		// The other variable is still attributed to itself.
		if got := l.Sources["log.level"]; got != "env HANDOFF_LOG__LEVEL" {
			t.Fatalf("Sources[log.level] = %q", got)
		}
	})
}

func FuzzListenAddress(f *testing.F) {
	for _, seed := range []string{"127.0.0.1:80", ":0", "[::1]:443", "[fe80::1%eth0]:1", "unix:/run/x.sock", "unix:@x", "unix:", "localhost:65536", "a b:1", "::1"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		norm, err := checkListenAddress(addr)
		if err != nil {
			if norm != "" {
				t.Fatalf("error %v with a normalized form %q", err, norm)
			}
			return
		}
		if strings.HasPrefix(addr, "unix:") {
			return
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			t.Fatalf("accepted %q, which net cannot split: %v", addr, err)
		}
		if norm == "" {
			return // port 0
		}
		if again, err := checkListenAddress(norm); err != nil || again != norm {
			t.Fatalf("normalized %q to %q, which normalizes to %q, %v", addr, norm, again, err)
		}
	})
}

func FuzzRouteMatch(f *testing.F) {
	f.Add("api.example.com", "/v1", "GET", "X-Env", "prod")
	f.Add("*.example.com", "/", "post", "authorization", "Bearer x")
	f.Add("*", "v1", "GE T", "X Y", "a\nb")
	f.Add("[::1]", "/a?b", "", "", "")
	f.Fuzz(func(t *testing.T, host, prefix, method, header, value string) {
		m := Match{Host: host, PathPrefix: prefix}
		if method != "" {
			m.Methods = []string{method}
		}
		if header != "" {
			m.Headers = map[string]string{header: value}
		}
		var v validator
		canon, ok := v.match("m", m)
		if ok != (len(v.errs.errs) == 0) {
			t.Fatalf("ok = %v with problems %v", ok, v.errs.errs)
		}
		// Host and method case never matter: the upper-cased variant
		// validates the same and is the same route.
		u := Match{Host: strings.ToUpper(host), PathPrefix: prefix}
		if method != "" {
			u.Methods = []string{strings.ToUpper(method)}
		}
		if header != "" {
			u.Headers = map[string]string{strings.ToUpper(header): value}
		}
		var w validator
		canonU, okU := w.match("m", u)
		if okU != ok || ok && canonU != canon {
			t.Fatalf("%+v: %v %q; upper-cased %+v: %v %q", m, ok, canon, u, okU, canonU)
		}
	})
}

func FuzzHashKey(f *testing.F) {
	for _, seed := range []string{"", "client_ip", "header:X-User", "cookie:sid", "header:", "cookie:a=b", "ip"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, key string) {
		_, err := balance.ParseHashKey(key)
		kind, name, found := strings.Cut(key, ":")
		switch {
		case key == "" || key == "client_ip":
			if err != nil {
				t.Fatalf("%q rejected: %v", key, err)
			}
		case found && (kind == "header" || kind == "cookie"):
			if (err == nil) != httpguts.ValidHeaderFieldName(name) {
				t.Fatalf("%q: err %v, but token = %v", key, err, httpguts.ValidHeaderFieldName(name))
			}
		default:
			if err == nil {
				t.Fatalf("%q accepted", key)
			}
		}
	})
}
