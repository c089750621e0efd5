package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"

	kmaps "github.com/knadh/koanf/maps"
	kjson "github.com/knadh/koanf/parsers/json"
	ktoml "github.com/knadh/koanf/parsers/toml/v2"
	kyaml "github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/v2"
	"github.com/pelletier/go-toml/v2"
)

// Where configuration comes from.
const (
	// EnvPrefix starts every environment variable that sets a key:
	// HANDOFF_ADMIN__LISTEN sets admin.listen ("__" separates levels, a
	// single "_" stays part of the key name). Names are lower-cased, so
	// upstreams whose names have upper-case letters or dots cannot be
	// reached from the environment. Any other HANDOFF_* variable than
	// EnvConfigFile is an error (an unknown key).
	EnvPrefix = "HANDOFF_"
	// EnvConfigFile names the main config file when LoadOptions.File is
	// empty. It is not a key.
	EnvConfigFile = "HANDOFF_CONFIG"
	// DefaultFile is the main config file in production, read when it
	// exists and nothing else names a file.
	DefaultFile = "/etc/handoff/handoff.yaml"
	// DropInDir is the directory of drop-in files beside the main file.
	DropInDir = "conf.d"
	// QuickListener is the name of the first listener that --listen
	// defines, and of the listener Load adds when none is configured but
	// systemd passed a socket of that name.
	QuickListener = "http"
	// QuickUpstream is the name of the upstream (and of the route) that
	// --backend defines.
	QuickUpstream = "default"
)

// Overrides are the command-line flags that override every other layer.
// The cmd package parses them (pflag) and hands over plain values; zero
// values mean "not given".
//
// --backend turns on quick mode: it defines the upstream "default" with
// these targets and Strategy (round_robin when empty), merged over an
// upstream "default" from the lower layers, and replaces all routes with
// the single route {name: default, match: {}, upstream: default}.
// --listen replaces all listeners with "http", "http-1", "http-2", …
// (protocol http) on these addresses.
type Overrides struct {
	// Listen (-l/--listen, repeatable): "host:port" or "unix:/path".
	Listen []string
	// Backends (-b/--backend, repeatable): "host:port", "http://…",
	// "https://…" (TLS to that backend) or "h2c://…".
	Backends []string
	// Strategy (-s/--strategy) of the quick-mode upstream. Only valid
	// with Backends.
	Strategy string
	// Admin (--admin) is the admin API address, or "off".
	Admin string
	// LogLevel (--log-level): debug, info, warn or error.
	LogLevel string
	// LogFormat (--log-format): json or text.
	LogFormat string
}

// LoadOptions says where Load finds each layer. Layers, lowest first:
// built-in defaults, the main file, the drop-ins in conf.d beside it (in
// lexical order), HANDOFF_* variables from Env, then Overrides.
//
// Merging: mappings (sections, upstreams, headers) merge key by key; a
// value or a list replaces what lower layers said, except that the
// top-level listeners and routes of drop-in files are appended to those
// of the layers below, so that a drop-in can add a site (its upstream
// and its routes) without repeating the main file.
type LoadOptions struct {
	// File is the main config file (-c/--config). Empty means the
	// HANDOFF_CONFIG variable in Env, then DefaultFile if it exists, then
	// no file at all (quick mode). A file named by File or HANDOFF_CONFIG
	// must exist. The format follows the extension: .toml, .json, else
	// YAML.
	File string
	// DefaultFile is tried when File and HANDOFF_CONFIG are empty; in
	// production DefaultFile ("/etc/handoff/handoff.yaml"). Empty means
	// none.
	DefaultFile string
	// Env is the environment as KEY=value strings (os.Environ() in
	// production). Nil means none.
	Env []string
	// Overrides from the command line.
	Overrides Overrides
	// ActivatedNames are the names of the sockets systemd passed
	// (LISTEN_FDNAMES, sd_listen_fds_with_names(3)), one per fd. A
	// listener without an address is valid only when its name is here.
	// When no listener is configured at all and "http" is here, Load adds
	// the listener {name: http} (no address) for it. In quick mode a
	// single socket named "" or "unknown" counts as "http".
	ActivatedNames []string
	// AssumeActivated reports whether to validate as if systemd passed a
	// socket for every listener without an address (and "http" when no
	// listener is configured): for `handoff check` and `handoff config`,
	// which run outside the service. False (the default) checks against
	// ActivatedNames.
	AssumeActivated bool
}

