package config

import (
	"errors"
	"io/fs"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLoadPrecedence(t *testing.T) {
	// Each case sets one key in several layers; the highest layer must
	// win and Sources must name it.
	tests := []struct {
		name       string
		file       string            // main file (YAML)
		dropIns    map[string]string // conf.d files
		env        []string
		overrides  Overrides
		key        string
		want       string
		wantSource string // relative to the temp dir for files
	}{
		{
			name: "default only",
			file: baseYAML, key: "log.level", want: "info", wantSource: "default",
		},
		{
			name: "file over default",
			file: baseYAML + "log: {level: debug}\n", key: "log.level", want: "debug", wantSource: "handoff.yaml",
		},
		{
			name:    "drop-in over file",
			file:    baseYAML + "log: {level: debug}\n",
			dropIns: map[string]string{"10-log.yaml": "log: {level: warn}\n"},
			key:     "log.level", want: "warn", wantSource: "conf.d/10-log.yaml",
		},
		{
			name:    "env over drop-in",
			file:    baseYAML + "log: {level: debug}\n",
			dropIns: map[string]string{"10-log.yaml": "log: {level: warn}\n"},
			env:     []string{"HANDOFF_LOG__LEVEL=error"},
			key:     "log.level", want: "error", wantSource: "env HANDOFF_LOG__LEVEL",
		},
		{
			name:      "flag over env",
			file:      baseYAML + "log: {level: debug}\n",
			dropIns:   map[string]string{"10-log.yaml": "log: {level: warn}\n"},
			env:       []string{"HANDOFF_LOG__LEVEL=error"},
			overrides: Overrides{LogLevel: "debug"},
			key:       "log.level", want: "debug", wantSource: "flag --log-level",
		},
		{
			name: "single underscore stays in the key",
			file: baseYAML, env: []string{"HANDOFF_SHUTDOWN_TIMEOUT=5s"},
			key: "shutdown_timeout", want: "5s", wantSource: "env HANDOFF_SHUTDOWN_TIMEOUT",
		},
		{
			name: "double underscore nests",
			file: baseYAML, env: []string{"HANDOFF_ADMIN__LISTEN=127.0.0.1:9"},
			key: "admin.listen", want: "127.0.0.1:9", wantSource: "env HANDOFF_ADMIN__LISTEN",
		},
		{
			name: "env reaches into an upstream from the file",
			file: baseYAML, env: []string{"HANDOFF_UPSTREAMS__API__FAIL_TIMEOUT=3s"},
			key: "upstreams.api.fail_timeout", want: "3s", wantSource: "env HANDOFF_UPSTREAMS__API__FAIL_TIMEOUT",
		},
		{
			name: "env list is comma-separated",
			file: baseYAML + "trusted_proxies: [192.168.0.1]\n", env: []string{"HANDOFF_TRUSTED_PROXIES=10.0.0.0/8, 127.0.0.1"},
			key: "trusted_proxies", want: "10.0.0.0/8,127.0.0.1", wantSource: "env HANDOFF_TRUSTED_PROXIES",
		},
		{
			name: "flag admin off",
			file: baseYAML + "admin: {listen: 127.0.0.1:7000}\n", overrides: Overrides{Admin: "off"},
			key: "admin.listen", want: "off", wantSource: "flag --admin",
		},
		{
			name:    "drop-in merges into an upstream key by key",
			file:    baseYAML,
			dropIns: map[string]string{"10-api.yaml": "upstreams:\n  api:\n    retries: 0\n"},
			key:     "upstreams.api.targets[1].weight", want: "3", wantSource: "handoff.yaml",
		},
		{
			name:    "drop-in list of values replaces",
			file:    baseYAML + "trusted_proxies: [192.168.0.1, 10.0.0.1]\n",
			dropIns: map[string]string{"10-proxies.yaml": "trusted_proxies: [127.0.0.1]\n"},
			key:     "trusted_proxies", want: "127.0.0.1", wantSource: "conf.d/10-proxies.yaml",
		},
		{
			name:    "drop-in targets replace the file's",
			file:    baseYAML,
			dropIns: map[string]string{"10-api.yaml": "upstreams:\n  api:\n    targets: [{address: 10.0.0.1:80}]\n"},
			key:     "upstreams.api.targets[0].address", want: "10.0.0.1:80", wantSource: "conf.d/10-api.yaml",
		},
		{
			name: "defaulted field of an item set by a file",
			file: baseYAML, key: "upstreams.api.targets[0].weight", want: "1", wantSource: "default",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			writeFile(t, dir, "handoff.yaml", tt.file)
			for name, content := range tt.dropIns {
				writeFile(t, dir, filepath.Join(DropInDir, name), content)
			}
			l := mustLoad(t, LoadOptions{File: "handoff.yaml", Env: tt.env, Overrides: tt.overrides})
			if got := valueAt(t, l.Config, tt.key); got != tt.want {
				t.Errorf("%s = %q, want %q", tt.key, got, tt.want)
			}
			if got := l.Sources[tt.key]; got != tt.wantSource {
				t.Errorf("Sources[%s] = %q, want %q", tt.key, got, tt.wantSource)
			}
		})
	}
}

