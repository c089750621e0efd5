package cache

import (
	"strings"
)

// MaxDelta is the value a delta-seconds too large to represent becomes:
// RFC 9111 §1.2.2 says 2147483648 (2^31).
const MaxDelta = 2147483648

// Delta is an optional delta-seconds value of a directive.
type Delta struct {
	// Set reports whether the directive was present.
	Set bool
	// Seconds is the value; an invalid value (not a non-negative integer)
	// is 0, so the response counts as stale (RFC 9111 §4.2.1 allows
	// treating doubtful freshness as stale).
	Seconds int64
}

// Directives is a parsed Cache-Control header (RFC 9111 §5.2), for a
// request or a response. The zero value means no directives.
type Directives struct {
	NoStore, NoCache, Private, Public      bool
	MustRevalidate, ProxyRevalidate        bool
	MustUnderstand, Immutable, NoTransform bool
	OnlyIfCached                           bool
	MaxAge, SMaxAge, MaxStale, MinFresh    Delta
	StaleWhileRevalidate, StaleIfError     Delta
	// MaxStaleAny reports a max-stale without a value: any staleness is
	// acceptable (RFC 9111 §5.2.1.2).
	MaxStaleAny bool
	// NoCacheFields and PrivateFields are the field names of qualified
	// no-cache="..." and private="..." (RFC 9111 §5.2.2.4, §5.2.2.7),
	// lower case.
	NoCacheFields, PrivateFields []string
}

// ParseCacheControl parses the field lines of Cache-Control. Directive
// names are case-insensitive (RFC 9111 §5.2); the first occurrence of a
// directive wins (RFC 9111 §4.2.1: "either the first occurrence should be
// used or ..."); quoted strings are skipped whole, so a directive inside
// one is not a directive; unknown directives are ignored (§5.2.3).
func ParseCacheControl(lines []string) Directives {
	var d Directives
	seen := map[string]bool{}
	for _, line := range lines {
		for len(line) > 0 {
			var name, val string
			var quoted, hasVal bool
			name, val, quoted, hasVal, line = nextDirective(line)
			if name == "" || seen[name] {
				continue
			}
			seen[name] = true
			d.apply(name, val, quoted, hasVal)
		}
	}
	return d
}

func (d *Directives) apply(name, val string, quoted, hasVal bool) {
	delta := func() Delta { return parseDelta(val, quoted, hasVal) }
	switch name {
	case "no-store":
		d.NoStore = true
	case "no-cache":
		d.NoCache = true
		if hasVal {
			d.NoCacheFields = fieldList(val)
		}
	case "private":
		d.Private = true
		if hasVal {
			d.PrivateFields = fieldList(val)
		}
	case "public":
		d.Public = true
	case "must-revalidate":
		d.MustRevalidate = true
	case "proxy-revalidate":
		d.ProxyRevalidate = true
	case "must-understand":
		d.MustUnderstand = true
	case "immutable":
		d.Immutable = true
	case "no-transform":
		d.NoTransform = true
	case "only-if-cached":
		d.OnlyIfCached = true
	case "max-age":
		d.MaxAge = delta()
	case "s-maxage":
		d.SMaxAge = delta()
	case "max-stale":
		if !hasVal {
			d.MaxStaleAny = true
		}
		d.MaxStale = delta()
	case "min-fresh":
		d.MinFresh = delta()
	case "stale-while-revalidate":
		d.StaleWhileRevalidate = delta()
	case "stale-if-error":
		d.StaleIfError = delta()
	}
}

// nextDirective splits the first directive off s: its lower-case name, its
// value (unquoted), whether it was a quoted-string, whether it had a value,
// and the rest of s after the next top-level comma.
func nextDirective(s string) (name, val string, quoted, hasVal bool, rest string) {
	i := 0
	for i < len(s) && s[i] != ',' && s[i] != '=' {
		i++
	}
	raw := strings.TrimLeft(s[:i], " \t")
	name = strings.ToLower(strings.TrimSpace(raw))
	if strings.ContainsAny(name, " \t\"") || (i < len(s) && s[i] == '=' && strings.ContainsAny(raw, " \t")) {
		name = "!" + name // "max-age =3600" is not max-age
	}
	if i == len(s) || s[i] == ',' {
		if i < len(s) {
			i++
		}
		return name, "", false, false, s[i:]
	}
	i++ // '='
	hasVal = true
	if i < len(s) && s[i] == '"' {
		// RFC 9110 §5.6.4 quoted-string with quoted-pair.
		var b strings.Builder
		j := i + 1
		for ; j < len(s) && s[j] != '"'; j++ {
			if s[j] == '\\' && j+1 < len(s) {
				j++
			}
			b.WriteByte(s[j])
		}
		val, quoted = b.String(), true
		i = j + 1
		for i < len(s) && s[i] != ',' {
			i++
		}
	} else {
		j := i
		for j < len(s) && s[j] != ',' {
			j++
		}
		val = strings.TrimRight(s[i:j], " \t")
		i = j
	}
	if i < len(s) {
		i++
	}
	return name, val, quoted, hasVal, s[i:]
}

// parseDelta reads delta-seconds (RFC 9111 §1.2.2): digits only; the
// quoted form is accepted as RFC 9111 §5.2 asks of recipients; anything
// else (a space, a sign, a letter) is invalid and means 0.
func parseDelta(val string, quoted, hasVal bool) Delta {
	_ = quoted
	if !hasVal || val == "" {
		return Delta{Set: true}
	}
	var n int64
	for i := 0; i < len(val); i++ {
		c := val[i]
		if c < '0' || c > '9' {
			return Delta{Set: true}
		}
		if n < MaxDelta {
			n = n*10 + int64(c-'0')
		}
	}
	if n > MaxDelta {
		n = MaxDelta
	}
	return Delta{Set: true, Seconds: n}
}

func fieldList(v string) []string {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.ToLower(strings.TrimSpace(f)); f != "" {
			out = append(out, f)
		}
	}
	return out
}
