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
