package rewrite

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func vars(m map[string]string) Vars { return func(n string) string { return m[n] } }

func TestTemplate(t *testing.T) {
	v := vars(map[string]string{"host": "example.com", "client_ip": "192.0.2.1", "scheme": "https",
		"request_id": "evil\r\nSet-Cookie: x=1"})
	for _, tc := range []struct {
		name, in, want, err string
	}{
		{name: "literal", in: "plain", want: "plain"},
		{name: "vars", in: "{scheme}://{host} from {client_ip}", want: "https://example.com from 192.0.2.1"},
		{name: "braces", in: "{{host}}", want: "{host}"},
		{name: "crlf in value dropped", in: "id={request_id}", want: "id=evilSet-Cookie: x=1"},
		{name: "crlf literal", in: "a\r\nb", err: "0x0d"},
		{name: "nul literal", in: "a\x00", err: "0x00"},
		{name: "unknown var", in: "{uri}", err: "unknown variable {uri}"},
		{name: "unclosed", in: "{host", err: "unclosed"},
		{name: "stray close", in: "a}b", err: "unmatched"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp, err := ParseTemplate(tc.in, HeaderVars)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrTemplate) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tp.Expand(v); got != tc.want {
				t.Fatalf("Expand = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestHeaders(t *testing.T) {
	h, err := ParseHeaders(HeaderSpec{Set: map[string]string{"x-host": "{host}"},
		Add: map[string]string{"Via": "edge", "X-Gone": "back"}, Remove: []string{"x-gone", "Server"}})
	if err != nil {
		t.Fatal(err)
	}
	hdr := http.Header{"Via": {"1.1 a"}, "X-Gone": {"1"}, "Server": {"s"}, "X-Host": {"old", "older"}}
	h.Apply(hdr, vars(map[string]string{"host": "h"}))
	want := http.Header{"Via": {"1.1 a", "edge"}, "X-Gone": {"back"}, "X-Host": {"h"}}
	if len(hdr) != len(want) {
		t.Fatalf("got %v, want %v", hdr, want)
	}
	for k, v := range want {
		if strings.Join(hdr[k], ",") != strings.Join(v, ",") {
			t.Fatalf("%s = %q, want %q", k, hdr[k], v)
		}
	}
	for _, tc := range []struct {
		name string
		spec HeaderSpec
		key  string
	}{
		{name: "bad set name", spec: HeaderSpec{Set: map[string]string{"X Bad": "v"}}, key: "set.X Bad"},
		{name: "crlf add value", spec: HeaderSpec{Add: map[string]string{"X-A": "v\r\nInjected: 1"}}, key: "add.X-A"},
		{name: "bad remove", spec: HeaderSpec{Remove: []string{"ok", "no:colon"}}, key: "remove[1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseHeaders(tc.spec)
			var he *HeaderError
			if !errors.As(err, &he) || he.Key != tc.key {
				t.Fatalf("err = %v, want key %q", err, tc.key)
			}
		})
	}
}

func TestPath(t *testing.T) {
	for _, tc := range []struct {
		name       string
		spec       PathSpec
		in, want   string // request URI in, request URI out
		wantRawSet bool
	}{
		{name: "strip", spec: PathSpec{StripPrefix: "/api/"}, in: "/api/v1/x?q=1&r", want: "/v1/x?q=1&r"},
		{name: "strip whole", spec: PathSpec{StripPrefix: "/api"}, in: "/api?q", want: "/?q"},
		{name: "strip not at boundary", spec: PathSpec{StripPrefix: "/api"}, in: "/apix/y", want: "/apix/y"},
		{name: "add", spec: PathSpec{AddPrefix: "/v2"}, in: "/x?a=b", want: "/v2/x?a=b"},
		{name: "regex", spec: PathSpec{Match: "^/old/(.*)", To: "/new/$1"}, in: "/old/a/b?k=v", want: "/new/a/b?k=v"},
		{name: "regex named", spec: PathSpec{Match: "^/u/(?P<id>[0-9]+)$", To: "/users/${id}/profile"}, in: "/u/42", want: "/users/42/profile"},
		{name: "regex no match", spec: PathSpec{Match: "^/old/(.*)", To: "/new/$1"}, in: "/other", want: "/other"},
		{name: "encoded slash kept", spec: PathSpec{StripPrefix: "/files"}, in: "/files/a%2Fb/c%20d?x=%2F", want: "/a%2Fb/c%20d?x=%2F", wantRawSet: true},
		{name: "encoded through regex", spec: PathSpec{Match: "^/old/(.*)", To: "/new/$1"}, in: "/old/a%2Fb", want: "/new/a%2Fb", wantRawSet: true},
		{name: "all three", spec: PathSpec{Match: "^/a/(.*)", To: "/b/$1", StripPrefix: "/b", AddPrefix: "/c"}, in: "/a/x", want: "/c/x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePath(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			u, err := url.ParseRequestURI(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !p.RewriteURL(u) {
				t.Fatal("RewriteURL failed")
			}
			if got := u.RequestURI(); got != tc.want {
				t.Fatalf("RequestURI = %q, want %q", got, tc.want)
			}
			if (u.RawPath != "") != tc.wantRawSet {
				t.Fatalf("RawPath = %q", u.RawPath)
			}
			if dec, _ := url.PathUnescape(u.EscapedPath()); dec != u.Path {
				t.Fatalf("Path %q and RawPath %q disagree", u.Path, u.RawPath)
			}
		})
	}
}

func TestParsePathErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec PathSpec
		key  string
	}{
		{name: "strip relative", spec: PathSpec{StripPrefix: "api"}, key: "strip_prefix"},
		{name: "add bad escape", spec: PathSpec{AddPrefix: "/a%zz"}, key: "add_prefix"},
		{name: "bad regex", spec: PathSpec{Match: "(", To: "/"}, key: "rewrite.match"},
		{name: "backreference not RE2", spec: PathSpec{Match: `(a)\1`, To: "/"}, key: "rewrite.match"},
		{name: "to without match", spec: PathSpec{To: "/x"}, key: "rewrite.match"},
		{name: "missing group", spec: PathSpec{Match: "^/(a)", To: "/$2"}, key: "rewrite.to"},
		{name: "unknown name", spec: PathSpec{Match: "^/(a)", To: "/${nope}"}, key: "rewrite.to"},
		{name: "to relative", spec: PathSpec{Match: "^/(a)", To: "$1"}, key: "rewrite.to"},
		{name: "to query", spec: PathSpec{Match: "^/(a)", To: "/$1?x"}, key: "rewrite.to"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePath(tc.spec)
			var pe *PathError
			if !errors.As(err, &pe) || pe.Key != tc.key {
				t.Fatalf("err = %v, want key %q", err, tc.key)
			}
		})
	}
}

func TestStatic(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		hdr    map[string]string
		ok     bool
	}{
		{name: "maintenance", status: 503, body: "down", hdr: map[string]string{"Retry-After": "120"}, ok: true},
		{name: "zero is 200", ok: true},
		{name: "204 with body", status: 204, body: "x"},
		{name: "1xx", status: 101},
		{name: "crlf header", status: 200, hdr: map[string]string{"X": "a\nb"}},
		{name: "variable in static", status: 200, hdr: map[string]string{"X": "{host}"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseStatic(tc.status, tc.body, tc.hdr)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	if _, err := ParseRedirect("https://{host}{uri}", 301); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseRedirect("https://{host}{uri}", 200); !errors.Is(err, ErrStatus) {
		t.Fatalf("status 200 redirect: %v", err)
	}
}

func FuzzTemplate(f *testing.F) {
	for _, s := range []string{"{host}", "a{{b}}c", "{client_ip}-{request_id}", "{", "}", "x\r\n", "{uri}"} {
		f.Add(s, "v\r\nal\x00ue")
	}
	f.Fuzz(func(t *testing.T, tmpl, val string) {
		tp, err := ParseTemplate(tmpl, URLVars)
		if err != nil {
			return
		}
		out := tp.Expand(func(string) string { return val })
		for i := range len(out) {
			if !fieldByte(out[i]) {
				t.Fatalf("Expand(%q) with %q = %q: byte %#02x", tmpl, val, out, out[i])
			}
		}
	})
}

func FuzzParsePath(f *testing.F) {
	f.Add("/api", "/v2", "^/old/(.*)", "/new/$1", "/old/a%2Fb")
	f.Add("", "", "(?P<x>.)", "/${x}$$", "/%zz")
	f.Fuzz(func(t *testing.T, strip, add, match, to, path string) {
		p, err := ParsePath(PathSpec{StripPrefix: strip, AddPrefix: add, Match: match, To: to})
		if err != nil {
			return
		}
		u, err := url.ParseRequestURI(path)
		if err != nil {
			return
		}
		if !p.RewriteURL(u) {
			return
		}
		if dec, err := url.PathUnescape(u.EscapedPath()); err != nil || dec != u.Path {
			t.Fatalf("Path %q and RawPath %q disagree", u.Path, u.RawPath)
		}
		if strings.HasPrefix(path, "/") && !strings.HasPrefix(u.Path, "/") {
			t.Fatalf("rewrite of %q gave relative path %q", path, u.Path)
		}
	})
}
