package proxy

import (
	"errors"
	"net/http"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/handoff-proxy/handoff/pkg/clientip"
)

func TestParseForwarded(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    []ForwardedElement
		wantErr bool
	}{
		{name: "empty", in: nil, want: nil},
		{name: "only commas", in: []string{" , ,"}, want: nil},
		{
			name: "rfc7239 example 1",
			in:   []string{`for="_gazonk"`},
			want: []ForwardedElement{{{"for", "_gazonk"}}},
		},
		{
			name: "ipv6 with port quoted",
			in:   []string{`For="[2001:db8:cafe::17]:4711"`},
			want: []ForwardedElement{{{"for", "[2001:db8:cafe::17]:4711"}}},
		},
		{
			name: "pairs and elements",
			in:   []string{`for=192.0.2.60;proto=http;by=203.0.113.43`, `for=192.0.2.43, for=198.51.100.17`},
			want: []ForwardedElement{
				{{"for", "192.0.2.60"}, {"proto", "http"}, {"by", "203.0.113.43"}},
				{{"for", "192.0.2.43"}},
				{{"for", "198.51.100.17"}},
			},
		},
		{
			name: "host quoted with port and escapes in extension",
			in:   []string{`host="example.com:8443";ext="a \"q\" \\ b"`},
			want: []ForwardedElement{{{"host", "example.com:8443"}, {"ext", `a "q" \ b`}}},
		},
		{
			name: "empty pairs and ows",
			in:   []string{` ; for=unknown ;; proto=https , `},
			want: []ForwardedElement{{{"for", "unknown"}, {"proto", "https"}}},
		},
		{name: "obfuscated port", in: []string{`for="192.0.2.1:_x-1"`}, want: []ForwardedElement{{{"for", "192.0.2.1:_x-1"}}}},
		{name: "unquoted ipv6", in: []string{`for=[2001:db8::1]`}, wantErr: true},
		{name: "ipv6 without brackets", in: []string{`for="2001:db8::1"`}, wantErr: true},
		{name: "ipv4 in brackets", in: []string{`for="[192.0.2.1]"`}, wantErr: true},
		{name: "hostname in for", in: []string{`for=example.com`}, wantErr: true},
		{name: "bad port", in: []string{`for="192.0.2.1:123456"`}, wantErr: true},
		{name: "duplicate parameter", in: []string{`for=unknown;FOR=unknown`}, wantErr: true},
		{name: "missing value", in: []string{`for=`}, wantErr: true},
		{name: "missing equals", in: []string{`for`}, wantErr: true},
		{name: "unterminated quote", in: []string{`for="unknown`}, wantErr: true},
		{name: "garbage after value", in: []string{`for=unknown x`}, wantErr: true},
		{name: "bad proto", in: []string{`proto=1http`}, wantErr: true},
		{name: "bad host", in: []string{`host="a b"`}, wantErr: true},
		{name: "control byte in quoted", in: []string{"ext=\"a\x01\""}, wantErr: true},
		{name: "one bad value spoils all", in: []string{`for=192.0.2.1`, `for=[`}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseForwarded(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrMalformedForwarded) {
					t.Fatalf("ParseForwarded(%q) = %v, %v; want ErrMalformedForwarded", tt.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseForwarded(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseForwarded(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestAppendForwarded(t *testing.T) {
	tests := []struct {
		name  string
		elems []ForwardedElement
		want  string
	}{
		{name: "token values", elems: []ForwardedElement{{{"for", "192.0.2.1"}, {"proto", "https"}}}, want: "for=192.0.2.1;proto=https"},
		{name: "ipv6 quoted", elems: []ForwardedElement{{{"for", "[2001:db8::1]"}}}, want: `for="[2001:db8::1]"`},
		{name: "escapes", elems: []ForwardedElement{{{"ext", `a"b\c`}}}, want: `ext="a\"b\\c"`},
		{name: "empty value quoted", elems: []ForwardedElement{{{"ext", ""}}}, want: `ext=""`},
		{name: "elements joined, empty skipped", elems: []ForwardedElement{{{"for", "unknown"}}, {}, {{"by", "_x"}}}, want: "for=unknown, by=_x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(AppendForwarded(nil, tt.elems)); got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func FuzzParseForwarded(f *testing.F) {
	for _, s := range []string{
		`for="_gazonk"`,
		`For="[2001:db8:cafe::17]:4711"`,
		`for=192.0.2.60;proto=http;by=203.0.113.43`,
		`for=192.0.2.43, for=198.51.100.17`,
		`host="example.com:8443";ext="a \"q\" \\ b"`,
		` ; for=unknown ;; proto=https , `,
		`for="unknown`,
		`for=[`,
		"ext=\"\x80\t\"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		elems, err := ParseForwarded([]string{s})
		if err != nil {
			if !errors.Is(err, ErrMalformedForwarded) {
				t.Fatalf("error %v does not wrap ErrMalformedForwarded", err)
			}
			return
		}
		// What parses must serialise to something that parses back to
		// the same elements: the proxy re-serialises trusted chains.
		out := AppendForwarded(nil, elems)
		again, err := ParseForwarded([]string{string(out)})
		if err != nil {
			t.Fatalf("re-parse of %q (from %q): %v", out, s, err)
		}
		if !reflect.DeepEqual(elems, again) {
			t.Fatalf("round trip of %q: %q != %q", s, elems, again)
		}
	})
}

// FuzzForwardingHeaders checks that whatever a trusted or untrusted peer
// sends, the headers the proxy forwards are well-formed and end with the
// peer.
func FuzzForwardingHeaders(f *testing.F) {
	f.Add(`for=192.0.2.1;proto=https`, "192.0.2.1, 198.51.100.1", "app.example:8080", "https", true)
	f.Add(`for=[`, "junk", "a b", "1x", true)
	f.Add(`for="[2001:db8::1]"`, "2001:db8::1", "[2001:db8::1]:80", "http", false)
	f.Fuzz(func(t *testing.T, fwd, xff, host, xfp string, trusted bool) {
		fw := forwarding{via: "handoff"}
		if trusted {
			fw.trusted = clientip.NewTrusted([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})
		}
		in := &http.Request{
			RemoteAddr: "10.1.2.3:5555",
			Host:       host,
			ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{
				hdrForwarded:     {fwd},
				hdrXForwardedFor: {xff},
				hdrXForwardedPrt: {xfp},
				hdrXForwardedHst: {host},
			},
		}
		out := http.Header{}
		fw.apply(out, in, "id")
		elems, err := ParseForwarded(out[hdrForwarded])
		if err != nil {
			t.Fatalf("forwarded %q does not parse: %v", out[hdrForwarded], err)
		}
		if v, _ := elems[len(elems)-1].Get("for"); v != "10.1.2.3" {
			t.Fatalf("last forwarded element %q, want for=10.1.2.3", elems[len(elems)-1])
		}
		addrs, err := clientip.ParseXForwardedFor(out[hdrXForwardedFor])
		if err != nil {
			t.Fatalf("x-forwarded-for %q does not parse: %v", out[hdrXForwardedFor], err)
		}
		if got := addrs[len(addrs)-1].String(); got != "10.1.2.3" {
			t.Fatalf("x-forwarded-for ends with %s", got)
		}
		if !trusted && len(addrs) != 1 {
			t.Fatalf("untrusted peer kept x-forwarded-for %q", out[hdrXForwardedFor])
		}
		if p := out.Get(hdrXForwardedPrt); !validScheme(p) {
			t.Fatalf("x-forwarded-proto %q", p)
		}
	})
}

func TestRequestIDSanity(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		keep bool
	}{
		{name: "absent", in: nil},
		{name: "sane", in: []string{"abc-123_XYZ.4"}, keep: true},
		{name: "max length", in: []string{strings.Repeat("a", 200)}, keep: true},
		{name: "too long", in: []string{strings.Repeat("a", 201)}},
		{name: "space", in: []string{"a b"}},
		{name: "control", in: []string{"a\x7f"}},
		{name: "non-ascii", in: []string{"é"}},
		{name: "empty", in: []string{""}},
		{name: "two lines", in: []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.in != nil {
				h[hdrRequestID] = tt.in
			}
			got := requestID(h)
			if tt.keep {
				if got != tt.in[0] {
					t.Fatalf("requestID = %q, want %q kept", got, tt.in[0])
				}
				return
			}
			if len(got) != 32 || strings.Trim(got, "0123456789abcdef") != "" {
				t.Fatalf("requestID = %q, want 32 hex digits", got)
			}
		})
	}
}