func TestLoadDropInOrder(t *testing.T) {
	dir := t.TempDir()
	main := writeFile(t, dir, "handoff.yaml", baseYAML+"admin: {listen: 127.0.0.1:7000}\n")
	// Lexical order: "10-" < "20-" < "30-" < "40-" < "5-"; later files win.
	d := filepath.Join(dir, DropInDir)
	a := writeFile(t, d, "10-a.yaml", "admin: {listen: 127.0.0.1:7001}\nshutdown_timeout: 1s\n")
	b := writeFile(t, d, "20-b.yml", "admin: {listen: 127.0.0.1:7002}\n")
	c := writeFile(t, d, "30-c.toml", "[admin]\nlisten = \"127.0.0.1:7003\"\n")
	e := writeFile(t, d, "40-d.json", `{"admin": {"listen": "127.0.0.1:7004"}}`)
	f := writeFile(t, d, "5-e.YAML", "admin: {listen: 127.0.0.1:7005}\n")
	readme := writeFile(t, d, "README", "not config")
	writeFile(t, d, ".#10-a.yaml", "garbage: [")   // editor lock file: skipped
	writeFile(t, d, "sub/99-z.yaml", "garbage: [") // directories are not descended

	l := mustLoad(t, LoadOptions{File: main})
	if want := []string{main, a, b, c, e, f}; !slices.Equal(l.Files, want) {
		t.Errorf("Files = %q, want %q", l.Files, want)
	}
	if got := l.Config.Admin.Listen; got != "127.0.0.1:7005" {
		t.Errorf("admin.listen = %q, want the last drop-in's", got)
	}
	if got := l.Sources["admin.listen"]; got != f {
		t.Errorf("Sources[admin.listen] = %q, want %q", got, f)
	}
	if got := l.Sources["shutdown_timeout"]; got != a {
		t.Errorf("Sources[shutdown_timeout] = %q, want %q", got, a)
	}
	if len(l.Warnings) != 1 || l.Warnings[0].Source != readme {
		t.Errorf("Warnings = %v, want one about %s", l.Warnings, readme)
	}
}

func TestLoadDropInsAppendListenersAndRoutes(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	writeFile(t, dir, "handoff.yaml", baseYAML)
	writeFile(t, dir, "conf.d/10-shop.yaml", `upstreams:
  shop:
    targets: [{address: 127.0.0.1:9100}]
routes:
  - name: shop
    match: {host: shop.example.com}
    upstream: shop
listeners:
  - name: alt
    address: 127.0.0.1:0
`)
	writeFile(t, dir, "conf.d/20-blog.yaml", `upstreams:
  blog:
    targets: [{address: 127.0.0.1:9200}]
routes:
  - name: blog
    match: {host: blog.example.com}
    upstream: blog
routes_unused: null
`)
	errs := loadErrors(t, LoadOptions{File: "handoff.yaml"})
	e := wantError(t, errs, "conf.d/20-blog.yaml", "routes_unused", "unknown key")
	if e.Line != 8 {
		t.Errorf("line = %d, want 8", e.Line)
	}

	writeFile(t, dir, "conf.d/20-blog.yaml", `upstreams:
  blog:
    targets: [{address: 127.0.0.1:9200}]
routes:
  - name: blog
    match: {host: blog.example.com}
    upstream: blog
`)
	l := mustLoad(t, LoadOptions{File: "handoff.yaml"})
	var names []string
	for _, r := range l.Config.Routes {
		names = append(names, r.Name)
	}
	if want := []string{"api", "route1", "shop", "blog"}; !slices.Equal(names, want) {
		t.Errorf("routes = %q, want %q", names, want)
	}
	if got := len(l.Config.Listeners); got != 2 {
		t.Errorf("%d listeners, want 2", got)
	}
	for key, want := range map[string]string{
		"routes[0].upstream":                "handoff.yaml",
		"routes[2].upstream":                "conf.d/10-shop.yaml",
		"routes[3].match.host":              "conf.d/20-blog.yaml",
		"listeners[1].name":                 "conf.d/10-shop.yaml",
		"upstreams.blog.targets[0].address": "conf.d/20-blog.yaml",
	} {
		if got := l.Sources[key]; got != want {
			t.Errorf("Sources[%s] = %q, want %q", key, got, want)
		}
	}

	// A validation problem in an appended route names the drop-in and
	// the line in it, while the key is the merged one that `handoff
	// config` prints.
	writeFile(t, dir, "conf.d/20-blog.yaml", `upstreams:
  blog:
    targets: [{address: 127.0.0.1:9200}]
routes:
  - name: blog
    match: {host: blog.example.com}
    upstream: blgo
`)
	errs = loadErrors(t, LoadOptions{File: "handoff.yaml"})
	e = wantError(t, errs, "conf.d/20-blog.yaml", "routes[3].upstream", `unknown upstream "blgo"`, "have: api, blog, shop, web")
	if e.Line != 7 {
		t.Errorf("line = %d, want 7", e.Line)
	}
	if got, want := e.Error(), `conf.d/20-blog.yaml:7: routes[3].upstream: unknown upstream "blgo" (have: api, blog, shop, web)`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestLoadFormats(t *testing.T) {
	want := mustLoad(t, LoadOptions{File: writeFile(t, t.TempDir(), "handoff.yaml", baseYAML+"shutdown_timeout: 5s\n")}).Config
	tests := []struct {
		name, file, content string
	}{
		{name: "toml", file: "handoff.toml", content: `
shutdown_timeout = "5s"
[[listeners]]
name = "http"
address = "127.0.0.1:0"
[[routes]]
name = "api"
upstream = "api"
[routes.match]
host = "api.example.com"
path_prefix = "/v1"
[[routes]]
upstream = "web"
[routes.match]
[upstreams.api]
targets = [{address = "127.0.0.1:9001"}, {address = "http://127.0.0.1:9002", weight = 3}]
[upstreams.web]
strategy = "least_conn"
targets = [{address = "h2c://127.0.0.1:9003"}]
`},
		{name: "json", file: "handoff.json", content: `{
  "shutdown_timeout": "5s",
  "listeners": [{"name": "http", "address": "127.0.0.1:0"}],
  "routes": [
    {"name": "api", "match": {"host": "api.example.com", "path_prefix": "/v1"}, "upstream": "api"},
    {"match": {}, "upstream": "web"}
  ],
  "upstreams": {
    "api": {"targets": [{"address": "127.0.0.1:9001"}, {"address": "http://127.0.0.1:9002", "weight": 3}]},
    "web": {"strategy": "least_conn", "targets": [{"address": "h2c://127.0.0.1:9003"}]}
  }
}`},
		{name: "unknown extension is YAML", file: "handoff.conf", content: baseYAML + "shutdown_timeout: 5s\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := mustLoad(t, LoadOptions{File: writeFile(t, t.TempDir(), tt.file, tt.content)})
			if !reflect.DeepEqual(l.Config, want) {
				got, _ := MarshalYAML(l.Config)
				exp, _ := MarshalYAML(want)
				t.Errorf("config differs from the YAML one:\n%s\nwant:\n%s", got, exp)
			}
		})
	}
}