// Loaded is a validated configuration and where each of its values came
// from.
type Loaded struct {
	// Config is valid, with defaults filled in.
	Config *Config
	// Files lists the files read, in the order they were merged: the
	// main file, then its drop-ins.
	Files []string
	// Sources maps every key path that MarshalYAML prints (its leaves:
	// "admin.listen", "upstreams.api.targets[0].weight",
	// "routes[1].match.methods") to the layer that set it last: "default",
	// a file path, "env HANDOFF_…", "flag --…" or "systemd
	// LISTEN_FDNAMES" (the listener added for an activated socket).
	Sources map[string]string
	// Warnings are problems that do not stop the config from working:
	// ignored drop-in files, settings that have no effect, unused
	// upstreams. Nil when there are none.
	Warnings Errors
}

// activatedNames returns the names of the sockets systemd passed as Load
// sees them. In quick mode (--backend given) a single socket without a
// name of its own ("" or "unknown", what sd_listen_fds_with_names(3)
// reports without LISTEN_FDNAMES) is called "http" (QuickListener), as the
// activation code names it in quick mode, so that `systemd-socket-activate
// -l :8080 handoff -b …` works.
func activatedNames(names []string, quick bool) []string {
	out := slices.Clone(names)
	if quick && len(out) == 1 && (out[0] == "" || out[0] == "unknown") {
		out[0] = QuickListener
	}
	return out
}

var configType = reflect.TypeFor[Config]()

// appendedLists are the top-level lists that drop-ins append to.
var appendedLists = []string{"listeners", "routes"}

// layer is one source of values, checked against the schema on its own.
type layer struct {
	// name is the source for errors and Sources: a file path, or a
	// fallback for env and flags.
	name string
	// values are the checked values, converted to the schema's types.
	values map[string]any
	// sets are the keys the layer sets, parents before children.
	sets []set
	// keySources maps keys to their own source (env and flags: one
	// variable or flag per key). Nil means every key comes from name.
	keySources map[string]string
	// lines maps keys to their line in a YAML file.
	lines map[string]int
	// appendLists reports whether the layer's top-level listeners and
	// routes are appended to the lower layers' (drop-ins).
	appendLists bool
}

// sourceOf names the source of key, a key path of this layer.
func (l *layer) sourceOf(key string) string {
	if l.keySources == nil {
		return l.name
	}
	for p := key; ; p = parentKey(p) {
		if s, ok := l.keySources[p]; ok {
			return s
		}
		if p == "" {
			break
		}
	}
	// A section: blame the first variable below it.
	for _, k := range slices.Sorted(maps.Keys(l.keySources)) {
		if underKey(k, key) {
			return l.keySources[k]
		}
	}
	return l.name
}

// lineOf returns the line of key, or of its nearest ancestor, in the
// layer's YAML file; zero when unknown.
func (l *layer) lineOf(key string) int {
	for p := key; p != ""; p = parentKey(p) {
		if n, ok := l.lines[p]; ok {
			return n
		}
	}
	return 0
}

// locate fills in the source and line of problems the layer's checker
// found.
func (l *layer) locate(es []*Error) []*Error {
	for _, e := range es {
		e.Source = l.sourceOf(e.Key)
		e.Line = l.lineOf(e.Key)
	}
	return es
}

