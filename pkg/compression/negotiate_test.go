package compression

import "testing"

func TestNegotiate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		accept  []string
		offered []string
		want    string
	}{
		{name: "no field", accept: nil, want: ""},
		{name: "empty field", accept: []string{""}, want: ""},
		{name: "gzip", accept: []string{"gzip"}, want: Gzip},
		{name: "x-gzip", accept: []string{"x-gzip"}, want: Gzip},
		{name: "both prefers zstd", accept: []string{"gzip, deflate, br, zstd"}, want: Zstd},
		{name: "q decides", accept: []string{"zstd;q=0.5, gzip;q=0.8"}, want: Gzip},
		{name: "q=0 refuses", accept: []string{"gzip, zstd;q=0"}, want: Gzip},
		{name: "star", accept: []string{"*"}, want: Zstd},
		{name: "star q=0", accept: []string{"*;q=0"}, want: ""},
		{name: "star but not gzip", accept: []string{"gzip;q=0, *"}, offered: []string{Gzip}, want: ""},
		{name: "named beats star", accept: []string{"*;q=0.1, gzip;q=0.9"}, want: Gzip},
		{name: "identity only", accept: []string{"identity"}, want: ""},
		{name: "two lines", accept: []string{"br;q=0.5", "GZIP ; Q=1.0"}, want: Gzip},
		{name: "br", accept: []string{"br"}, want: Brotli},
		{name: "br before gzip on a tie", accept: []string{"gzip, br"}, want: Brotli},
		{name: "br q decides", accept: []string{"br;q=0.3, gzip;q=0.4"}, want: Gzip},
		{name: "br not offered", accept: []string{"br"}, offered: []string{Zstd, Gzip}, want: ""},
		{name: "br refused star", accept: []string{"br;q=0, zstd;q=0, *"}, want: Gzip},
		{name: "br case", accept: []string{"BR;Q=0.9, gzip;q=0.8"}, want: Brotli},
		{name: "malformed q is zero", accept: []string{"gzip;q=abc, zstd;q=2"}, want: ""},
		{name: "offered order breaks ties", accept: []string{"zstd, gzip"}, offered: []string{Gzip, Zstd}, want: Gzip},
	} {
		t.Run(tc.name, func(t *testing.T) {
			off := tc.offered
			if off == nil {
				off = Codings()
			}
			if got := Negotiate(tc.accept, off); got != tc.want {
				t.Fatalf("Negotiate(%q) = %q, want %q", tc.accept, got, tc.want)
			}
		})
	}
}

func TestCompressible(t *testing.T) {
	for ct, want := range map[string]bool{
		"text/html; charset=utf-8": true, "application/json": true, "application/problem+json": true,
		"image/svg+xml": true, "TEXT/EVENT-STREAM": true, "image/png": false, "application/octet-stream": false,
		"": false, "application/zip": false,
	} {
		if got := Compressible(ct); got != want {
			t.Errorf("Compressible(%q) = %v, want %v", ct, got, want)
		}
	}
}

func FuzzNegotiate(f *testing.F) {
	for _, s := range []string{"gzip;q=0.5, zstd", "*;q=0", "x-gzip;q=1.000", ";;=,", "gzip;q=0.", "zstd;Q=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, accept string) {
		got := Negotiate([]string{accept}, Codings())
		if got != "" && got != Gzip && got != Zstd && got != Brotli {
			t.Fatalf("Negotiate(%q) = %q", accept, got)
		}
		if got != "" {
			if q, ok := qOf([]string{accept}, got); !ok || q <= 0 {
				t.Fatalf("Negotiate(%q) = %q with q %v", accept, got, q)
			}
		}
	})
}
