package config

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The schema is the Config type itself: its koanf tags name the keys, the
// Go types say what values are allowed. Nothing here lists keys by hand, so
// a field added to types.go is known to every layer at once.

var durationType = reflect.TypeFor[time.Duration]()

// field is one key of a struct in the schema.
type field struct {
	name string // koanf tag
	sf   reflect.StructField
}

// fieldsOf lists the keys of struct type t in declaration order.
func fieldsOf(t reflect.Type) []field {
	var out []field
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(sf.Tag.Get("koanf"), ",")
		if name == "" || name == "-" {
			continue
		}
		out = append(out, field{name: name, sf: sf})
	}
	return out
}

func fieldNames(fs []field) []string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.name
	}
	return names
}

// isScalar reports whether t is a single value rather than a section or
// a list. time.Duration counts as a scalar.
func isScalar(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map, reflect.Slice, reflect.Array, reflect.Interface:
		return false
	}
	return true
}

// joinKey appends a map key or struct field to a key path.
func joinKey(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// indexKey appends a list index to a key path.
func indexKey(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}

// parentKey strips the last element of a key path: "a.b[2]" → "a.b",
// "a.b" → "a", "a" → "".
func parentKey(key string) string {
	i := strings.LastIndexAny(key, ".[")
	if i < 0 {
		return ""
	}
	return key[:i]
}

// underKey reports whether key is prefix itself or a key below it.
func underKey(key, prefix string) bool {
	if prefix == "" || key == prefix {
		return true
	}
	if !strings.HasPrefix(key, prefix) {
		return false
	}
	c := key[len(prefix)]
	return c == '.' || c == '['
}

// envName is the environment variable that sets key path key.
func envName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "__"))
}

// set is one key a layer sets.
type set struct {
	key string
	// list reports whether key holds a list of sections: the layer replaces
	// the whole list (deleting what lower layers said below key), and its
	// items' own keys are recorded separately.
	list bool
}

// checker walks one layer's raw values against the schema. It reports
// unknown keys and values of the wrong type, and returns the values
// converted to the schema's Go types (int64, bool, string,
// time.Duration, []any, map[string]any), ready to merge and decode.
type checker struct {
	// env reports whether the values come from HANDOFF_* variables; it
	// only changes the hints in messages.
	env  bool
	errs []*Error
	sets []set
}

