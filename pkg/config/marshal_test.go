package config

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with the file path, or rewrites it with -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test -update if the change is intended):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func loadFull(t *testing.T) *Loaded {
	t.Helper()
	return mustLoad(t, LoadOptions{File: filepath.Join("testdata", "full.yaml"), ActivatedNames: []string{"web"}})
}

func TestMarshalYAMLGolden(t *testing.T) {
	out, err := MarshalYAML(loadFull(t).Config)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, filepath.Join("testdata", "full.golden.yaml"), out)
}

func TestSourcesYAMLGolden(t *testing.T) {
	full, err := os.ReadFile(filepath.Join("testdata", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	goldenFile, err := filepath.Abs(filepath.Join("testdata", "sources.golden.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	t.Chdir(dir)
	writeFile(t, dir, "handoff.yaml", string(full))
	writeFile(t, dir, "conf.d/10-extra.yaml", `upstreams:
  extra:
    targets: [{address: 127.0.0.1:9100}]
routes:
  - match: {host: extra.example.com}
    upstream: extra
`)
	l := mustLoad(t, LoadOptions{
		File:           "handoff.yaml",
		Env:            []string{"HANDOFF_UPSTREAMS__API__RETRIES=3", "HANDOFF_TRUSTED_PROXIES=192.0.2.0/24"},
		Overrides:      Overrides{LogLevel: "warn"},
		ActivatedNames: []string{"web"},
	})
	out, err := l.SourcesYAML()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, goldenFile, out)

	// Every key in Sources is printed with its comment, and nothing else.
	n := strings.Count(string(out), " # from ")
	if n != len(l.Sources) {
		t.Errorf("%d comments, %d sources", n, len(l.Sources))
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	full, err := os.ReadFile(filepath.Join("testdata", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		file string // YAML; empty means none
		opts LoadOptions
	}{
		{name: "full", file: string(full), opts: LoadOptions{ActivatedNames: []string{"web"}}},
		{name: "base", file: baseYAML},
		{name: "quick mode", opts: LoadOptions{Overrides: Overrides{Listen: []string{":0"}, Backends: []string{"127.0.0.1:1", "https://x.example.com"}}}},
		{name: "strings that look like other types", file: strings.Replace(baseYAML, "routes:\n", `routes:
  - match: {headers: {X-A: "true", X-B: "123", X-C: "null", X-D: "~", X-E: "1e3", X-F: "2001-12-14", X-G: "a: b", X-H: "#x"}}
    upstream: api
`, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			if tt.file != "" {
				opts.File = writeFile(t, t.TempDir(), "handoff.yaml", tt.file)
			}
			l, err := Load(opts)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			first, err := MarshalYAML(l.Config)
			if err != nil {
				t.Fatal(err)
			}
			again := mustLoad(t, LoadOptions{File: writeFile(t, t.TempDir(), "effective.yaml", string(first)), ActivatedNames: opts.ActivatedNames})
			if !reflect.DeepEqual(again.Config, l.Config) {
				second, _ := MarshalYAML(again.Config)
				t.Errorf("round trip changed the config:\n%s\nbecame\n%s", first, second)
			}
			if second, _ := MarshalYAML(again.Config); !bytes.Equal(first, second) {
				t.Errorf("marshal is not stable:\n%s\nvs\n%s", first, second)
			}
		})
	}
}

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		name string
		d    time.Duration
		want string
	}{
		{name: "zero", d: 0, want: "0s"},
		{name: "seconds", d: 30 * time.Second, want: "30s"},
		{name: "minute", d: time.Minute, want: "1m"},
		{name: "minute and a half", d: 90 * time.Second, want: "1m30s"},
		{name: "hour", d: time.Hour, want: "1h"},
		{name: "hour and a half", d: 90 * time.Minute, want: "1h30m"},
		{name: "hour and a second", d: time.Hour + time.Second, want: "1h0m1s"},
		{name: "milliseconds", d: 1500 * time.Millisecond, want: "1.5s"},
		{name: "negative", d: -time.Minute, want: "-1m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FormatDuration(tt.d); got != tt.want {
				t.Errorf("FormatDuration(%v) = %q, want %q", tt.d, got, tt.want)
			}
		})
	}
}

func FuzzFormatDuration(f *testing.F) {
	for _, d := range []int64{0, 1, int64(time.Minute), int64(time.Hour), int64(90 * time.Minute), -int64(time.Hour), 1<<63 - 1, -1 << 63} {
		f.Add(d)
	}
	f.Fuzz(func(t *testing.T, n int64) {
		d := time.Duration(n)
		s := FormatDuration(d)
		back, err := time.ParseDuration(s)
		if err != nil || back != d {
			t.Fatalf("FormatDuration(%d) = %q, parses back to %v, %v", n, s, back, err)
		}
	})
}

// TestSchemaTags pins what the checker, the encoder and the rest of the
// package assume about types.go: every field has the same name in its
// koanf, yaml and json tags, and only types the checker can convert.
func TestSchemaTags(t *testing.T) {
	seen := make(map[reflect.Type]bool)
	var walk func(path string, typ reflect.Type)
	walk = func(path string, typ reflect.Type) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map {
			if typ.Kind() == reflect.Map && typ.Key().Kind() != reflect.String {
				t.Errorf("%s: map keys must be strings", path)
			}
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || typ == durationType || seen[typ] {
			switch typ.Kind() {
			case reflect.Struct, reflect.String, reflect.Bool, reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint64, reflect.Float64:
			default:
				t.Errorf("%s: type %s is not supported by the checker", path, typ)
			}
			return
		}
		seen[typ] = true
		for i := range typ.NumField() {
			sf := typ.Field(i)
			k, _, _ := strings.Cut(sf.Tag.Get("koanf"), ",")
			y, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
			j, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
			if k == "" || k != y || k != j {
				t.Errorf("%s.%s: tags koanf %q, yaml %q, json %q must agree", typ.Name(), sf.Name, k, y, j)
			}
			walk(joinKey(path, k), sf.Type)
		}
	}
	walk("", configType)
}

func TestSummary(t *testing.T) {
	tests := []struct {
		name string
		c    *Config
		want string
	}{
		{name: "empty", c: &Config{}, want: "0 listeners, 0 routes, 0 upstreams (0 targets)"},
		{name: "singular", c: &Config{Listeners: []Listener{{}}, Routes: []Route{{}}, Upstreams: map[string]Upstream{"a": {Targets: []Target{{}}}}},
			want: "1 listener, 1 route, 1 upstream (1 target)"},
		{name: "full", c: loadFull(t).Config, want: "3 listeners, 3 routes, 2 upstreams (4 targets)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.c.Summary(); got != tt.want {
				t.Errorf("Summary() = %q, want %q", got, tt.want)
			}
		})
	}
}
