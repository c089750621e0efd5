package config

import (
	"maps"
	"reflect"
	"slices"
)

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
	// lines maps keys to their line in a YAML or JSON file.
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
// layer's file; zero when unknown.
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
