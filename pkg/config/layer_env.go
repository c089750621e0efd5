package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/knadh/koanf/providers/env/v2"
)

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