// Load reads every layer, merges them, fills in defaults and validates
// the result. On any problem it returns nil and an Errors holding every
// problem found: all of the layers' unknown keys, type and syntax errors
// at once, or else all validation errors. Each problem names its file
// (and line, for YAML), variable or flag.
func Load(opts LoadOptions) (*Loaded, error) {
	var (
		layers []*layer
		files  []string
		errs   Errors
		warns  Errors
	)
	file, fileErr := mainFile(opts)
	if fileErr != nil {
		errs = append(errs, fileErr)
	}
	if file != "" {
		l, es := readFile(file, false)
		errs = append(errs, es...)
		if l != nil {
			layers = append(layers, l)
			files = append(files, file)
		}
		dropIns, ws, es := listDropIns(filepath.Join(filepath.Dir(file), DropInDir))
		errs = append(errs, es...)
		warns = append(warns, ws...)
		for _, path := range dropIns {
			l, es := readFile(path, true)
			errs = append(errs, es...)
			if l != nil {
				layers = append(layers, l)
				files = append(files, path)
			}
		}
	}
	el, es := envLayer(opts.Env)
	errs = append(errs, es...)
	layers = append(layers, el)
	fl, es := flagsLayer(opts.Overrides)
	errs = append(errs, es...)
	layers = append(layers, fl)
	if len(errs) > 0 {
		sortErrors(errs)
		return nil, errs
	}

	cfg, origins, err := merge(layers)
	if err != nil {
		return nil, Errors{{Msg: "decode merged config: " + err.Error(), Err: err}}
	}
	activated := activatedNames(opts.ActivatedNames, len(opts.Overrides.Backends) > 0)
	if opts.AssumeActivated {
		activated = append(activated, QuickListener)
		for _, l := range cfg.Listeners {
			if l.Address == "" {
				activated = append(activated, l.Name)
			}
		}
	}
	if len(cfg.Listeners) == 0 && slices.Contains(activated, QuickListener) {
		cfg.Listeners = []Listener{{Name: QuickListener}}
		origins.record(&layer{name: "systemd LISTEN_FDNAMES"}, len(layers), set{key: "listeners[0].name"}, nil)
	}
	cfg.ApplyDefaults()

	var v validator
	v.activated = activated
	v.config(cfg)
	if len(v.errs.errs) > 0 {
		origins.locate(v.errs.errs)
		sortErrors(v.errs.errs)
		return nil, v.errs.errs
	}
	origins.locate(v.warns.errs)
	warns = append(warns, v.warns.errs...)
	sortErrors(warns)
	if len(warns) == 0 {
		warns = nil
	}

	sources := make(map[string]string)
	walkLeaves(cfg, func(key string) {
		src := "default"
		if o, ok := origins.find(key, false); ok {
			src = o.source(key)
		}
		sources[key] = src
	})
	return &Loaded{Config: cfg, Files: files, Sources: sources, Warnings: warns}, nil
}

// mainFile resolves the main config file: "" when there is none.
func mainFile(opts LoadOptions) (string, *Error) {
	if opts.File != "" {
		return opts.File, nil
	}
	for _, kv := range opts.Env {
		if v, ok := strings.CutPrefix(kv, EnvConfigFile+"="); ok {
			if v != "" {
				return v, nil
			}
			break // the first one wins, as with getenv(3)
		}
	}
	if opts.DefaultFile == "" {
		return "", nil
	}
	if _, err := os.Stat(opts.DefaultFile); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		return "", &Error{Source: opts.DefaultFile, Msg: "cannot read: " + pathErr(err).Error(), Err: err}
	}
	return opts.DefaultFile, nil
}

// pathErr strips the operation and path from an *fs.PathError, since the
// Error's Source already names the file.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

var dropInExts = []string{".yaml", ".yml", ".toml", ".json"}

// listDropIns returns the drop-in files of dir in lexical order. A missing
// directory has none. Hidden files and directories are skipped silently,
// other files with the wrong extension with a warning.
func listDropIns(dir string) (files []string, warns, errs []*Error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, nil
		}
		return nil, nil, []*Error{{Source: dir, Msg: "cannot read drop-in directory: " + pathErr(err).Error(), Err: err}}
	}
	for _, e := range entries { // sorted by name (os.ReadDir)
		name := e.Name()
		path := filepath.Join(dir, name)
		if strings.HasPrefix(name, ".") {
			continue
		}
		fi, err := os.Stat(path) // follows symlinks
		if err != nil {
			errs = append(errs, &Error{Source: path, Msg: "cannot read: " + pathErr(err).Error(), Err: err})
			continue
		}
		if fi.IsDir() {
			continue
		}
		if !slices.Contains(dropInExts, strings.ToLower(filepath.Ext(name))) {
			warns = append(warns, &Error{Source: path, Msg: "ignored: only " + strings.Join(dropInExts, ", ") + " files are read"})
			continue
		}
		files = append(files, path)
	}
	return files, warns, errs
}

// parserFor picks a koanf parser by file extension; YAML is the default.
func parserFor(path string) (p koanf.Parser, isYAML bool) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".toml":
		return ktoml.Parser(), false
	case ".json":
		return kjson.Parser(), false
	}
	return kyaml.Parser(), true
}

