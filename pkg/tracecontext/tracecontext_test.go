package tracecontext

import (
	"net/http"
	"strings"
	"testing"
)

const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		ok      bool
		sampled bool
	}{
		{name: "spec example", in: valid, ok: true, sampled: true},
		{name: "not sampled", in: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", ok: true},
		{name: "unknown flags dropped in 00", in: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09", ok: true, sampled: true},
		{name: "upper case", in: "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01"},
		{name: "zero trace id", in: "00-00000000000000000000000000000000-00f067aa0ba902b7-01"},
		{name: "zero span id", in: "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"},
		{name: "version ff", in: "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		{name: "trailing data in 00", in: valid + "-x"},
		{name: "future version with more fields", in: "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds", ok: true, sampled: true},
		{name: "future version without dash", in: "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x"},
		{name: "short", in: valid[:54]},
		{name: "bad separator", in: strings.Replace(valid, "-", "_", 1)},
		{name: "non hex", in: "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01"},
		{name: "empty", in: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := Parse(tt.in)
			if ok != tt.ok || ok && p.Sampled() != tt.sampled {
				t.Fatalf("Parse(%q) = %+v, %v; want ok=%v sampled=%v", tt.in, p, ok, tt.ok, tt.sampled)
			}
			if ok && tt.in == valid && p.String() != valid {
				t.Errorf("String() = %q, want %q", p.String(), valid)
			}
		})
	}
}

func TestFromHeaderRefusesTwo(t *testing.T) {
	h := http.Header{Header: {valid, valid}}
	if _, ok := FromHeader(h); ok {
		t.Error("two traceparent fields accepted")
	}
	h = http.Header{Header: {valid}}
	if p, ok := FromHeader(h); !ok || p.String() != valid {
		t.Errorf("FromHeader = %v %v", p, ok)
	}
}

func TestChild(t *testing.T) {
	p, _ := Parse(valid)
	c := Child(p, true, false)
	if c.TraceID != p.TraceID || c.SpanID == p.SpanID || !c.SpanID.IsValid() || c.Flags != p.Flags {
		t.Errorf("child %v of %v", c, p)
	}
	n := Child(Parent{}, false, false)
	if !n.IsValid() || n.Sampled() {
		t.Errorf("new trace %v", n)
	}
	if s := Child(Parent{}, false, true); !s.Sampled() {
		t.Errorf("new sampled trace %v", s)
	}
	if _, ok := Parse(n.String()); !ok {
		t.Errorf("generated %q does not parse", n.String())
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{valid, "", "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", strings.ToUpper(valid)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, ok := Parse(s)
		if !ok {
			return
		}
		if !p.IsValid() {
			t.Fatalf("Parse(%q) accepted invalid ids", s)
		}
		// What we write parses back to the same thing.
		q, ok := Parse(p.String())
		if !ok || q != p {
			t.Fatalf("round trip of %q: %v %v, want %v", s, q, ok, p)
		}
	})
}
