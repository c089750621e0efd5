package config

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// MarshalYAML renders c as YAML: keys in the order of the schema (map keys
// sorted), durations as strings ("30s", "1m30s"), lists of values in flow
// style. Loading the output again gives the same Config. It is what
// `handoff config` prints.
func MarshalYAML(c *Config) ([]byte, error) {
	return encodeYAML(c, nil)
}

// SourcesYAML renders the config like MarshalYAML, with a comment after
// each value naming the layer that set it ("# from conf.d/10-api.yaml",
// "# from env HANDOFF_LOG__LEVEL", "# from default"). It is what
// `handoff config --sources` prints.
func (l *Loaded) SourcesYAML() ([]byte, error) {
	return encodeYAML(l.Config, func(key string, n *yaml.Node) {
		src, ok := l.Sources[key]
		if !ok {
			src = "default"
		}
		n.LineComment = "# from " + src
	})
}

func encodeYAML(c *Config, leaf func(key string, n *yaml.Node)) ([]byte, error) {
	if c == nil {
		return nil, fmt.Errorf("marshal config: nil config")
	}
	e := nodeEncoder{leaf: leaf}
	doc := &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{e.encode("", reflect.ValueOf(c).Elem())}}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	return buf.Bytes(), nil
}

// walkLeaves calls fn with the key of every value MarshalYAML prints.
func walkLeaves(c *Config, fn func(key string)) {
	e := nodeEncoder{leaf: func(key string, _ *yaml.Node) { fn(key) }}
	e.encode("", reflect.ValueOf(c).Elem())
}

// leafValues maps the key of every value MarshalYAML would print for v,
// under prefix, to that value as text.
func leafValues(prefix string, v any, out map[string]string) {
	e := nodeEncoder{leaf: func(key string, n *yaml.Node) {
		var b strings.Builder
		b.WriteString(n.Tag)
		b.WriteString(":")
		b.WriteString(n.Value)
		for i, c := range n.Content {
			if i > 0 {
				b.WriteString("\x00")
			}
			b.WriteString(c.Value)
		}
		out[key] = b.String()
	}}
	e.encode(prefix, reflect.ValueOf(v))
}

// nodeEncoder builds a yaml.Node tree from a value of the schema.
type nodeEncoder struct {
	// leaf is called with every value node (a scalar, a list of values,
	// an empty list or map) and its key. Nil means none.
	leaf func(key string, n *yaml.Node)
}

func (e *nodeEncoder) emit(key string, n *yaml.Node) *yaml.Node {
	if e.leaf != nil {
		e.leaf(key, n)
	}
	return n
}

func scalarNode(tag, value string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
}

func (e *nodeEncoder) encode(key string, v reflect.Value) *yaml.Node {
	t := v.Type()
	if t == durationType {
		return e.emit(key, scalarNode("!!str", FormatDuration(time.Duration(v.Int()))))
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return e.emit(key, scalarNode("!!null", "null"))
		}
		return e.encode(key, v.Elem())
	case reflect.Struct:
		n := &yaml.Node{Kind: yaml.MappingNode}
		for _, f := range fieldsOf(t) {
			fv := v.FieldByIndex(f.sf.Index)
			if omitEmpty(f.sf) && isEmptyValue(fv) {
				continue
			}
			n.Content = append(n.Content, scalarNode("!!str", f.name), e.encode(joinKey(key, f.name), fv))
		}
		if len(n.Content) == 0 {
			n.Style = yaml.FlowStyle
		}
		return n
	case reflect.Map:
		n := &yaml.Node{Kind: yaml.MappingNode}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			n.Content = append(n.Content, scalarNode("!!str", k.String()), e.encode(joinKey(key, k.String()), v.MapIndex(k)))
		}
		if len(n.Content) == 0 {
			n.Style = yaml.FlowStyle
			return e.emit(key, n)
		}
		return n
	case reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode}
		if isScalar(t.Elem()) {
			n.Style = yaml.FlowStyle
			plain := nodeEncoder{}
			for i := range v.Len() {
				n.Content = append(n.Content, plain.encode("", v.Index(i)))
			}
			return e.emit(key, n)
		}
		for i := range v.Len() {
			n.Content = append(n.Content, e.encode(indexKey(key, i), v.Index(i)))
		}
		if len(n.Content) == 0 {
			n.Style = yaml.FlowStyle
			return e.emit(key, n)
		}
		return n
	case reflect.String:
		return e.emit(key, scalarNode("!!str", v.String()))
	case reflect.Bool:
		return e.emit(key, scalarNode("!!bool", strconv.FormatBool(v.Bool())))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return e.emit(key, scalarNode("!!int", strconv.FormatInt(v.Int(), 10)))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return e.emit(key, scalarNode("!!int", strconv.FormatUint(v.Uint(), 10)))
	case reflect.Float32, reflect.Float64:
		return e.emit(key, scalarNode("!!float", strconv.FormatFloat(v.Float(), 'g', -1, 64)))
	}
	return e.emit(key, scalarNode("!!str", fmt.Sprint(v.Interface())))
}

func omitEmpty(sf reflect.StructField) bool {
	_, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
	return slices.Contains(strings.Split(opts, ","), "omitempty")
}

func isEmptyValue(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Slice, reflect.Map:
		return v.Len() == 0
	}
	return v.IsZero()
}

// FormatDuration writes d the way people write durations in config files:
// "1m" rather than time.Duration's "1m0s", "1h30m" rather than "1h30m0s".
// time.ParseDuration reads the result back to d.
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
