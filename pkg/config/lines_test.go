package config

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"
)

func TestJSONLines(t *testing.T) {
	doc := `{
  "listeners": [
    {"name": "http",
     "address": ":0"},
    {
      "name": "b"
    }
  ],
  "upstreams": {"web": {"targets": [
    {"address": "127.0.0.1:1"}], "strategy": "hash"}},
  "trusted_proxies": ["10.0.0.0/8",
    "::1"],
  "dup": 1,
  "dup": {"x": 2},
  "a.b": true
}`
	want := map[string]int{
		"listeners": 2, "listeners[0]": 3, "listeners[0].name": 3, "listeners[0].address": 4,
		"listeners[1]": 5, "listeners[1].name": 6,
		"upstreams": 9, "upstreams.web": 9, "upstreams.web.targets": 9, "upstreams.web.targets[0]": 10,
		"upstreams.web.targets[0].address": 10, "upstreams.web.strategy": 10,
		"trusted_proxies": 11, "trusted_proxies[0]": 11, "trusted_proxies[1]": 12,
		"dup": 14, "dup.x": 14, "a.b": 15,
	}
	got := jsonLines([]byte(doc))
	if !maps.Equal(got, want) {
		t.Errorf("jsonLines:\n got %v\nwant %v", got, want)
	}
	// Up to the first syntax error.
	if got := jsonLines([]byte("{\n\"a\": 1,\n\"b\": ]")); got["a"] != 2 {
		t.Errorf("truncated: %v", got)
	}
}

// FuzzJSONLines checks that the JSON line map never panics, stays within
// the document, and covers every member of a valid document's top level.
func FuzzJSONLines(f *testing.F) {
	f.Add(`{"listeners": [{"name": "http"}], "routes": []}`)
	f.Add("{\n\"a\": {\"b\": [1, [2, {\"c\": 3}]]}\n}")
	f.Add(`[1, 2, {"x": "y"}]`)
	f.Add(`{"a": `)
	f.Fuzz(func(t *testing.T, doc string) {
		lines := jsonLines([]byte(doc))
		n := 1 + strings.Count(doc, "\n")
		for k, l := range lines {
			if l < 1 || l > n {
				t.Fatalf("key %q at line %d of %d", k, l, n)
			}
		}
		var top map[string]any
		if json.Unmarshal([]byte(doc), &top) != nil {
			return
		}
		for k := range top {
			if _, ok := lines[k]; !ok {
				t.Fatalf("top-level key %q has no line in %v", k, lines)
			}
		}
	})
}