// rawBytes is a koanf.Provider of bytes already read, so that the file is
// read once for both koanf and the YAML line map.
type rawBytes []byte

func (b rawBytes) ReadBytes() ([]byte, error) { return b, nil }

func (b rawBytes) Read() (map[string]any, error) {
	return nil, errors.New("rawBytes provider needs a parser")
}

// readFile loads one file into its own koanf and checks it.
func readFile(path string, dropIn bool) (*layer, []*Error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, []*Error{{Source: path, Msg: "cannot read: " + pathErr(err).Error(), Err: err}}
	}
	return parseFile(path, b, dropIn)
}

// parseFile parses and checks the content b of the file path.
func parseFile(path string, b []byte, dropIn bool) (*layer, []*Error) {
	p, isYAML := parserFor(path)
	k := koanf.New(".")
	if err := k.Load(rawBytes(b), p); err != nil {
		return nil, []*Error{syntaxError(path, b, err)}
	}
	l := &layer{name: path, appendLists: dropIn}
	if isYAML {
		l.lines = yamlLines(b)
	}
	var c checker
	l.values, _ = c.check("", k.Raw(), configType).(map[string]any)
	l.sets = c.sets
	return l, l.locate(c.errs)
}

// syntaxError locates a parser's error in the file when the parser says
// where it is.
func syntaxError(path string, b []byte, err error) *Error {
	e := &Error{Source: path, Msg: "syntax error: " + err.Error(), Err: err}
	var (
		tomlErr *toml.DecodeError
		jsonSyn *json.SyntaxError
		jsonTyp *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tomlErr):
		e.Line, _ = tomlErr.Position()
	case errors.As(err, &jsonSyn):
		e.Line = lineAt(b, jsonSyn.Offset)
	case errors.As(err, &jsonTyp):
		e.Line = lineAt(b, jsonTyp.Offset)
		e.Msg = "expected a mapping at the top level: " + err.Error()
	}
	// YAML parser errors carry the line in their text ("yaml: line 3:
	// …"); go.yaml.in/yaml/v3 has no structured position for them.
	return e
}

// lineAt is the 1-based line of byte offset off in b.
func lineAt(b []byte, off int64) int {
	off = min(max(off, 0), int64(len(b)))
	return 1 + bytes.Count(b[:off], []byte("\n"))
}

// envLayer reads the HANDOFF_* variables through koanf's env provider.
func envLayer(environ []string) (*layer, []*Error) {
	l := &layer{name: "env", keySources: make(map[string]string)}
	var errs []*Error
	// The provider gets no delimiter, so it does not nest keys itself:
	// koanf's Unflatten silently misplaces a key whose parent is also set
	// as a value (HANDOFF_ADMIN=x next to HANDOFF_ADMIN__LISTEN=y); nest
	// below reports that instead. NUL cannot occur in a variable name, so
	// it separates the levels.
	vars := make(map[string]string)
	p := env.Provider("", env.Opt{
		Prefix:      EnvPrefix,
		EnvironFunc: func() []string { return environ },
		TransformFunc: func(name, value string) (string, any) {
			if name == EnvConfigFile {
				return "", nil
			}
			parts := strings.Split(strings.ToLower(strings.TrimPrefix(name, EnvPrefix)), "__")
			if slices.Contains(parts, "") {
				errs = append(errs, &Error{Source: "env " + name, Msg: "not a config key: use HANDOFF_<KEY>__<SUBKEY>, e.g. HANDOFF_ADMIN__LISTEN"})
				return "", nil
			}
			key := strings.Join(parts, "\x00")
			vars[key] = name
			return key, value
		},
	})
	flat, err := p.Read()
	if err != nil { // the provider never fails with an EnvironFunc
		return l, []*Error{{Source: "env", Msg: "read environment: " + err.Error(), Err: err}}
	}
	raw := make(map[string]any)
	for _, key := range slices.Sorted(maps.Keys(flat)) {
		parts := strings.Split(key, "\x00")
		dotted := strings.Join(parts, ".")
		src := "env " + vars[key]
		l.keySources[dotted] = src
		m := raw
		ok := true
		for i, part := range parts[:len(parts)-1] {
			switch next := m[part].(type) {
			case nil:
				sub := make(map[string]any)
				m[part] = sub
				m = sub
			case map[string]any:
				m = next
			default:
				errs = append(errs, &Error{Source: src, Key: dotted, Msg: fmt.Sprintf("conflicts with %s, which sets %s as one value", envName(strings.Join(parts[:i+1], ".")), strings.Join(parts[:i+1], "."))})
				ok = false
			}
			if !ok {
				break
			}
		}
		if ok {
			m[parts[len(parts)-1]] = flat[key]
		}
	}
	// Sorted keys put "admin" before "admin\x00listen", so a value is never
	// overwritten by a section; the loop above reports the clash.
	c := checker{env: true}
	l.values, _ = c.check("", raw, configType).(map[string]any)
	l.sets = c.sets
	return l, append(errs, l.locate(c.errs)...)
}

