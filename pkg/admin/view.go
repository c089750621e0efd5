package admin

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/handoff-proxy/handoff/pkg/config"
)

// maxDepth bounds nesting in marshalView, so that a cycle through pointers
// is an error instead of a stack overflow.
const maxDepth = 64

var (
	durationType      = reflect.TypeFor[time.Duration]()
	jsonMarshalerType = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

var errTooDeep = errors.New("value nested too deeply (cycle?)")

// marshalView encodes v as encoding/json does, following the json tags
// (names, "-", omitempty, omitzero; embedded structs are inlined), except
// that a time.Duration is written as a string the way config files write
// it (config.FormatDuration: "30s", "1m30s", "1h") instead of a count of
// nanoseconds, so the config reads as it was written and as `handoff
// config` prints it. Map keys
// are sorted, as encoding/json sorts them. The "string" tag option is not
// supported; the config schema does not use it.
func marshalView(v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := encodeValue(&buf, reflect.ValueOf(v), 0); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func encodeValue(buf *bytes.Buffer, v reflect.Value, depth int) error {
	if depth > maxDepth {
		return errTooDeep
	}
	if !v.IsValid() {
		buf.WriteString("null")
		return nil
	}
	t := v.Type()
	if t == durationType {
		return encodeJSON(buf, config.FormatDuration(time.Duration(v.Int())))
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			buf.WriteString("null")
			return nil
		}
		if t.Implements(jsonMarshalerType) || t.Implements(textMarshalerType) {
			return encodeJSON(buf, v.Interface())
		}
		return encodeValue(buf, v.Elem(), depth+1)
	}
	if hasMarshaler(v) {
		if v.CanAddr() {
			return encodeJSON(buf, v.Addr().Interface())
		}
		return encodeJSON(buf, v.Interface())
	}
	switch v.Kind() {
	case reflect.Struct:
		buf.WriteByte('{')
		first := true
		if err := encodeFields(buf, v, &first, depth); err != nil {
			return err
		}
		buf.WriteByte('}')
		return nil
	case reflect.Map:
		if v.IsNil() {
			buf.WriteString("null")
			return nil
		}
		return encodeMap(buf, v, depth)
	case reflect.Slice:
		if v.IsNil() {
			buf.WriteString("null")
			return nil
		}
		if t.Elem().Kind() == reflect.Uint8 {
			return encodeJSON(buf, v.Bytes()) // base64, as encoding/json
		}
		fallthrough
	case reflect.Array:
		buf.WriteByte('[')
		for i := range v.Len() {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := encodeValue(buf, v.Index(i), depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
		return nil
	}
	// Leaves, written as encoding/json writes them.
	switch v.Kind() {
	case reflect.String:
		return encodeJSON(buf, v.String())
	case reflect.Bool:
		buf.WriteString(strconv.FormatBool(v.Bool()))
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		buf.WriteString(strconv.FormatInt(v.Int(), 10))
		return nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		buf.WriteString(strconv.FormatUint(v.Uint(), 10))
		return nil
	case reflect.Float32:
		return encodeJSON(buf, float32(v.Float()))
	case reflect.Float64:
		return encodeJSON(buf, v.Float())
	}
	return fmt.Errorf("encode %s: unsupported type", t)
}

// hasMarshaler reports whether v's type, or its pointer type when v is
// addressable, marshals itself (time.Time, netip.Addr, …).
func hasMarshaler(v reflect.Value) bool {
	t := v.Type()
	if t.Implements(jsonMarshalerType) || t.Implements(textMarshalerType) {
		return true
	}
	if v.CanAddr() {
		pt := reflect.PointerTo(t)
		return pt.Implements(jsonMarshalerType) || pt.Implements(textMarshalerType)
	}
	return false
}

func encodeJSON(buf *bytes.Buffer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %T: %w", v, err)
	}
	buf.Write(b)
	return nil
}

// encodeFields writes the fields of struct v, without braces, so that
// embedded structs can be inlined into their parent.
func encodeFields(buf *bytes.Buffer, v reflect.Value, first *bool, depth int) error {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		fv := v.Field(i)
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
				if fv.IsNil() {
					continue
				}
				fv = fv.Elem()
			}
			if ft.Kind() == reflect.Struct {
				if err := encodeFields(buf, fv, first, depth+1); err != nil {
					return err
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if hasOpt(opts, "omitempty") && isEmpty(fv) {
			continue
		}
		if hasOpt(opts, "omitzero") && isZero(fv) {
			continue
		}
		if !*first {
			buf.WriteByte(',')
		}
		*first = false
		if err := encodeJSON(buf, name); err != nil {
			return err
		}
		buf.WriteByte(':')
		if err := encodeValue(buf, fv, depth+1); err != nil {
			return fmt.Errorf("field %s: %w", f.Name, err)
		}
	}
	return nil
}

func encodeMap(buf *bytes.Buffer, v reflect.Value, depth int) error {
	type entry struct {
		key string
		val reflect.Value
	}
	entries := make([]entry, 0, v.Len())
	iter := v.MapRange()
	for iter.Next() {
		k, err := mapKey(iter.Key())
		if err != nil {
			return err
		}
		entries = append(entries, entry{k, iter.Value()})
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.key, b.key) })
	buf.WriteByte('{')
	for i, e := range entries {
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := encodeJSON(buf, e.key); err != nil {
			return err
		}
		buf.WriteByte(':')
		if err := encodeValue(buf, e.val, depth+1); err != nil {
			return fmt.Errorf("map key %q: %w", e.key, err)
		}
	}
	buf.WriteByte('}')
	return nil
}

// mapKey turns a map key into its JSON object name as encoding/json does:
// strings as they are, then TextMarshaler, then integers in decimal.
func mapKey(k reflect.Value) (string, error) {
	if k.Kind() == reflect.String {
		return k.String(), nil
	}
	if tm, ok := k.Interface().(encoding.TextMarshaler); ok {
		b, err := tm.MarshalText()
		if err != nil {
			return "", fmt.Errorf("map key: %w", err)
		}
		return string(b), nil
	}
	switch k.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(k.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.FormatUint(k.Uint(), 10), nil
	}
	return "", fmt.Errorf("unsupported map key type %s", k.Type())
}

func hasOpt(opts, want string) bool {
	for o := range strings.SplitSeq(opts, ",") {
		if o == want {
			return true
		}
	}
	return false
}

// isEmpty is encoding/json's omitempty test.
func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Interface, reflect.Pointer:
		return v.IsZero()
	}
	return false
}

// isZero is encoding/json's omitzero test: an IsZero() bool method when
// the type has one, else the zero value.
func isZero(v reflect.Value) bool {
	if z, ok := v.Interface().(interface{ IsZero() bool }); ok {
		if v.Kind() == reflect.Pointer && v.IsNil() {
			return true
		}
		return z.IsZero()
	}
	if v.CanAddr() {
		if z, ok := v.Addr().Interface().(interface{ IsZero() bool }); ok {
			return z.IsZero()
		}
	}
	return v.IsZero()
}
