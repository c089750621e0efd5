package config

import (
	"path/filepath"
	"slices"
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
	// socket for every configured listener without an address: for
	// `handoff check` and `handoff config`, which run outside the service.
	// It does not add the "http" listener that a passed socket adds when
	// no listener is configured (serve would not have one either). False
	// (the default) checks against ActivatedNames only.
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

// Load reads every layer, merges them, fills in defaults and validates
// the result. On any problem it returns nil and an Errors holding every
// problem found, sorted by source, line and key: the layers' unknown keys
// and type errors together with the validation errors of everything else
// (a value that was rejected is left out of the merge, and validation
// problems at or below its key are not reported twice). A file that cannot
// be read or parsed stops Load before validation, since what it would have
// said is unknown. Each problem names its file (and line, for YAML and
// JSON), variable or flag.
func Load(opts LoadOptions) (*Loaded, error) {
	in := readLayers(opts)
	if !in.complete {
		sortErrors(in.errs)
		return nil, in.errs
	}
	cfg, origins, err := merge(in.layers)
	if err != nil {
		return nil, Errors{{Msg: "decode merged config: " + err.Error(), Err: err}}
	}
	activated := activatedNames(opts.ActivatedNames, len(opts.Overrides.Backends) > 0)
	if opts.AssumeActivated {
		for _, l := range cfg.Listeners {
			if l.Address == "" {
				activated = append(activated, l.Name)
			}
		}
	}
	if len(cfg.Listeners) == 0 && slices.Contains(activated, QuickListener) {
		cfg.Listeners = []Listener{{Name: QuickListener}}
		origins.record(&layer{name: "systemd LISTEN_FDNAMES"}, len(in.layers), set{key: "listeners[0].name"}, nil)
	}
	cfg.ApplyDefaults()

	v := validator{activated: activated}
	v.config(cfg)
	if e := missingRoutes(cfg, in); e != nil {
		v.errs.errs = append(v.errs.errs, e)
	}
	origins.locate(v.errs.errs)
	errs := append(in.errs, notHiding(v.errs.errs, in.errs)...)
	if len(errs) > 0 {
		sortErrors(errs)
		return nil, errs
	}
	origins.locate(v.warns.errs)
	warns := append(in.warns, v.warns.errs...)
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
	return &Loaded{Config: cfg, Files: in.files, Sources: sources, Warnings: warns}, nil
}

// input is every layer Load read, lowest first, and what went wrong.
type input struct {
	layers      []*layer
	files       []string
	errs, warns Errors
	// complete reports whether every file was read and parsed: only then
	// is the merged config worth validating.
	complete bool
}

// readLayers reads the main file, its drop-ins, the environment and the
// flags, each checked against the schema on its own.
func readLayers(opts LoadOptions) input {
	in := input{complete: true}
	file, fileErr := mainFile(opts)
	if fileErr != nil {
		in.errs = append(in.errs, fileErr)
		in.complete = false
	}
	addFile := func(path string, dropIn bool) {
		l, es := readFile(path, dropIn)
		in.errs = append(in.errs, es...)
		if l == nil {
			in.complete = false
			return
		}
		in.layers = append(in.layers, l)
		in.files = append(in.files, path)
	}
	if file != "" {
		addFile(file, false)
		dropIns, ws, es := listDropIns(filepath.Join(filepath.Dir(file), DropInDir))
		in.errs = append(in.errs, es...)
		in.warns = append(in.warns, ws...)
		if len(es) > 0 {
			in.complete = false
		}
		for _, path := range dropIns {
			addFile(path, true)
		}
	}
	el, es := envLayer(opts.Env)
	in.errs = append(in.errs, es...)
	in.layers = append(in.layers, el)
	fl, es := flagsLayer(opts.Overrides)
	in.errs = append(in.errs, es...)
	in.layers = append(in.layers, fl)
	return in
}

// notHiding returns the validation problems that are not at or below the
// key of a problem a layer already reported: a rejected value is left
// out of the merge, so "required" or "at least one" about it would only
// repeat the first problem.
func notHiding(valErrs, layerErrs Errors) Errors {
	var out Errors
	for _, e := range valErrs {
		if !slices.ContainsFunc(layerErrs, func(le *Error) bool {
			return le.Key != "" && underKey(e.Key, le.Key)
		}) {
			out = append(out, e)
		}
	}
	return out
}

// missingRoutes reports a config that has listeners but no routes, when
// no layer said "routes: []": every request would be answered 404, which
// is what a file cut off while it was being written looks like (its
// listeners and admin sections came through, its routes did not). A
// reload of such a file is refused like any other invalid config.
func missingRoutes(cfg *Config, in input) *Error {
	if len(cfg.Listeners) == 0 || len(cfg.Routes) > 0 {
		return nil
	}
	for _, l := range in.layers {
		for _, s := range l.sets {
			if s.key == "routes" && s.list {
				return nil
			}
		}
	}
	e := &Error{Key: "routes", Msg: "no routes: every request would get 404; write `routes: []` if that is meant"}
	for _, l := range in.layers { // the main file, else the flag or variable that gave listeners
		if len(in.files) > 0 && l.name == in.files[0] || slices.ContainsFunc(l.sets, func(s set) bool { return s.key == "listeners" }) {
			e.Source = l.sourceOf("listeners")
			break
		}
	}
	return e
}