func (c *checker) add(key, format string, args ...any) {
	c.errs = append(c.errs, &Error{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// check converts v, found at key, to type t.
func (c *checker) check(key string, v any, t reflect.Type) any {
	if v == nil {
		// An explicit null resets the key to its zero value.
		c.sets = append(c.sets, set{key: key})
		return nil
	}
	switch {
	case t == durationType:
		c.sets = append(c.sets, set{key: key})
		return c.duration(key, v)
	case t.Kind() == reflect.Pointer:
		return c.check(key, v, t.Elem())
	case t.Kind() == reflect.Struct:
		return c.section(key, v, t)
	case t.Kind() == reflect.Map:
		return c.mapping(key, v, t)
	case t.Kind() == reflect.Slice:
		return c.list(key, v, t)
	default:
		c.sets = append(c.sets, set{key: key})
		return c.scalar(key, v, t)
	}
}

func asMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, v := range m {
			out[fmt.Sprint(k)] = v
		}
		return out, true
	}
	return nil, false
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (c *checker) section(key string, v any, t reflect.Type) any {
	fs := fieldsOf(t)
	m, ok := asMap(v)
	if !ok {
		if c.env && len(fs) > 0 {
			c.add(key, "is a section, not a value: set its keys instead, for example %s", envName(joinKey(key, fs[0].name)))
		} else {
			c.add(key, "expected a mapping with the keys %s, got %s", strings.Join(fieldNames(fs), ", "), describe(v))
		}
		return nil
	}
	out := make(map[string]any, len(m))
	for _, k := range sortedKeys(m) {
		i := slices.IndexFunc(fs, func(f field) bool { return f.name == k })
		if i < 0 {
			c.unknown(joinKey(key, k), k, fs)
			continue
		}
		c.keep(out, k, func() any { return c.check(joinKey(key, k), m[k], fs[i].sf.Type) })
	}
	return out
}

func (c *checker) unknown(key, name string, fs []field) {
	best, bestDist := "", math.MaxInt
	lower := strings.ToLower(name)
	for _, f := range fs {
		d := editDistance(lower, f.name)
		if len(lower) >= 3 && (strings.HasPrefix(f.name, lower) || strings.HasPrefix(lower, f.name)) {
			d = 1 // "path" for "path_prefix"
		}
		if d < bestDist {
			best, bestDist = f.name, d
		}
	}
	switch {
	case best != "" && bestDist <= max(1, len(name)/3):
		if c.env {
			c.add(key, "unknown key (did you mean %s?)", envName(joinKey(parentKey(key), best)))
		} else {
			c.add(key, "unknown key (did you mean %q?)", best)
		}
	default:
		c.add(key, "unknown key (allowed here: %s)", strings.Join(fieldNames(fs), ", "))
	}
}

func (c *checker) mapping(key string, v any, t reflect.Type) any {
	m, ok := asMap(v)
	if !ok {
		c.add(key, "expected a mapping, got %s", describe(v))
		return nil
	}
	out := make(map[string]any, len(m))
	for _, k := range sortedKeys(m) {
		c.keep(out, k, func() any { return c.check(joinKey(key, k), m[k], t.Elem()) })
	}
	return out
}

// keep stores the value that check returns under k, unless the check
// failed: a rejected value is left out rather than set to null, so that
// it neither resets what a lower layer said nor looks like a choice to
// validation, which still runs on everything else (Load reports both).
func (c *checker) keep(out map[string]any, k string, check func() any) {
	n := len(c.errs)
	v := check()
	if v == nil && len(c.errs) > n {
		return
	}
	out[k] = v
}

func (c *checker) list(key string, v any, t reflect.Type) any {
	elem := t.Elem()
	if isScalar(elem) {
		c.sets = append(c.sets, set{key: key})
		var items []any
		switch x := v.(type) {
		case []any:
			items = x
		case string:
			// A list of values may be one comma-separated string: that is
			// the only way to give a list in the environment.
			for item := range strings.SplitSeq(x, ",") {
				if item = strings.TrimSpace(item); item != "" {
					items = append(items, item)
				}
			}
		default:
			c.add(key, "expected a list of %s, got %s", describeType(elem), describe(v))
			return nil
		}
		out := make([]any, len(items))
		for i, item := range items {
			if item == nil {
				c.add(indexKey(key, i), "expected %s, got null", describeType(elem))
				continue
			}
			if elem == durationType {
				out[i] = c.duration(indexKey(key, i), item)
			} else {
				out[i] = c.scalar(indexKey(key, i), item, elem)
			}
		}
		return out
	}
	items, ok := v.([]any)
	if !ok {
		if c.env {
			c.add(key, "a list of %s cannot be set from the environment: use a config file", describeType(elem))
		} else {
			c.add(key, "expected a list of %s, got %s", describeType(elem), describe(v))
		}
		return nil
	}
	c.sets = append(c.sets, set{key: key, list: true})
	out := make([]any, len(items))
	for i, item := range items {
		out[i] = c.check(indexKey(key, i), item, elem)
	}
	return out
}

func (c *checker) duration(key string, v any) any {
	switch x := v.(type) {
	case string:
		d, err := time.ParseDuration(strings.TrimSpace(x))
		if err != nil {
			c.add(key, "%q is not a duration (e.g. 30s, 1m)", x)
			return nil
		}
		return d
	case time.Duration:
		return x
	}
	if n, ok := number(v); ok {
		if n == 0 {
			return time.Duration(0)
		}
		c.add(key, "%v is not a duration: give a unit (e.g. 30s, 1m)", v)
		return nil
	}
	c.add(key, "expected a duration (e.g. 30s, 1m), got %s", describe(v))
	return nil
}

// number returns v as a float64 when it is any Go number.
func number(v any) (float64, bool) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(rv.Int()), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return float64(rv.Uint()), true
	case reflect.Float32, reflect.Float64:
		return rv.Float(), true
	}
	return 0, false
}

