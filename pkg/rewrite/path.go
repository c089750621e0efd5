package rewrite

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// ErrPath is wrapped by every path rewrite configuration error.
var ErrPath = errors.New("invalid path rewrite")

// PathSpec is the configuration of a route's path rewrite. The steps run
// in this order: Match/To, then StripPrefix, then AddPrefix.
type PathSpec struct {
	// StripPrefix is removed from the start of the path at a segment
	// boundary ("/api" turns "/api/x" into "/x" and "/api" into "/", and
	// leaves "/apix" alone). Empty means none.
	StripPrefix string
	// AddPrefix is put in front of the path. Empty means none.
	AddPrefix string
	// Match is an RE2 regular expression (Go regexp syntax) matched
	// against the escaped path; when it matches, the whole path becomes
	// To, with $1, ${name} expanded from its groups (nginx's rewrite).
	// Empty means none.
	Match, To string
}

// Path is a parsed PathSpec. The zero Path leaves paths alone. It works
// on the escaped form of the path, so that "%2F" inside a segment stays
// an escaped slash and never becomes a separator.
type Path struct {
	strip, add string
	re         *regexp.Regexp
	to         string
}

// PathError names the key of a PathSpec that failed to parse:
// "strip_prefix", "add_prefix", "rewrite.match" or "rewrite.to".
type PathError struct {
	Key string
	Err error
}

func (e *PathError) Error() string { return e.Key + ": " + e.Err.Error() }
func (e *PathError) Unwrap() error { return e.Err }

// ParsePath compiles spec; the error is a *PathError.
func ParsePath(spec PathSpec) (Path, error) {
	var p Path
	var err error
	if p.strip, err = prefix(spec.StripPrefix); err != nil {
		return Path{}, &PathError{Key: "strip_prefix", Err: err}
	}
	if p.add, err = prefix(spec.AddPrefix); err != nil {
		return Path{}, &PathError{Key: "add_prefix", Err: err}
	}
	switch {
	case spec.Match == "" && spec.To == "":
	case spec.Match == "":
		return Path{}, &PathError{Key: "rewrite.match", Err: fmt.Errorf("%w: required with rewrite.to", ErrPath)}
	default:
		re, err := regexp.Compile(spec.Match)
		if err != nil {
			return Path{}, &PathError{Key: "rewrite.match", Err: fmt.Errorf("%w: %w", ErrPath, err)}
		}
		if err := checkTo(spec.To, re); err != nil {
			return Path{}, &PathError{Key: "rewrite.to", Err: err}
		}
		p.re, p.to = re, spec.To
	}
	return p, nil
}

// prefix checks a configured prefix and returns it without a trailing
// slash ("/" becomes "", which strips or adds nothing).
func prefix(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if !strings.HasPrefix(s, "/") {
		return "", fmt.Errorf("%w: %q must start with /", ErrPath, s)
	}
	if err := checkEscaped(s); err != nil {
		return "", err
	}
	return strings.TrimRight(s, "/"), nil
}

// checkEscaped checks that s is a valid escaped path: every "%" starts a
// hex escape, and there is no "?", "#", space or control byte.
func checkEscaped(s string) error {
	if strings.ContainsAny(s, "?# ") {
		return fmt.Errorf("%w: %q: a path may not hold ?, # or spaces (escape them)", ErrPath, s)
	}
	for i := range len(s) {
		if s[i] < 0x21 || s[i] == 0x7f {
			return fmt.Errorf("%w: %q: control byte %#02x", ErrPath, s, s[i])
		}
	}
	if _, err := url.PathUnescape(s); err != nil {
		return fmt.Errorf("%w: %w", ErrPath, err)
	}
	return nil
}

// checkTo checks the replacement of a rewrite: a path starting with "/"
// whose $-references name groups that re has.
func checkTo(to string, re *regexp.Regexp) error {
	if !strings.HasPrefix(to, "/") {
		return fmt.Errorf("%w: %q must start with /", ErrPath, to)
	}
	if err := checkEscaped(strings.ReplaceAll(to, "%", "%25")); err != nil {
		return err // the groups come from an escaped path; the rest must fit one too
	}
	for i := 0; i < len(to); i++ {
		if to[i] != '$' {
			continue
		}
		if i+1 < len(to) && to[i+1] == '$' {
			i++
			continue
		}
		name, n := refName(to[i+1:])
		if name == "" {
			return fmt.Errorf("%w: %q: bad $ reference at offset %d (write $$ for a dollar)", ErrPath, to, i)
		}
		if !hasGroup(re, name) {
			return fmt.Errorf("%w: %q: $%s names no group of %q", ErrPath, to, name, re.String())
		}
		i += n
	}
	return nil
}

// refName reads the name after a "$" as regexp.Expand does: ${name} or
// the longest run of letters, digits and underscores. n is its length in s.
func refName(s string) (name string, n int) {
	if strings.HasPrefix(s, "{") {
		end := strings.IndexByte(s, '}')
		if end < 2 {
			return "", 0
		}
		return s[1:end], end + 1
	}
	for n < len(s) && (s[n] == '_' || s[n] >= '0' && s[n] <= '9' || s[n] >= 'a' && s[n] <= 'z' || s[n] >= 'A' && s[n] <= 'Z') {
		n++
	}
	return s[:n], n
}

func hasGroup(re *regexp.Regexp, name string) bool {
	if i := re.SubexpIndex(name); i >= 0 {
		return true
	}
	n := 0
	for _, c := range name {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
		if n > re.NumSubexp() {
			return false
		}
	}
	return true
}

// Empty reports whether p leaves every path alone.
func (p Path) Empty() bool { return p.strip == "" && p.add == "" && p.re == nil }

// Rewrite returns the new escaped path for escaped path esc.
func (p Path) Rewrite(esc string) string {
	if p.re != nil {
		if m := p.re.FindStringSubmatchIndex(esc); m != nil {
			esc = string(p.re.ExpandString(nil, p.to, esc, m))
		}
	}
	if s := p.strip; s != "" {
		switch {
		case esc == s:
			esc = "/"
		case strings.HasPrefix(esc, s+"/"):
			esc = esc[len(s):]
		}
	}
	if p.add != "" {
		esc = p.add + esc
	}
	return esc
}

// RewriteURL rewrites u's path in place, keeping u.Path and u.RawPath
// consistent (net/url: RawPath is set only when the escaped form is not
// the default encoding of Path) and the query untouched. A rewrite that
// produces an invalid escape leaves u unchanged and reports false.
func (p Path) RewriteURL(u *url.URL) bool {
	if p.Empty() {
		return true
	}
	esc := p.Rewrite(u.EscapedPath())
	dec, err := url.PathUnescape(esc)
	if err != nil {
		return false
	}
	u.Path, u.RawPath = dec, ""
	if u.EscapedPath() != esc {
		u.RawPath = esc
	}
	return true
}
