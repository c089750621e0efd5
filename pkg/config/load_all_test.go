package config

import (
	"slices"
	"strings"
	"testing"
)

// Regression: an unknown key hid the value errors of the same file, so
// `handoff check` needed one run per problem.
func TestLoadReportsLayerAndValueErrorsTogether(t *testing.T) {
	const bad = "upstreams:\n  web:\n    strategy: no_such_strategy\n    targets: [{address: \"127.0.0.1:1\"}]\nbogus_key: 1\n"
	tests := []struct {
		name, file, content     string
		strategyLine, bogusLine int
	}{
		{name: "yaml", file: "bad.yaml", content: bad, strategyLine: 3, bogusLine: 5},
		{name: "json", file: "bad.json", content: "{\n  \"upstreams\": {\n    \"web\": {\n      \"strategy\": \"no_such_strategy\",\n      \"targets\": [{\"address\": \"127.0.0.1:1\"}]\n    }\n  },\n  \"bogus_key\": 1\n}\n", strategyLine: 4, bogusLine: 8},
		{name: "toml", file: "bad.toml", content: "bogus_key = 1\n[upstreams.web]\nstrategy = \"no_such_strategy\"\ntargets = [{address = \"127.0.0.1:1\"}]\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), tt.file, tt.content)
			errs := loadErrors(t, LoadOptions{File: path, Overrides: Overrides{Listen: []string{"127.0.0.1:0"}}})
			s := wantError(t, errs, path, "upstreams.web.strategy", `"no_such_strategy" is not a strategy`)
			b := wantError(t, errs, path, "bogus_key", "unknown key")
			if tt.strategyLine != 0 && (s.Line != tt.strategyLine || b.Line != tt.bogusLine) {
				t.Errorf("lines: strategy %d, bogus_key %d; want %d, %d", s.Line, b.Line, tt.strategyLine, tt.bogusLine)
			}
		})
	}
}

func TestLoadErrorsSortedByLine(t *testing.T) {
	path := writeFile(t, t.TempDir(), "h.yaml", `listeners: [{name: http, address: "127.0.0.1:0"}]
zzz: 1
upstreams:
  web:
    strategy: nope
    targets: [{address: "127.0.0.1:1", weight: -1}]
aaa: 1
routes: [{upstream: web}]
`)
	errs := loadErrors(t, LoadOptions{File: path})
	var lines []int
	for _, e := range errs {
		lines = append(lines, e.Line)
	}
	if !slices.IsSorted(lines) || len(lines) < 4 {
		t.Errorf("lines %v, want at least 4, sorted", lines)
	}
	if errs[0].Key != "zzz" || errs[len(errs)-1].Key != "aaa" {
		t.Errorf("first %q, last %q; want zzz, aaa (file order, not key order)", errs[0].Key, errs[len(errs)-1].Key)
	}
}

func TestLoadRejectedValueDoesNotHideOrRepeat(t *testing.T) {
	dir := t.TempDir()
	main := writeFile(t, dir, "h.yaml", `listeners: [{name: http, address: "127.0.0.1:0"}]
shutdown_timeout: 5s
upstreams: {web: {targets: [{address: "127.0.0.1:1"}]}}
routes: [{upstream: web}]
`)
	writeFile(t, dir, "conf.d/10.yaml", "shutdown_timeout: soon\nupstreams: {api: {targets: nope}}\n")
	errs := loadErrors(t, LoadOptions{File: main})
	// One problem each: "targets: at least one target is required" would
	// repeat the type error, and the rejected duration must not reset the
	// main file's.
	if len(errs) != 2 {
		t.Fatalf("%d problems, want 2: %v", len(errs), errs)
	}
	if !strings.Contains(errs[0].Msg, "is not a duration") || !strings.Contains(errs[1].Msg, "expected a list") {
		t.Errorf("problems: %v", errs)
	}
}

// Regression: a reload of a file cut off after its listeners was
// accepted, and every request got 404.
func TestLoadRoutesRequired(t *testing.T) {
	const head = "listeners: [{name: http, address: \"127.0.0.1:0\"}]\nadmin: {listen: \"off\"}\n"
	tests := []struct {
		name    string
		files   map[string]string
		opts    LoadOptions
		wantErr bool
	}{
		{name: "cut off", files: map[string]string{"h.yaml": head}, wantErr: true},
		{name: "cut off after routes:", files: map[string]string{"h.yaml": head + "routes:\n"}, wantErr: true},
		{name: "explicit empty", files: map[string]string{"h.yaml": head + "routes: []\n"}},
		{name: "explicit empty json", files: map[string]string{"h.json": `{"listeners": [{"name": "http", "address": "127.0.0.1:0"}], "routes": []}`}},
		{name: "explicit empty toml", files: map[string]string{"h.toml": "routes = []\n[[listeners]]\nname = \"http\"\naddress = \"127.0.0.1:0\"\n"}},
		{name: "explicit empty in a drop-in", files: map[string]string{"h.yaml": head, "conf.d/10.yaml": "routes: []\n"}},
		{name: "routes from a drop-in", files: map[string]string{"h.yaml": head, "conf.d/10.yaml": "upstreams: {web: {targets: [{address: \"127.0.0.1:1\"}]}}\nroutes: [{upstream: web}]\n"}},
		{name: "quick mode makes its route", files: map[string]string{"h.yaml": head}, opts: LoadOptions{Overrides: Overrides{Backends: []string{"127.0.0.1:1"}}}},
		{name: "no listeners, no routes: only no listeners", files: map[string]string{"h.yaml": "admin: {listen: \"off\"}\n"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			var main string
			for name, content := range tt.files {
				p := writeFile(t, dir, name, content)
				if !strings.Contains(name, "/") {
					main = p
				}
			}
			tt.opts.File = main
			if !tt.wantErr {
				mustLoad(t, tt.opts)
				return
			}
			errs := loadErrors(t, tt.opts)
			if strings.HasPrefix(tt.name, "no listeners") {
				wantError(t, errs, "", "listeners", "no listeners")
				if findError(errs, main, "routes") != nil {
					t.Error("routes reported without listeners")
				}
				return
			}
			wantError(t, errs, main, "routes", "no routes: every request would get 404", "routes: []")
		})
	}
	t.Run("listen flag without a file", func(t *testing.T) {
		errs := loadErrors(t, LoadOptions{Overrides: Overrides{Listen: []string{"127.0.0.1:0"}}})
		wantError(t, errs, "flag --listen", "routes", "no routes")
	})
}