func (c *checker) scalar(key string, v any, t reflect.Type) any {
	if _, ok := asMap(v); ok {
		c.add(key, "expected %s, got a mapping", describeType(t))
		return nil
	}
	if _, ok := v.([]any); ok {
		c.add(key, "expected %s, got a list", describeType(t))
		return nil
	}
	if reflect.ValueOf(v).Kind() == reflect.Struct {
		// YAML timestamps (2001-12-14) and TOML dates decode to time
		// types; their original text is lost, so do not guess it.
		c.add(key, "%v is a date or time, not %s: quote it", v, describeType(t))
		return nil
	}
	switch t.Kind() {
	case reflect.String:
		if s, ok := v.(string); ok {
			return s
		}
		// Numbers and booleans where a string is wanted (name: 8080) are
		// taken as written.
		return fmt.Sprint(v)
	case reflect.Bool:
		switch x := v.(type) {
		case bool:
			return x
		case string:
			if b, err := strconv.ParseBool(strings.TrimSpace(x)); err == nil {
				return b
			}
		}
		c.add(key, "%s is not a boolean (true or false)", describe(v))
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return c.integer(key, v, t)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := c.integer(key, v, reflect.TypeFor[int64]()).(int64)
		if !ok {
			return nil
		}
		if n < 0 || reflect.Zero(t).OverflowUint(uint64(n)) {
			c.add(key, "%d is out of range", n)
			return nil
		}
		return uint64(n)
	case reflect.Float32, reflect.Float64:
		if f, ok := number(v); ok {
			return f
		}
		if s, ok := v.(string); ok {
			if f, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil {
				return f
			}
		}
		c.add(key, "%s is not a number", describe(v))
		return nil
	}
	c.add(key, "cannot be set: unsupported type %s", t)
	return nil
}

func (c *checker) integer(key string, v any, t reflect.Type) any {
	var n int64
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n = rv.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := rv.Uint()
		if u > math.MaxInt64 {
			c.add(key, "%d is out of range", u)
			return nil
		}
		n = int64(u)
	case reflect.Float32, reflect.Float64:
		f := rv.Float()
		// JSON has only floats; 64 is fine, 1.5 is not.
		switch {
		case f != math.Trunc(f):
			c.add(key, "%v is not an integer", v)
			return nil
		case f < math.MinInt64 || f >= math.MaxInt64:
			c.add(key, "%v is out of range", v)
			return nil
		}
		n = int64(f)
	case reflect.String:
		var err error
		n, err = strconv.ParseInt(strings.TrimSpace(rv.String()), 10, 64)
		if err != nil {
			c.add(key, "%q is not an integer", rv.String())
			return nil
		}
	default:
		c.add(key, "%s is not an integer", describe(v))
		return nil
	}
	if reflect.Zero(t).OverflowInt(n) {
		c.add(key, "%d is out of range", n)
		return nil
	}
	return n
}

// describe names a raw value for a message.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return strconv.Quote(x)
	case []any:
		return "a list"
	}
	if _, ok := asMap(v); ok {
		return "a mapping"
	}
	return fmt.Sprint(v)
}

// describeType names a schema type for a message.
func describeType(t reflect.Type) string {
	if t == durationType {
		return "a duration (e.g. 30s, 1m)"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean (true or false)"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Struct:
		return strings.ToLower(t.Name()) + " sections"
	case reflect.Map:
		return "a mapping"
	case reflect.Slice:
		return "a list"
	}
	return t.String()
}

// editDistance is the Levenshtein distance between a and b, for "did you
// mean" hints.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