func TestLoadUnknownKeys(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	writeFile(t, dir, "handoff.yaml", baseYAML+"admin:\n  listn: 127.0.0.1:1\ncolour: {}\n")
	writeFile(t, dir, "conf.d/10-api.yaml", `upstreams:
  api:
    stratgy: hash
    targets:
      - address: 127.0.0.1:1
      - address: 127.0.0.1:2
      - address: 127.0.0.1:3
        weigth: 2
routes:
  - match: {host: a.example.com, path: /x}
    upstream: api
`)
	writeFile(t, dir, "conf.d/20-tls.toml", "[upstreams.api.tls]\nserver_nme = \"x\"\n")
	writeFile(t, dir, "conf.d/30-log.json", `{"log": {"level": "info", "acess": false}}`)
	errs := loadErrors(t, LoadOptions{
		File: "handoff.yaml",
		Env:  []string{"HANDOFF_ADMIN__LISTN=x", "HANDOFF_NOPE=1", "PATH=/bin", "HANDOFF_CONFIG=handoff.yaml"},
	})
	base := strings.Count(baseYAML, "\n")
	tests := []struct {
		name, source, key, msg string
		line                   int
	}{
		{name: "main file", source: "handoff.yaml", key: "admin.listn", msg: `unknown key (did you mean "listen"?)`, line: base + 2},
		{name: "main file, no close key", source: "handoff.yaml", key: "colour", msg: "unknown key (allowed here: listeners, routes,", line: base + 3},
		{name: "map of sections", source: "conf.d/10-api.yaml", key: "upstreams.api.stratgy", msg: `unknown key (did you mean "strategy"?)`, line: 3},
		{name: "list of sections", source: "conf.d/10-api.yaml", key: "upstreams.api.targets[2].weigth", msg: `did you mean "weight"?`, line: 8},
		{name: "route match", source: "conf.d/10-api.yaml", key: "routes[0].match.path", msg: `did you mean "path_prefix"?`},
		{name: "toml", source: "conf.d/20-tls.toml", key: "upstreams.api.tls.server_nme", msg: `did you mean "server_name"?`},
		{name: "json", source: "conf.d/30-log.json", key: "log.acess", msg: `did you mean "access"?`},
		{name: "env", source: "env HANDOFF_ADMIN__LISTN", key: "admin.listn", msg: "did you mean HANDOFF_ADMIN__LISTEN?"},
		{name: "env without a close key", source: "env HANDOFF_NOPE", key: "nope", msg: "unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := wantError(t, errs, tt.source, tt.key, tt.msg)
			if tt.line != 0 && e.Line != tt.line {
				t.Errorf("line = %d, want %d", e.Line, tt.line)
			}
		})
	}
	if len(errs) != len(tests) {
		t.Errorf("%d problems, want %d", len(errs), len(tests))
	}
	got := errs.Error()
	if want := "conf.d/10-api.yaml:3: upstreams.api.stratgy: unknown key (did you mean \"strategy\"?)"; !strings.Contains(got, want+"\n") {
		t.Errorf("Errors() does not have the line %q:\n%s", want, got)
	}
}

