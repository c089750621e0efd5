package hostname

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{name: "simple", in: "example.com", ok: true},
		{name: "fqdn", in: "example.com.", ok: true},
		{name: "underscore", in: "_srv.example.com", ok: true},
		{name: "single label", in: "localhost", ok: true},
		{name: "empty", in: "", ok: false},
		{name: "only dot", in: ".", ok: false},
		{name: "empty label", in: "a..b", ok: false},
		{name: "leading hyphen", in: "-a.example", ok: false},
		{name: "trailing hyphen", in: "a-.example", ok: false},
		{name: "label too long", in: strings.Repeat("a", 64) + ".com", ok: false},
		{name: "name too long", in: strings.Repeat("a.", 127) + "ab", ok: false},
		{name: "space", in: "a b.com", ok: false},
		{name: "unicode", in: "bücher.de", ok: false},
	}
	for _, tt := range tests {
		if err := Check(tt.in); (err == nil) != tt.ok {
			t.Errorf("%s: Check(%q) = %v, want ok %v", tt.name, tt.in, err, tt.ok)
		}
	}
}

func FuzzCheck(f *testing.F) {
	f.Add("example.com")
	f.Add("a..b")
	f.Fuzz(func(t *testing.T, s string) {
		if Check(s) != nil {
			return
		}
		for _, r := range strings.TrimSuffix(s, ".") {
			if r > 127 || r == ' ' {
				t.Fatalf("%q accepted with %q", s, r)
			}
		}
	})
}