// flagsLayer turns the command-line overrides into a layer.
func flagsLayer(o Overrides) (*layer, []*Error) {
	l := &layer{name: "flags", keySources: make(map[string]string)}
	raw := make(map[string]any)
	var errs []*Error
	if len(o.Listen) > 0 {
		ls := make([]any, len(o.Listen))
		for i, addr := range o.Listen {
			name := QuickListener
			if i > 0 {
				name = QuickListener + "-" + strconv.Itoa(i)
			}
			ls[i] = map[string]any{"name": name, "address": addr, "protocol": ProtocolHTTP}
		}
		raw["listeners"] = ls
		l.keySources["listeners"] = "flag --listen"
	}
	switch {
	case len(o.Backends) > 0:
		targets := make([]any, len(o.Backends))
		for i, addr := range o.Backends {
			targets[i] = map[string]any{"address": addr}
		}
		strategy := o.Strategy
		l.keySources["upstreams."+QuickUpstream] = "flag --backend"
		if strategy != "" {
			l.keySources["upstreams."+QuickUpstream+".strategy"] = "flag --strategy"
		} else {
			strategy = StrategyRoundRobin
		}
		raw["upstreams"] = map[string]any{QuickUpstream: map[string]any{"targets": targets, "strategy": strategy}}
		raw["routes"] = []any{map[string]any{"name": QuickUpstream, "match": map[string]any{}, "upstream": QuickUpstream}}
		l.keySources["routes"] = "flag --backend"
	case o.Strategy != "":
		errs = append(errs, &Error{Source: "flag --strategy", Msg: "needs --backend: it sets the strategy of the quick-mode upstream"})
	}
	section := func(key, sub, flag, val string) {
		if val == "" {
			return
		}
		m, _ := raw[key].(map[string]any)
		if m == nil {
			m = make(map[string]any)
			raw[key] = m
		}
		m[sub] = val
		l.keySources[key+"."+sub] = flag
	}
	section("admin", "listen", "flag --admin", o.Admin)
	section("log", "level", "flag --log-level", o.LogLevel)
	section("log", "format", "flag --log-format", o.LogFormat)
	var c checker
	l.values, _ = c.check("", raw, configType).(map[string]any)
	l.sets = c.sets
	return l, append(errs, l.locate(c.errs)...)
}

// merge merges the layers, lowest first, into one koanf and decodes it.
func merge(layers []*layer) (*Config, origins, error) {
	k := koanf.New(".")
	orig := make(origins)
	for rank, l := range layers {
		offsets := make(map[string]int)
		var opts []koanf.Option
		if l.appendLists {
			cur := k.Raw()
			for _, key := range appendedLists {
				items, _ := cur[key].([]any)
				offsets[key] = len(items)
			}
			opts = append(opts, koanf.WithMergeFunc(appendMerge))
		}
		if err := k.Load(confmap.Provider(l.values, ""), nil, opts...); err != nil {
			return nil, nil, fmt.Errorf("merge %s: %w", l.name, err)
		}
		for _, s := range l.sets {
			orig.record(l, rank, s, offsets)
		}
	}
	var cfg Config
	if err := k.UnmarshalWithConf("", &cfg, koanf.UnmarshalConf{Tag: "koanf"}); err != nil {
		return nil, nil, err
	}
	nilEmpty(reflect.ValueOf(&cfg).Elem())
	return &cfg, orig, nil
}

