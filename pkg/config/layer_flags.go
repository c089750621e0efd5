package config

import "strconv"

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