func TestLoadTypeErrors(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		env     []string
		source  string
		key     string
		msg     string
		wantErr string // the whole Error(), when given
	}{
		{name: "duration", file: "shutdown_timeout: 5 parsecs\n", source: "handoff.yaml", key: "shutdown_timeout",
			wantErr: `handoff.yaml:1: shutdown_timeout: "5 parsecs" is not a duration (e.g. 30s, 1m)`},
		{name: "duration without unit", file: "timeouts: {idle: 30}\n", source: "handoff.yaml", key: "timeouts.idle", msg: "30 is not a duration: give a unit"},
		{name: "integer", file: "limits:\n  max_header_bytes: 64k\n", source: "handoff.yaml", key: "limits.max_header_bytes", msg: `"64k" is not an integer`},
		{name: "fraction", file: "limits:\n  max_header_bytes: 1.5\n", source: "handoff.yaml", key: "limits.max_header_bytes", msg: "1.5 is not an integer"},
		{name: "boolean", file: "log: {access: yes}\n", source: "handoff.yaml", key: "log.access", msg: `"yes" is not a boolean`},
		{name: "section given a value", file: "admin: 127.0.0.1:1\n", source: "handoff.yaml", key: "admin", msg: "expected a mapping with the keys listen"},
		{name: "list given a mapping", file: "listeners: {name: http}\n", source: "handoff.yaml", key: "listeners", msg: "expected a list of listener sections, got a mapping"},
		{name: "value given a list", file: "log: {level: [info]}\n", source: "handoff.yaml", key: "log.level", msg: "expected a string, got a list"},
		{name: "map given a list", file: "upstreams: [a, b]\n", source: "handoff.yaml", key: "upstreams", msg: "expected a mapping, got a list"},
		{name: "list item", file: "upstreams:\n  a:\n    targets:\n      - address: x:1\n        weight: heavy\n", source: "handoff.yaml", key: "upstreams.a.targets[0].weight", msg: `"heavy" is not an integer`},
		{name: "out of range", file: "upstreams:\n  a:\n    retries: 99999999999999999999\n", source: "handoff.yaml", key: "upstreams.a.retries", msg: "out of range"},
		{name: "env duration", env: []string{"HANDOFF_SHUTDOWN_TIMEOUT=5 parsecs"}, source: "env HANDOFF_SHUTDOWN_TIMEOUT", key: "shutdown_timeout",
			wantErr: `env HANDOFF_SHUTDOWN_TIMEOUT: shutdown_timeout: "5 parsecs" is not a duration (e.g. 30s, 1m)`},
		{name: "env integer", env: []string{"HANDOFF_LIMITS__MAX_REQUEST_BODY=lots"}, source: "env HANDOFF_LIMITS__MAX_REQUEST_BODY", key: "limits.max_request_body", msg: `"lots" is not an integer`},
		{name: "env section", env: []string{"HANDOFF_ADMIN=127.0.0.1:1"}, source: "env HANDOFF_ADMIN", key: "admin", msg: "set its keys instead, for example HANDOFF_ADMIN__LISTEN"},
		{name: "env list of sections", env: []string{"HANDOFF_LISTENERS=http"}, source: "env HANDOFF_LISTENERS", key: "listeners", msg: "cannot be set from the environment"},
		{name: "env clash", env: []string{"HANDOFF_LOG=x", "HANDOFF_LOG__LEVEL=info"}, source: "env HANDOFF_LOG__LEVEL", key: "log.level", msg: "conflicts with HANDOFF_LOG"},
		{name: "env empty segment", env: []string{"HANDOFF_LOG____LEVEL=info"}, source: "env HANDOFF_LOG____LEVEL", msg: "not a config key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			writeFile(t, dir, "handoff.yaml", tt.file)
			errs := loadErrors(t, LoadOptions{File: "handoff.yaml", Env: tt.env, Overrides: Overrides{Listen: []string{"127.0.0.1:0"}, Backends: []string{"127.0.0.1:1"}}})
			e := wantError(t, errs, tt.source, tt.key, tt.msg)
			if tt.wantErr != "" && e.Error() != tt.wantErr {
				t.Errorf("Error() = %q, want %q", e.Error(), tt.wantErr)
			}
		})
	}
}

func TestLoadSyntaxErrors(t *testing.T) {
	tests := []struct {
		name, file, content string
		line                int    // 0: the line is in the message
		msg                 string // part of the message
	}{
		{name: "yaml", file: "handoff.yaml", content: "listeners:\n  - name: a\n   address: b\n", msg: "yaml: line "},
		{name: "yaml duplicate key", file: "handoff.yaml", content: "log: {}\nlog: {}\n", msg: "already defined"},
		{name: "yaml top-level list", file: "handoff.yaml", content: "- a\n", msg: "cannot unmarshal"},
		{name: "toml", file: "handoff.toml", content: "[log]\nlevel = \"info\"\nformat = \n", line: 3},
		{name: "json", file: "handoff.json", content: "{\n  \"log\": {\n    \"level\": \"info\",\n  }\n}", line: 4},
		{name: "json top-level list", file: "handoff.json", content: "\n[1]", line: 2, msg: "expected a mapping at the top level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), tt.file, tt.content)
			errs := loadErrors(t, LoadOptions{File: path})
			if len(errs) != 1 {
				t.Fatalf("%d problems, want 1", len(errs))
			}
			e := errs[0]
			if e.Source != path || e.Key != "" || e.Line != tt.line || !strings.Contains(e.Msg, tt.msg) {
				t.Errorf("got %+v, want source %s, line %d, message with %q", e, path, tt.line, tt.msg)
			}
		})
	}
}

