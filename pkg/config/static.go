package config

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
)

// Static is the half of the config that a reload cannot apply: sockets
// and process-wide settings that need a re-bind, a restart or a handoff to
// a new process. Everything else (routes, upstreams, trusted_proxies, and
// the TLS certificates of listeners, which a reload loads in place) is
// dynamic and swapped atomically on reload. Listeners here keep their
// certificates, so that Static describes the sockets completely.
type Static struct {
	Listeners       []Listener     `json:"listeners" yaml:"listeners"`
	Admin           Admin          `json:"admin" yaml:"admin"`
	Log             Log            `json:"log" yaml:"log"`
	Timeouts        ServerTimeouts `json:"timeouts" yaml:"timeouts"`
	Limits          Limits         `json:"limits" yaml:"limits"`
	ShutdownTimeout time.Duration  `json:"shutdown_timeout" yaml:"shutdown_timeout"`
	State           State          `json:"state,omitzero" yaml:"state,omitempty"`
	Cache           Cache          `json:"cache,omitzero" yaml:"cache,omitempty"`
}

// Static returns a deep copy of the static half of c.
func (c *Config) Static() Static {
	cp := c.Clone()
	return Static{
		Listeners:       cp.Listeners,
		Admin:           cp.Admin,
		Log:             cp.Log,
		Timeouts:        cp.Timeouts,
		Limits:          cp.Limits,
		ShutdownTimeout: cp.ShutdownTimeout,
		State:           cp.State,
		Cache:           cp.Cache,
	}
}

// StaticChanges lists, sorted, the key paths of the static half that
// differ between old and new, for the warning a reload prints ("these
// changes need a restart"). Listeners are compared by name, not by
// position, and appear as listeners["web"] (the listener was added or
// removed) or listeners["web"].address (one of its settings changed).
// The certificates, client_auth and acme settings of a listener's TLS section are
// dynamic (a reload loads them in place) and never appear; its min_version does. Nil
// configs count as empty. Compare configs that both went through
// ApplyDefaults (Load does it), or a default spelled out counts as a
// change.
func StaticChanges(old, new *Config) []string {
	if old == nil {
		old = &Config{}
	}
	if new == nil {
		new = &Config{}
	}
	a, b := staticLeaves(old), staticLeaves(new)
	var out []string
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			out = append(out, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// staticLeaves maps each value of the static half to its text; every
// listener also gets an entry of its own, so that adding or removing one
// shows as listeners["name"].
func staticLeaves(c *Config) map[string]string {
	out := make(map[string]string)
	for _, l := range c.Listeners {
		key := "listeners[" + strconv.Quote(l.Name) + "]"
		out[key] = ""
		leafValues(key, l, out)
		certs, clientAuth, acme := key+".tls.certificates", key+".tls.client_auth", key+".tls.acme"
		maps.DeleteFunc(out, func(k, _ string) bool {
			return underKey(k, certs) || underKey(k, clientAuth) || underKey(k, acme)
		})
	}
	leafValues("admin", c.Admin, out)
	leafValues("state", c.State, out)
	leafValues("cache", c.Cache, out)
	delete(out, "cache.max_object") // dynamic: each generation's cache applies it
	leafValues("log", c.Log, out)
	delete(out, "log.access_sample") // dynamic: each generation's access log applies it
	leafValues("timeouts", c.Timeouts, out)
	leafValues("limits", c.Limits, out)
	leafValues("shutdown_timeout", c.ShutdownTimeout, out)
	return out
}

// Summary describes c in one line for `handoff check`: "2 listeners,
// 3 routes, 2 upstreams (5 targets)".
func (c *Config) Summary() string {
	targets := 0
	for _, u := range c.Upstreams {
		targets += len(u.Targets)
	}
	return fmt.Sprintf("%s, %s, %s (%s)",
		plural(len(c.Listeners), "listener"), plural(len(c.Routes), "route"),
		plural(len(c.Upstreams), "upstream"), plural(targets, "target"))
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
