package route

import (
	"errors"
	"strings"
	"testing"
)

func TestParseHostPattern(t *testing.T) {
	tests := []struct {
		name, in, want string
		wildcard       bool
		msg            string // "" means valid
	}{
		{name: "empty", in: ""},
		{name: "exact", in: "API.Example.com.", want: "api.example.com"},
		{name: "wildcard", in: "*.Example.com", want: ".example.com", wildcard: true},
		{name: "ipv4", in: "192.0.2.1", want: "192.0.2.1"},
		{name: "ipv6 brackets", in: "[2001:DB8::1]", want: "2001:db8::1"},
		{name: "ipv6 bare", in: "2001:db8::1", want: "2001:db8::1"},
		{name: "star", in: "*", msg: "leave host empty"},
		{name: "inner star", in: "api.*.com", msg: "whole first label"},
		{name: "port", in: "api.example.com:443", msg: "without the port"},
		{name: "wildcard ip", in: "*.192.0.2.1", msg: "needs a host name"},
		{name: "zone", in: "fe80::1%eth0", msg: "zone"},
		{name: "bad char", in: "a b.com", msg: "not allowed in a host name"},
		{name: "hyphen", in: "-a.com", msg: "must not start or end with '-'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, wc, err := ParseHostPattern(tt.in)
			if tt.msg != "" {
				if !errors.Is(err, ErrInvalidRoute) || !strings.Contains(err.Error(), tt.msg) {
					t.Fatalf("ParseHostPattern(%q) = %q, %v; want error with %q", tt.in, got, err, tt.msg)
				}
				return
			}
			if err != nil || got != tt.want || wc != tt.wildcard {
				t.Fatalf("ParseHostPattern(%q) = %q, %v, %v; want %q, %v", tt.in, got, wc, err, tt.want, tt.wildcard)
			}
		})
	}
}

func TestParsePathPrefix(t *testing.T) {
	tests := []struct{ name, in, msg string }{
		{name: "empty", in: ""},
		{name: "root", in: "/"},
		{name: "trailing slash", in: "/v1/"},
		{name: "relative", in: "v1", msg: `must start with "/"`},
		{name: "query", in: "/v1?x", msg: "no query"},
		{name: "unclean", in: "/v1/../admin", msg: "not clean"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePathPrefix(tt.in)
			if tt.msg != "" {
				if !errors.Is(err, ErrInvalidRoute) || !strings.Contains(err.Error(), tt.msg) {
					t.Fatalf("ParsePathPrefix(%q) = %v; want error with %q", tt.in, err, tt.msg)
				}
				return
			}
			if err != nil || got != tt.in {
				t.Fatalf("ParsePathPrefix(%q) = %q, %v", tt.in, got, err)
			}
		})
	}
}

// FuzzParseHostPattern: a pattern that parses builds a table, and its
// normalized form parses to itself.
func FuzzParseHostPattern(f *testing.F) {
	for _, s := range []string{"a.example.com", "*.example.com", "[::1]", "192.0.2.1", "*", "a:1", "fe80::1%x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		host, wildcard, err := ParseHostPattern(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidRoute) {
				t.Fatalf("error %v does not wrap ErrInvalidRoute", err)
			}
			return
		}
		again := host
		if wildcard {
			again = "*" + host
		}
		if h2, w2, err := ParseHostPattern(again); err != nil || h2 != host || w2 != wildcard {
			t.Fatalf("%q -> %q: re-parse = %q, %v, %v", s, host, h2, w2, err)
		}
	})
}
