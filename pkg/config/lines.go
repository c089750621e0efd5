package config

import (
	"bytes"
	"encoding/json"

	"go.yaml.in/yaml/v3"
)

// The line maps below tell which line of a file set a key path, so that
// a problem found after parsing (an unknown key, a bad value) still names
// its line. Both take the key paths Load uses: "upstreams.web.targets[0]".

// yamlLines maps the key paths of a YAML document to the line of their
// key (or list item). Aliases and merge keys ("<<: *base") are followed;
// a budget bounds the work on alias-heavy input.
func yamlLines(b []byte) map[string]int {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil
	}
	lines := make(map[string]int)
	budget := 100_000
	var walk func(key string, n *yaml.Node, depth int, weak bool)
	note := func(key string, line int, weak bool) {
		if _, ok := lines[key]; !ok || !weak {
			lines[key] = line
		}
	}
	walk = func(key string, n *yaml.Node, depth int, weak bool) {
		if n == nil || depth > 100 || budget <= 0 {
			return
		}
		budget--
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(key, c, depth+1, weak)
			}
		case yaml.AliasNode:
			walk(key, n.Alias, depth+1, weak)
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if k.Tag == "!!merge" {
					// Merged keys lose to the mapping's own keys.
					if v.Kind == yaml.SequenceNode {
						for _, c := range v.Content {
							walk(key, c, depth+1, true)
						}
					} else {
						walk(key, v, depth+1, true)
					}
					continue
				}
				child := joinKey(key, k.Value)
				note(child, k.Line, weak)
				walk(child, v, depth+1, weak)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				child := indexKey(key, i)
				note(child, c.Line, weak)
				walk(child, c, depth+1, weak)
			}
		}
	}
	walk("", &doc, 0, false)
	return lines
}

// jsonLines maps the key paths of a JSON document to the line of their
// key (or of the start of a list item). A duplicate key maps to its last
// occurrence, the one encoding/json keeps. The map covers the document
// up to the first syntax error; it works without recursion, so nesting
// depth costs no stack.
func jsonLines(b []byte) map[string]int {
	type frame struct {
		key     string
		array   bool
		index   int
		wantKey bool   // an object's next string token is a key
		member  string // the key path of the member being read
	}
	var (
		stack []*frame
		lines = make(map[string]int)
		lc    = lineCounter{b: b, line: 1}
	)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return lines
		}
		line := lc.at(dec.InputOffset())
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if s, ok := tok.(string); ok && top != nil && top.wantKey {
			top.member = joinKey(top.key, s)
			top.wantKey = false
			lines[top.member] = line
			continue
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			if len(stack) > 0 && !stack[len(stack)-1].array {
				stack[len(stack)-1].wantKey = true
			}
			continue
		}
		// The start of a value: a scalar, '{' or '['.
		key := ""
		switch {
		case top == nil:
		case top.array:
			key = indexKey(top.key, top.index)
			top.index++
			lines[key] = line
		default:
			key = top.member
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{key: key, wantKey: true})
		case json.Delim('['):
			stack = append(stack, &frame{key: key, array: true})
		default:
			if top != nil && !top.array {
				top.wantKey = true
			}
		}
	}
}

// lineCounter turns increasing byte offsets into 1-based line numbers in
// time linear in the input.
type lineCounter struct {
	b    []byte
	off  int64
	line int
}

func (c *lineCounter) at(off int64) int {
	off = min(max(off, c.off), int64(len(c.b)))
	c.line += bytes.Count(c.b[c.off:off], []byte("\n"))
	c.off = off
	return c.line
}