func TestLoadFileResolution(t *testing.T) {
	dir := t.TempDir()
	explicit := writeFile(t, dir, "explicit.yaml", baseYAML+"log: {level: debug}\n")
	fromEnv := writeFile(t, dir, "env.yaml", baseYAML+"log: {level: warn}\n")
	def := writeFile(t, dir, "default.yaml", baseYAML+"log: {level: error}\n")
	missing := filepath.Join(dir, "missing.yaml")
	quick := Overrides{Listen: []string{"127.0.0.1:0"}, Backends: []string{"127.0.0.1:1"}}
	tests := []struct {
		name      string
		opts      LoadOptions
		wantFiles []string
		wantLevel string
		wantErr   error
	}{
		{name: "explicit file", opts: LoadOptions{File: explicit, DefaultFile: def, Env: []string{EnvConfigFile + "=" + fromEnv}}, wantFiles: []string{explicit}, wantLevel: "debug"},
		{name: "HANDOFF_CONFIG", opts: LoadOptions{DefaultFile: def, Env: []string{EnvConfigFile + "=" + fromEnv}}, wantFiles: []string{fromEnv}, wantLevel: "warn"},
		{name: "first HANDOFF_CONFIG wins", opts: LoadOptions{Env: []string{EnvConfigFile + "=" + fromEnv, EnvConfigFile + "=" + explicit}}, wantFiles: []string{fromEnv}, wantLevel: "warn"},
		{name: "default file", opts: LoadOptions{DefaultFile: def}, wantFiles: []string{def}, wantLevel: "error"},
		{name: "missing default file means none", opts: LoadOptions{DefaultFile: missing, Overrides: quick}, wantLevel: "info"},
		{name: "no file at all", opts: LoadOptions{Overrides: quick}, wantLevel: "info"},
		{name: "missing explicit file", opts: LoadOptions{File: missing, DefaultFile: def}, wantErr: fs.ErrNotExist},
		{name: "missing HANDOFF_CONFIG file", opts: LoadOptions{DefaultFile: def, Env: []string{EnvConfigFile + "=" + missing}}, wantErr: fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Load(tt.opts)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				var errs Errors
				if !errors.As(err, &errs) || errs[0].Source != missing {
					t.Errorf("err = %v, want one naming %s", err, missing)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(l.Files, tt.wantFiles) {
				t.Errorf("Files = %q, want %q", l.Files, tt.wantFiles)
			}
			if l.Config.Log.Level != tt.wantLevel {
				t.Errorf("log.level = %q, want %q", l.Config.Log.Level, tt.wantLevel)
			}
		})
	}
}

