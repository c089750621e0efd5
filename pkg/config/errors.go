package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Error is one problem with the configuration, located as precisely as the
// layer that caused it allows.
type Error struct {
	// Source names the layer the problem comes from: a file path as it was
	// given ("/etc/handoff/handoff.yaml", "conf.d/10-api.yaml" relative to
	// the main file's directory as given), "env HANDOFF_X", "flag --backend"
	// or "systemd LISTEN_FDNAMES". Empty when no single layer is to blame
	// (for example "no listeners").
	Source string
	// Line is the 1-based line in Source, when known: YAML keys, TOML and
	// JSON syntax errors. Zero means unknown.
	Line int
	// Key is the full key path: "upstreams.api.targets[2].weight". Empty
	// for problems with a whole file (syntax errors, unreadable file).
	Key string
	// Msg says what is wrong, lowercase, without the source or key.
	Msg string
	// Err is the underlying error, if any (for errors.Is, for example
	// fs.ErrNotExist). Nil when the problem is the value itself.
	Err error
}

// Error formats the problem as "source:line: key: msg", leaving out the
// parts that are unknown.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Source != "" {
		b.WriteString(e.Source)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the underlying error, if any.
func (e *Error) Unwrap() error { return e.Err }

// Errors is every problem found in one Load or Validate, sorted stably by
// source, then line, then key. Load and Validate return it (as the Errors value, not
// a pointer) when anything is wrong, so that callers can errors.As it and
// print each problem on its own line.
type Errors []*Error

// Error joins the problems, one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the problems, so that errors.Is and errors.As see each
// one.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// sortErrors orders problems by source, then line, then key, keeping the
// order in which they were found among equals. Problems without a line
// (a whole file, or a key whose line is unknown) come first in their
// source.
func sortErrors(es Errors) {
	slices.SortStableFunc(es, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Source, b.Source), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Key, b.Key))
	})
}

// errorList collects problems; its zero value is ready to use.
type errorList struct {
	errs Errors
}

func (l *errorList) add(key, format string, args ...any) {
	l.errs = append(l.errs, &Error{Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (l *errorList) addErr(key, msg string, err error) {
	l.errs = append(l.errs, &Error{Key: key, Msg: msg + ": " + err.Error(), Err: err})
}

// result returns the sorted problems as an error, or nil when there are
// none.
func (l *errorList) result() error {
	if len(l.errs) == 0 {
		return nil
	}
	sortErrors(l.errs)
	return l.errs
}
