package config

import (
	"fmt"
	"reflect"
	"slices"

	kmaps "github.com/knadh/koanf/maps"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/v2"
)

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