func TestLoadQuickMode(t *testing.T) {
	tests := []struct {
		name      string
		file      string // empty: no file
		opts      LoadOptions
		check     func(t *testing.T, l *Loaded)
		wantError []string // source, key, message pairs when Load must fail
	}{
		{
			name: "listen and backends, no file",
			opts: LoadOptions{Overrides: Overrides{
				Listen:   []string{"127.0.0.1:0", "unix:/run/handoff/x.sock", "[::1]:8080"},
				Backends: []string{"127.0.0.1:9001", "https://backend.example.com", "h2c://127.0.0.1:9003"},
				Strategy: StrategyLeastConn,
			}},
			check: func(t *testing.T, l *Loaded) {
				c := l.Config
				var names []string
				for _, li := range c.Listeners {
					names = append(names, li.Name+"="+li.Address+"/"+li.Protocol)
				}
				if want := []string{"http=127.0.0.1:0/http", "http-1=unix:/run/handoff/x.sock/http", "http-2=[::1]:8080/http"}; !slices.Equal(names, want) {
					t.Errorf("listeners = %q, want %q", names, want)
				}
				u, ok := c.Upstreams[QuickUpstream]
				if !ok || u.Strategy != StrategyLeastConn || len(u.Targets) != 3 || u.Targets[1].Address != "https://backend.example.com" {
					t.Errorf("upstream default = %+v", u)
				}
				want := []Route{{Name: "default", Upstream: "default"}}
				if !reflect.DeepEqual(c.Routes, want) {
					t.Errorf("routes = %+v, want %+v", c.Routes, want)
				}
				for key, src := range map[string]string{
					"listeners[2].address":                 "flag --listen",
					"listeners[2].protocol":                "flag --listen",
					"upstreams.default.strategy":           "flag --strategy",
					"upstreams.default.targets[2].address": "flag --backend",
					"upstreams.default.targets[2].weight":  "default",
					"routes[0].upstream":                   "flag --backend",
					"log.level":                            "default",
				} {
					if got := l.Sources[key]; got != src {
						t.Errorf("Sources[%s] = %q, want %q", key, got, src)
					}
				}
			},
		},
		{
			name: "strategy defaults to round_robin",
			opts: LoadOptions{Overrides: Overrides{Listen: []string{"127.0.0.1:0"}, Backends: []string{"127.0.0.1:1"}}},
			check: func(t *testing.T, l *Loaded) {
				if got := l.Config.Upstreams[QuickUpstream].Strategy; got != StrategyRoundRobin {
					t.Errorf("strategy = %q", got)
				}
			},
		},
		{
			name: "backends replace the file's routes and keep its listeners",
			file: baseYAML,
			opts: LoadOptions{Overrides: Overrides{Backends: []string{"127.0.0.1:1"}}},
			check: func(t *testing.T, l *Loaded) {
				c := l.Config
				if len(c.Routes) != 1 || c.Routes[0].Upstream != QuickUpstream {
					t.Errorf("routes = %+v", c.Routes)
				}
				if len(c.Listeners) != 1 || c.Listeners[0].Address != "127.0.0.1:0" {
					t.Errorf("listeners = %+v", c.Listeners)
				}
				if len(l.Warnings) != 2 { // api and web are unused now
					t.Errorf("warnings = %v, want two unused upstreams", l.Warnings)
				}
			},
		},
		{
			name: "systemd passed http",
			opts: LoadOptions{Overrides: Overrides{Backends: []string{"127.0.0.1:1"}}, ActivatedNames: []string{"http"}},
			check: func(t *testing.T, l *Loaded) {
				want := []Listener{{Name: "http", Protocol: ProtocolHTTP}}
				if !reflect.DeepEqual(l.Config.Listeners, want) {
					t.Errorf("listeners = %+v, want %+v", l.Config.Listeners, want)
				}
				if got := l.Sources["listeners[0].name"]; got != "systemd LISTEN_FDNAMES" {
					t.Errorf("Sources[listeners[0].name] = %q", got)
				}
			},
		},
		{
			name: "single unknown fd in quick mode",
			opts: LoadOptions{Overrides: Overrides{Backends: []string{"127.0.0.1:1"}}, ActivatedNames: []string{"unknown"}},
			check: func(t *testing.T, l *Loaded) {
				if len(l.Config.Listeners) != 1 || l.Config.Listeners[0].Name != QuickListener {
					t.Errorf("listeners = %+v", l.Config.Listeners)
				}
			},
		},
		{
			name: "single empty-named fd in quick mode",
			opts: LoadOptions{Overrides: Overrides{Backends: []string{"127.0.0.1:1"}}, ActivatedNames: []string{""}},
			check: func(t *testing.T, l *Loaded) {
				if len(l.Config.Listeners) != 1 {
					t.Errorf("listeners = %+v", l.Config.Listeners)
				}
			},
		},
		{
			name:      "two unnamed fds are not http",
			opts:      LoadOptions{Overrides: Overrides{Backends: []string{"127.0.0.1:1"}}, ActivatedNames: []string{"unknown", "unknown"}},
			wantError: []string{"", "listeners", "no listeners: give -l or configure listeners (systemd passed sockets named unknown, unknown"},
		},
		{
			name:      "no listeners at all",
			opts:      LoadOptions{Overrides: Overrides{Backends: []string{"127.0.0.1:1"}}},
			wantError: []string{"", "listeners", "no listeners: give -l or configure listeners"},
		},
		{
			name: "strategy without backends",
			opts: LoadOptions{Overrides: Overrides{Listen: []string{"127.0.0.1:0"}, Strategy: "hash"}},
			// Reported together with the consequence: -l alone has no
			// routes.
			wantError: []string{"flag --strategy", "", "needs --backend", "flag --listen", "routes", "no routes: every request would get 404"},
		},
		{
			name: "bad flag values name the flag",
			opts: LoadOptions{Overrides: Overrides{Listen: []string{"127.0.0.1:0", "nowhere"}, Backends: []string{"127.0.0.1:1", "ftp://x"}, Strategy: "fastest", Admin: "on", LogLevel: "loud", LogFormat: "xml"}},
			wantError: []string{
				"flag --listen", "listeners[1].address", `"nowhere" is not host:port`,
				"flag --backend", "upstreams.default.targets[1].address", `scheme "ftp" is not allowed`,
				"flag --strategy", "upstreams.default.strategy", `"fastest" is not a strategy (allowed: round_robin, weighted_round_robin, least_conn, random, p2c, hash)`,
				"flag --admin", "admin.listen", `"on" is not host:port`,
				"flag --log-level", "log.level", `"loud" is not allowed (allowed: debug, info, warn, error)`,
				"flag --log-format", "log.format", `"xml" is not allowed (allowed: json, text)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.file != "" {
				tt.opts.File = writeFile(t, t.TempDir(), "handoff.yaml", tt.file)
			}
			if tt.wantError != nil {
				errs := loadErrors(t, tt.opts)
				for i := 0; i < len(tt.wantError); i += 3 {
					wantError(t, errs, tt.wantError[i], tt.wantError[i+1], tt.wantError[i+2])
				}
				if len(errs) != len(tt.wantError)/3 {
					t.Errorf("%d problems, want %d", len(errs), len(tt.wantError)/3)
				}
				return
			}
			tt.check(t, mustLoad(t, tt.opts))
		})
	}
}

func TestLoadActivatedNames(t *testing.T) {
	// The first listener, "web", has no address.
	yaml := strings.Replace(baseYAML, "listeners:\n", "listeners:\n  - name: web\n", 1)
	tests := []struct {
		name      string
		opts      LoadOptions
		wantError string
	}{
		{name: "passed by systemd", opts: LoadOptions{ActivatedNames: []string{"admin", "web"}}},
		{name: "assumed for check", opts: LoadOptions{AssumeActivated: true}},
		{name: "not passed", opts: LoadOptions{ActivatedNames: []string{"http", "admin"}},
			wantError: `required: listener "web" has no address and systemd passed no socket of that name (passed: http, admin)`},
		{name: "nothing passed", wantError: `required: listener "web" has no address and systemd passed no socket of that name (passed: none)`},
		{name: "unnamed fd is not renamed outside quick mode", opts: LoadOptions{ActivatedNames: []string{"unknown"}},
			wantError: `(passed: unknown)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), "handoff.yaml", yaml)
			tt.opts.File = path
			if tt.wantError == "" {
				l := mustLoad(t, tt.opts)
				if l.Config.Listeners[0].Name != "web" || l.Config.Listeners[0].Address != "" {
					t.Errorf("listeners = %+v", l.Config.Listeners)
				}
				return
			}
			errs := loadErrors(t, tt.opts)
			e := wantError(t, errs, path, "listeners[0].address", tt.wantError)
			if e.Line != 2 {
				t.Errorf("line = %d, want 2", e.Line)
			}
		})
	}
}

