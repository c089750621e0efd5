package integration

import (
	"slices"
	"strings"
	"testing"
)

// Lifecycle features the binary announces in `handoff version`, on a line
// "features: NAME…". A scenario whose feature is missing is skipped, so
// the suite stays green while the feature is being built and turns real as
// soon as the binary announces it.
const (
	featIdleExit  = "idle_exit" // config idle_exit
	featUpgrade   = "upgrade"   // binary upgrade: reload on changed binary, SIGUSR2, `handoff upgrade`
	featFDStore   = "fdstore"   // self-bound listeners pushed to the fd store
	featWatchdog  = "watchdog"  // WATCHDOG=1 pings
	featDebugHang = "debughang" // admin POST /debug/hang (build tag debughang)
)

// parseFeatures returns the names on the "features:" line of `handoff
// version` output, in order, without duplicates. Names are
// [a-z0-9_.-]+; anything else on the line is ignored. No such line means
// no features.
func parseFeatures(version string) []string {
	var out []string
	for line := range strings.Lines(version) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "features:")
		if !ok {
			continue
		}
		for _, f := range strings.FieldsFunc(rest, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' }) {
			if validFeature(f) && !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	return out
}

func validFeature(f string) bool {
	if f == "" {
		return false
	}
	for _, r := range f {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			return false
		}
	}
	return true
}

func TestParseFeatures(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{name: "none", in: "handoff v1.2.3 abcdef\n", want: nil},
		{name: "some", in: "handoff dev\nfeatures: idle_exit upgrade fdstore\n", want: []string{"idle_exit", "upgrade", "fdstore"}},
		{name: "commas and duplicates", in: "features: watchdog,watchdog, debughang", want: []string{"watchdog", "debughang"}},
		{name: "indented, crlf", in: "handoff\r\n  features: upgrade\r\n", want: []string{"upgrade"}},
		{name: "junk tokens dropped", in: "features: UPPER ok é-x fine.1", want: []string{"ok", "fine.1"}},
		{name: "two lines", in: "features: a\nfeatures: b a", want: []string{"a", "b"}},
		{name: "not at line start", in: "handoff features: a", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseFeatures(tt.in); !slices.Equal(got, tt.want) {
				t.Errorf("parseFeatures(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzParseFeatures(f *testing.F) {
	f.Add("handoff dev\nfeatures: idle_exit upgrade\n")
	f.Add("features:")
	f.Add("features: a,,b\tc\r\n")
	f.Fuzz(func(t *testing.T, in string) {
		got := parseFeatures(in)
		for i, name := range got {
			if !validFeature(name) || slices.Contains(got[:i], name) {
				t.Errorf("parseFeatures(%q) = %q: bad or duplicate %q", in, got, name)
			}
		}
	})
}
