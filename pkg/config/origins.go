package config

import (
	"strconv"
	"strings"
)

// origin is the layer that set a merged key.
type origin struct {
	layer *layer
	rank  int
	// list reports whether the key holds a list of sections: it is found
	// only by its exact key, not as the ancestor of its items' keys (an
	// item's defaulted field was not set by the layer that set the list).
	list bool
	// merged and local translate keys of items appended by a drop-in:
	// the merged "routes[5]" is the drop-in's own "routes[0]".
	merged, local string
}

func (o origin) localKey(key string) string {
	if o.merged != "" && underKey(key, o.merged) {
		return o.local + key[len(o.merged):]
	}
	return key
}

func (o origin) source(key string) string { return o.layer.sourceOf(o.localKey(key)) }

func (o origin) line(key string) int { return o.layer.lineOf(o.localKey(key)) }

// origins maps merged keys to the layer that set them last.
type origins map[string]origin

// record notes that layer l (of rank rank) sets s. offsets holds, for a
// drop-in, the length of each appended list before it.
func (m origins) record(l *layer, rank int, s set, offsets map[string]int) {
	o := origin{layer: l, rank: rank, list: s.list}
	key := s.key
	for _, list := range appendedLists {
		off, ok := offsets[list]
		if !ok || !underKey(key, list) {
			continue
		}
		if key == list {
			return // appending: the list itself keeps its items
		}
		if key[len(list)] != '[' {
			break
		}
		rest := key[len(list)+1:] // "5].name"
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			break
		}
		i, err := strconv.Atoi(rest[:end])
		if err != nil {
			break
		}
		o.local = indexKey(list, i)
		o.merged = indexKey(list, i+off)
		key = o.merged + rest[end+1:]
	}
	for k := range m {
		if underKey(k, key) {
			delete(m, k)
		}
	}
	m[key] = o
}

// find returns the origin of key: its own, else its nearest ancestor's
// (not crossing a list of sections). When descend is set and neither
// exists (a problem with a section, or with a key left at its default),
// it blames the highest layer that set anything below key, else below
// its parent, and so on: "listeners[0].address" missing is blamed on the
// file that defined listeners[0].
func (m origins) find(key string, descend bool) (origin, bool) {
	if o, ok := m[key]; ok {
		return o, true
	}
	for p := parentKey(key); p != ""; p = parentKey(p) {
		if o, ok := m[p]; ok && !o.list {
			return o, true
		}
	}
	if !descend {
		return origin{}, false
	}
	for p := key; p != ""; p = parentKey(p) {
		var (
			best  origin
			found bool
		)
		for k, o := range m {
			if underKey(k, p) && (!found || o.rank > best.rank) {
				best, found = o, true
			}
		}
		if found {
			return best, true
		}
	}
	return origin{}, false
}

// locate fills in source and line of validation problems.
func (m origins) locate(es []*Error) {
	for _, e := range es {
		if e.Source != "" || e.Key == "" {
			continue
		}
		if o, ok := m.find(e.Key, true); ok {
			e.Source = o.source(e.Key)
			e.Line = o.line(e.Key)
		}
	}
}