// Regression: `handoff check -b …` said "config OK: 1 listener" while
// `handoff -b …` failed with "no listeners". AssumeActivated covers the
// listeners the config names without an address; it does not invent the
// "http" listener that only a socket systemd really passed creates.
func TestLoadAssumeActivatedDoesNotAddHTTP(t *testing.T) {
	for _, assume := range []bool{false, true} {
		errs := loadErrors(t, LoadOptions{Overrides: Overrides{Backends: []string{"127.0.0.1:1"}}, AssumeActivated: assume})
		wantError(t, errs, "", "listeners", "no listeners")
	}
	// A socket systemd passed still makes the listener.
	l := mustLoad(t, LoadOptions{Overrides: Overrides{Backends: []string{"127.0.0.1:1"}}, ActivatedNames: []string{"unknown"}})
	if len(l.Config.Listeners) != 1 || l.Config.Listeners[0].Name != QuickListener {
		t.Errorf("listeners = %+v", l.Config.Listeners)
	}
}

func TestLoadCollectsAllLayerErrors(t *testing.T) {
	// Problems in several layers are reported together, not one per run.
	dir := t.TempDir()
	main := writeFile(t, dir, "handoff.yaml", "shutdown_timeout: soon\n")
	bad := writeFile(t, dir, "conf.d/10-bad.yaml", "log: [\n")
	typo := writeFile(t, dir, "conf.d/20-typo.yaml", "limits: {max_body: 1}\n")
	errs := loadErrors(t, LoadOptions{File: main, Env: []string{"HANDOFF_LOG__LEVL=x"}, Overrides: Overrides{Strategy: "hash"}})
	wantError(t, errs, main, "shutdown_timeout", "is not a duration")
	wantError(t, errs, bad, "", "syntax error")
	wantError(t, errs, typo, "limits.max_body", "unknown key")
	wantError(t, errs, "env HANDOFF_LOG__LEVL", "log.levl", "did you mean HANDOFF_LOG__LEVEL?")
	wantError(t, errs, "flag --strategy", "", "needs --backend")
	if len(errs) != 5 {
		t.Errorf("%d problems, want 5", len(errs))
	}
	// Sorted by source, then key.
	if !slices.IsSortedFunc(errs, func(a, b *Error) int { return strings.Compare(a.Source, b.Source) }) {
		t.Errorf("not sorted by source: %v", errs)
	}
}

func TestLoadYAMLAnchorsAndLines(t *testing.T) {
	// Keys that come from a merge key ("<<: *defaults") are located at
	// the anchor they come from; the mapping's own keys win over merged
	// ones, in koanf's parse and in the line map alike.
	const y = `listeners:
  - name: http
    address: 127.0.0.1:0
routes:
  - upstream: a
  - upstream: b
    match: {host: b.example.com}
upstreams:
  a:
    <<: &defaults
      retries: -1
      fail_timeout: 1s
    targets: [{address: 127.0.0.1:1}]
  b:
    <<: *defaults
    fail_timeout: -2s
    targets: [{address: 127.0.0.1:2}]
`
	path := writeFile(t, t.TempDir(), "handoff.yaml", y)
	errs := loadErrors(t, LoadOptions{File: path})
	for _, tt := range []struct {
		key  string
		line int
	}{
		{key: "upstreams.a.retries", line: 11},
		{key: "upstreams.b.retries", line: 11},
		{key: "upstreams.b.fail_timeout", line: 16},
	} {
		if e := wantError(t, errs, path, tt.key, "must not be negative"); e.Line != tt.line {
			t.Errorf("%s: line = %d, want %d", tt.key, e.Line, tt.line)
		}
	}
	if len(errs) != 3 {
		t.Errorf("%d problems, want 3", len(errs))
	}
}