// appendMerge is koanf's default merge, except that the drop-in's
// top-level lists in appendedLists are appended to the existing ones.
func appendMerge(src, dest map[string]any) error {
	for _, key := range appendedLists {
		v, ok := src[key]
		if !ok {
			continue
		}
		items, _ := v.([]any)
		if len(items) == 0 {
			delete(src, key) // appending nothing (or null) keeps what is there
			continue
		}
		if cur, ok := dest[key].([]any); ok {
			src[key] = append(slices.Clip(cur), items...)
		}
	}
	kmaps.Merge(src, dest)
	return nil
}

// nilEmpty turns empty slices and maps into nil, so that "routes: []"
// and no routes at all decode to the same Config.
func nilEmpty(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			nilEmpty(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				nilEmpty(v.Field(i))
			}
		}
	case reflect.Slice:
		if v.Len() == 0 {
			v.SetZero()
			return
		}
		for i := range v.Len() {
			nilEmpty(v.Index(i))
		}
	case reflect.Map:
		if v.Len() == 0 {
			v.SetZero()
			return
		}
		if isScalar(v.Type().Elem()) {
			return
		}
		for _, k := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			nilEmpty(e)
			v.SetMapIndex(k, e)
		}
	}
}

// origin is the layer that set a merged key.
type origin struct {
	layer *layer
	rank  int
	// list reports whether the key holds a list of sections: it is found
	// only by its exact key, not as the ancestor of its items' keys (an
	// item's defaulted field was not set by the layer that set the list).
	list bool
	// merged and local translate keys of items appended by a drop-in:
	// the merged "routes[5]" is the drop-in's own "routes[0]".
	merged, local string
}

func (o origin) localKey(key string) string {
	if o.merged != "" && underKey(key, o.merged) {
		return o.local + key[len(o.merged):]
	}
	return key
}

func (o origin) source(key string) string { return o.layer.sourceOf(o.localKey(key)) }

func (o origin) line(key string) int { return o.layer.lineOf(o.localKey(key)) }

// origins maps merged keys to the layer that set them last.
type origins map[string]origin

// record notes that layer l (of rank rank) sets s. offsets holds, for a
// drop-in, the length of each appended list before it.
func (m origins) record(l *layer, rank int, s set, offsets map[string]int) {
	o := origin{layer: l, rank: rank, list: s.list}
	key := s.key
	for _, list := range appendedLists {
		off, ok := offsets[list]
		if !ok || !underKey(key, list) {
			continue
		}
		if key == list {
			return // appending: the list itself keeps its items
		}
		if key[len(list)] != '[' {
			break
		}
		rest := key[len(list)+1:] // "5].name"
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			break
		}
		i, err := strconv.Atoi(rest[:end])
		if err != nil {
			break
		}
		o.local = indexKey(list, i)
		o.merged = indexKey(list, i+off)
		key = o.merged + rest[end+1:]
	}
	for k := range m {
		if underKey(k, key) {
			delete(m, k)
		}
	}
	m[key] = o
}

// find returns the origin of key: its own, else its nearest ancestor's
// (not crossing a list of sections). When descend is set and neither
// exists (a problem with a section, or with a key left at its default),
// it blames the highest layer that set anything below key, else below
// its parent, and so on: "listeners[0].address" missing is blamed on the
// file that defined listeners[0].
func (m origins) find(key string, descend bool) (origin, bool) {
	if o, ok := m[key]; ok {
		return o, true
	}
	for p := parentKey(key); p != ""; p = parentKey(p) {
		if o, ok := m[p]; ok && !o.list {
			return o, true
		}
	}
	if !descend {
		return origin{}, false
	}
	for p := key; p != ""; p = parentKey(p) {
		var (
			best  origin
			found bool
		)
		for k, o := range m {
			if underKey(k, p) && (!found || o.rank > best.rank) {
				best, found = o, true
			}
		}
		if found {
			return best, true
		}
	}
	return origin{}, false
}

// locate fills in source and line of validation problems.
func (m origins) locate(es []*Error) {
	for _, e := range es {
		if e.Source != "" || e.Key == "" {
			continue
		}
		if o, ok := m.find(e.Key, true); ok {
			e.Source = o.source(e.Key)
			e.Line = o.line(e.Key)
		}
	}
}
