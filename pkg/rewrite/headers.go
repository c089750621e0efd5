package rewrite

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// ErrHeaderName is wrapped when a configured header name is not a token.
var ErrHeaderName = errors.New("invalid header name")

// HeaderSpec is the configuration of one direction's header edits: set
// replaces every value of a field, add appends one, remove deletes the
// field. Values are templates over HeaderVars.
type HeaderSpec struct {
	Set    map[string]string
	Add    map[string]string
	Remove []string
}

// Headers is a parsed HeaderSpec. The zero Headers changes nothing.
type Headers struct {
	remove []string
	set    []headerOp
	add    []headerOp
}

type headerOp struct {
	name string // canonical
	val  Template
}

// HeaderError names the key of a HeaderSpec that failed to parse, such as
// "set.X-Foo" or "remove[1]".
type HeaderError struct {
	Key string
	Err error
}

func (e *HeaderError) Error() string { return e.Key + ": " + e.Err.Error() }
func (e *HeaderError) Unwrap() error { return e.Err }

// ParseHeaders parses spec; the error is a *HeaderError.
func ParseHeaders(spec HeaderSpec) (Headers, error) {
	var h Headers
	for i, n := range spec.Remove {
		if !httpguts.ValidHeaderFieldName(n) {
			return Headers{}, &HeaderError{Key: fmt.Sprintf("remove[%d]", i), Err: fmt.Errorf("%w: %q", ErrHeaderName, n)}
		}
		h.remove = append(h.remove, http.CanonicalHeaderKey(n))
	}
	var err error
	if h.set, err = parseOps("set", spec.Set); err != nil {
		return Headers{}, err
	}
	if h.add, err = parseOps("add", spec.Add); err != nil {
		return Headers{}, err
	}
	return h, nil
}

func parseOps(kind string, m map[string]string) ([]headerOp, error) {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names) // a stable order for add, and for errors
	ops := make([]headerOp, 0, len(names))
	for _, n := range names {
		key := kind + "." + n
		if !httpguts.ValidHeaderFieldName(n) {
			return nil, &HeaderError{Key: key, Err: fmt.Errorf("%w: %q", ErrHeaderName, n)}
		}
		t, err := ParseTemplate(m[n], HeaderVars)
		if err != nil {
			return nil, &HeaderError{Key: key, Err: err}
		}
		ops = append(ops, headerOp{name: http.CanonicalHeaderKey(n), val: t})
	}
	return ops, nil
}

// Empty reports whether h changes nothing.
func (h Headers) Empty() bool { return len(h.remove)+len(h.set)+len(h.add) == 0 }

// Uses reports whether any value of h names variable name.
func (h Headers) Uses(name string) bool {
	for _, ops := range [][]headerOp{h.set, h.add} {
		for _, op := range ops {
			if op.val.Uses(name) {
				return true
			}
		}
	}
	return false
}

// Apply edits hdr: remove first, then set, then add, so that a field
// both removed and added ends with only the added value.
func (h Headers) Apply(hdr http.Header, vars Vars) {
	for _, n := range h.remove {
		delete(hdr, n)
	}
	for _, op := range h.set {
		hdr[op.name] = []string{op.val.Expand(vars)}
	}
	for _, op := range h.add {
		hdr[op.name] = append(hdr[op.name], op.val.Expand(vars))
	}
}

// hostOnly is the host of a Host header value, without a port.
func hostOnly(hostport string) string {
	if strings.HasPrefix(hostport, "[") {
		if i := strings.IndexByte(hostport, ']'); i > 0 {
			return hostport[:i+1]
		}
		return hostport
	}
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 && strings.Count(hostport, ":") == 1 {
		return hostport[:i]
	}
	return hostport
}

// HostOnly returns the host of a Host header value without its port; an
// IPv6 literal keeps its brackets, so that the result still fits in a URL.
func HostOnly(hostport string) string { return hostOnly(hostport) }