func TestDefault(t *testing.T) {
	c := Default()
	for key, want := range map[string]string{
		"admin.listen":            "127.0.0.1:9901",
		"log.level":               "info",
		"log.format":              "json",
		"log.access":              "true",
		"shutdown_timeout":        "30s",
		"timeouts.read_header":    "10s",
		"timeouts.idle":           "2m",
		"timeouts.request":        "0s",
		"limits.max_header_bytes": "65536",
		"limits.max_request_body": "0",
	} {
		if got := valueAt(t, c, key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}

	c = &Config{
		Listeners: []Listener{{Name: "a", TLS: &ListenerTLS{}}},
		Routes:    []Route{{Match: Match{Methods: []string{"get", "Post"}}}, {Name: "named"}},
		Upstreams: map[string]Upstream{
			"h":  {Strategy: StrategyHash, Targets: []Target{{Weight: 0}, {Weight: 5}}},
			"rr": {Retries: new(0), HashKey: "header:X"},
		},
	}
	c.ApplyDefaults()
	again := c.Clone()
	again.ApplyDefaults()
	if !reflect.DeepEqual(c, again) {
		t.Error("ApplyDefaults is not idempotent")
	}
	for key, want := range map[string]string{
		"listeners[0].protocol":                "http",
		"listeners[0].tls.min_version":         "1.2",
		"routes[0].name":                       "route0",
		"routes[0].match.methods":              "GET,POST",
		"routes[1].name":                       "named",
		"upstreams.h.hash_key":                 "client_ip",
		"upstreams.h.retries":                  "3",
		"upstreams.h.targets[0].weight":        "1",
		"upstreams.h.targets[1].weight":        "5",
		"upstreams.h.fail_timeout":             "10s",
		"upstreams.h.max_idle_per_target":      "256",
		"upstreams.h.timeouts.dial":            "5s",
		"upstreams.h.timeouts.tls_handshake":   "10s",
		"upstreams.h.timeouts.response_header": "1m",
		"upstreams.h.timeouts.idle_conn":       "1m30s",
		"upstreams.rr.strategy":                "round_robin",
		"upstreams.rr.retries":                 "0",
		"upstreams.rr.hash_key":                "header:X",
	} {
		if got := valueAt(t, c, key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if got := c.Upstreams["rr"].HashKey; got != "header:X" {
		t.Errorf("hash_key of a non-hash upstream changed to %q", got)
	}
}

func TestDurationsInFiles(t *testing.T) {
	tests := []struct {
		name, value string
		want        time.Duration
	}{
		{name: "seconds", value: "30s", want: 30 * time.Second},
		{name: "compound", value: "1h30m", want: 90 * time.Minute},
		{name: "zero number", value: "0", want: defaultShutdownTimeout},
		{name: "quoted", value: `"250ms"`, want: 250 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), "handoff.yaml", baseYAML+"shutdown_timeout: "+tt.value+"\n")
			if got := mustLoad(t, LoadOptions{File: path}).Config.ShutdownTimeout; got != tt.want {
				t.Errorf("shutdown_timeout = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLoadEdgeCases(t *testing.T) {
	// Cases get a listener and the upstream a unless they set their own.
	prefix := func(y string) string {
		if !strings.Contains(y, "listeners:") {
			y = "listeners: [{name: http, address: '127.0.0.1:0'}]\n" + y
		}
		if !strings.Contains(y, "upstreams:") {
			y = "upstreams: {a: {targets: [{address: 'x:1'}]}}\n" + y
		}
		return y
	}
	tests := []struct {
		name string
		yaml string
		key  string // "" means valid
		msg  string
	}{
		{name: "numeric upstream name", yaml: "upstreams: {a: {targets: [{address: 'x:1'}]}, 1: {targets: [{address: 'x:1'}]}}\nroutes: [{upstream: a}, {upstream: 1, match: {host: b.example.com}}]\n"},
		{name: "empty lists and maps", yaml: "routes: [{upstream: a, match: {methods: [], headers: {}}}]\ntrusted_proxies: []\n"},
		{name: "header name with a dot", yaml: "routes: [{upstream: a, match: {headers: {'X.Y': ''}}}]\n"},
		{name: "explicit nulls", yaml: "upstreams: {a: {targets: [{address: 'x:1'}], retries: null, tls: null}}\nroutes: [{upstream: a}]\nlog: {access: null}\n"},
		{name: "comma-separated list in a file", yaml: "routes: [{upstream: a, match: {methods: 'GET, post'}}]\ntrusted_proxies: '10.0.0.1, 10.0.0.2'\n"},
		{name: "number as a string value", yaml: "routes: [{upstream: a, name: 123}]\nlisteners: [{name: http, address: '127.0.0.1:0', tls: {min_version: 1.3, certificates: []}, protocol: http}]\n",
			key: "listeners[0].tls", msg: "protocol is not https"},
		{name: "largest integer", yaml: "routes: [{upstream: a}]\nlimits: {max_request_body: 9223372036854775807}\n"},
		{name: "integer overflow", yaml: "routes: [{upstream: a}]\nlimits: {max_request_body: 9223372036854775808}\n", key: "limits.max_request_body", msg: "out of range"},
		{name: "longest duration", yaml: "routes: [{upstream: a}]\nshutdown_timeout: 2562047h47m16.854775807s\n"},
		{name: "fractional number as duration", yaml: "routes: [{upstream: a}]\nshutdown_timeout: 1.5\n", key: "shutdown_timeout", msg: "give a unit"},
		{name: "null in a list", yaml: "routes: [{upstream: a}]\ntrusted_proxies: [~]\n", key: "trusted_proxies[0]", msg: "expected a string, got null"},
		{name: "timestamp as a string", yaml: "routes: [{upstream: a, match: {host: 2001-12-14}}]\n", key: "routes[0].match.host", msg: "is a date or time, not a string: quote it"},
		{name: "null list item", yaml: "routes: [{upstream: a}, ~]\n", key: "routes[1].upstream", msg: "required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), "handoff.yaml", prefix(tt.yaml))
			opts := LoadOptions{File: path}
			l, err := Load(opts)
			checkLoadResult(t, l, err, opts)
			if tt.key == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Load = %v, want Errors", err)
			}
			wantError(t, errs, path, tt.key, tt.msg)
		})
	}
}

// TestLoadACMEErrorLine: a problem in tls.acme names the file, the line
// and the key, as every other key does; defaults fill directory and
// challenges.
func TestLoadACMEErrorLine(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.yaml", `listeners:
  - name: https
    address: "127.0.0.1:8443"
    protocol: https
    tls:
      acme:
        domains: [a.example.com]
        challenges: [dns-01]
upstreams: {web: {targets: [{address: "127.0.0.1:9000"}]}}
routes: [{upstream: web}]
`)
	errs := loadErrors(t, LoadOptions{File: bad})
	e := wantError(t, errs, bad, "listeners[0].tls.acme.challenges[0]", "dns-01")
	if e.Line != 8 {
		t.Errorf("line = %d, want 8", e.Line)
	}
	good := writeFile(t, dir, "good.yaml", `listeners:
  - name: https
    address: "127.0.0.1:8443"
    protocol: https
    tls: {acme: {domains: [a.example.com]}}
upstreams: {web: {targets: [{address: "127.0.0.1:9000"}]}}
routes: [{upstream: web}]
`)
	a := mustLoad(t, LoadOptions{File: good}).Config.Listeners[0].TLS.ACME
	if a.Directory != DefaultACMEDirectory || len(a.Challenges) != 2 {
		t.Errorf("defaults: directory %q challenges %q", a.Directory, a.Challenges)
	}
}
