package route

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/handoff-proxy/handoff/pkg/reqinfo"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// upstreamHandler answers with the upstream's name and what reqinfo says.
func upstreamHandler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route, up := "-", "-"
		if in := reqinfo.From(r.Context()); in != nil {
			route, up = in.Route, in.Upstream
		}
		fmt.Fprintf(w, "upstream=%s info.route=%s info.upstream=%s", name, route, up)
	})
}

// handlersFor has a handler for every upstream the routes name.
func handlersFor(routes []Spec) map[string]http.Handler {
	hs := make(map[string]http.Handler)
	for _, r := range routes {
		hs[r.Upstream] = upstreamHandler(r.Upstream)
	}
	return hs
}

func mustTable(t testing.TB, routes []Spec) *Table {
	t.Helper()
	tb, err := New(routes, handlersFor(routes))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return tb
}

// rt is a route named name sending to upstream "u-"+name.
func rt(name string, m Conditions) Spec {
	return Spec{Name: name, Match: m, Upstream: "u-" + name}
}

// req builds a request as the server would hand it over: target is the
// request-target as sent on the wire, so percent-encoding is decoded the
// way net/http does it.
type req struct {
	method  string
	host    string
	target  string
	headers map[string][]string
}

func (q req) build() *http.Request {
	m := cmp.Or(q.method, http.MethodGet)
	r := httptest.NewRequest(m, cmp.Or(q.target, "/"), nil)
	r.Host = q.host
	for k, vs := range q.headers {
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	return r
}

type matchCase struct {
	name   string
	routes []Spec
	req    req
	want   string // route name; empty means no match
}

func runMatchCases(t *testing.T, tests []matchCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := mustTable(t, tt.routes)
			r := tt.req.build()
			got, ok := tb.Match(ViewOf(r))
			switch {
			case tt.want == "" && ok:
				t.Fatalf("Match = %s, want no match", got.Name)
			case tt.want != "" && !ok:
				t.Fatalf("Match = no match, want %s", tt.want)
			case ok && got.Name != tt.want:
				t.Fatalf("Match = %s, want %s", got.Name, tt.want)
			}
			if ok && got.Upstream != "u-"+tt.want {
				t.Fatalf("Match upstream = %s, want u-%s", got.Upstream, tt.want)
			}
			// Whatever the config order, the most specific route wins:
			// reversing the list must change nothing but ties.
			if !strings.Contains(tt.name, "config order") {
				rev := slices.Clone(tt.routes)
				slices.Reverse(rev)
				got2, ok2 := mustTable(t, rev).Match(ViewOf(r))
				if ok2 != ok || (ok && got2.Name != got.Name) {
					t.Fatalf("reversed config: Match = %v %v, want %v", got2, ok2, tt.want)
				}
			}
		})
	}
}

func TestMatchPrecedence(t *testing.T) {
	runMatchCases(t, []matchCase{
		{
			name: "exact host beats wildcard",
			routes: []Spec{
				rt("wild", Conditions{Host: "*.example.com"}),
				rt("exact", Conditions{Host: "api.example.com"}),
			},
			req:  req{host: "api.example.com"},
			want: "exact",
		},
		{
			name: "wildcard beats no host",
			routes: []Spec{
				rt("any", Conditions{}),
				rt("wild", Conditions{Host: "*.example.com"}),
			},
			req:  req{host: "api.example.com"},
			want: "wild",
		},
		{
			name: "host beats a longer path prefix",
			routes: []Spec{
				rt("deep", Conditions{PathPrefix: "/v1/long/path"}),
				rt("host", Conditions{Host: "api.example.com", PathPrefix: "/"}),
			},
			req:  req{host: "api.example.com", target: "/v1/long/path/x"},
			want: "host",
		},
		{
			name: "longer wildcard suffix first",
			routes: []Spec{
				rt("short", Conditions{Host: "*.example.com"}),
				rt("long", Conditions{Host: "*.eu.example.com"}),
			},
			req:  req{host: "api.eu.example.com"},
			want: "long",
		},
		{
			name: "exact host whose path fails falls through to wildcard",
			routes: []Spec{
				rt("exact", Conditions{Host: "api.example.com", PathPrefix: "/admin"}),
				rt("wild", Conditions{Host: "*.example.com"}),
			},
			req:  req{host: "api.example.com", target: "/public"},
			want: "wild",
		},
		{
			name: "wildcard whose method fails falls through to no host",
			routes: []Spec{
				rt("wild", Conditions{Host: "*.example.com", Methods: []string{"POST"}}),
				rt("any", Conditions{PathPrefix: "/"}),
			},
			req:  req{host: "api.example.com"},
			want: "any",
		},
		{
			name: "longer path prefix wins",
			routes: []Spec{
				rt("root", Conditions{PathPrefix: "/"}),
				rt("v1", Conditions{PathPrefix: "/v1"}),
				rt("v1users", Conditions{PathPrefix: "/v1/users"}),
			},
			req:  req{target: "/v1/users/42"},
			want: "v1users",
		},
		{
			name: "prefix with trailing slash is longer",
			routes: []Spec{
				rt("bare", Conditions{PathPrefix: "/v1"}),
				rt("slash", Conditions{PathPrefix: "/v1/"}),
			},
			req:  req{target: "/v1/x"},
			want: "slash",
		},
		{
			name: "any prefix beats no prefix",
			routes: []Spec{
				rt("none", Conditions{Methods: []string{"GET"}}),
				rt("root", Conditions{PathPrefix: "/"}),
			},
			req:  req{target: "/x"},
			want: "root",
		},
		{
			name: "path prefix beats methods",
			routes: []Spec{
				rt("method", Conditions{PathPrefix: "/v1", Methods: []string{"GET"}}),
				rt("longer", Conditions{PathPrefix: "/v1/x"}),
			},
			req:  req{target: "/v1/x"},
			want: "longer",
		},
		{
			name: "methods beat no methods",
			routes: []Spec{
				rt("all", Conditions{PathPrefix: "/v1"}),
				rt("post", Conditions{PathPrefix: "/v1", Methods: []string{"POST", "PUT"}}),
			},
			req:  req{method: "PUT", target: "/v1"},
			want: "post",
		},
		{
			name: "method that does not match falls through",
			routes: []Spec{
				rt("all", Conditions{PathPrefix: "/v1"}),
				rt("post", Conditions{PathPrefix: "/v1", Methods: []string{"POST"}}),
			},
			req:  req{method: "GET", target: "/v1"},
			want: "all",
		},
		{
			name: "methods beat headers",
			routes: []Spec{
				rt("headers", Conditions{Headers: map[string]string{"X-A": "1", "X-B": "2"}}),
				rt("method", Conditions{Methods: []string{"GET"}}),
			},
			req:  req{headers: map[string][]string{"X-A": {"1"}, "X-B": {"2"}}},
			want: "method",
		},
		{
			name: "more headers win",
			routes: []Spec{
				rt("one", Conditions{Headers: map[string]string{"X-A": "1"}}),
				rt("two", Conditions{Headers: map[string]string{"X-A": "1", "X-B": "2"}}),
			},
			req:  req{headers: map[string][]string{"X-A": {"1"}, "X-B": {"2"}}},
			want: "two",
		},
		{
			name: "header mismatch falls through",
			routes: []Spec{
				rt("one", Conditions{Headers: map[string]string{"X-A": "1"}}),
				rt("two", Conditions{Headers: map[string]string{"X-A": "1", "X-B": "2"}}),
			},
			req:  req{headers: map[string][]string{"X-A": {"1"}, "X-B": {"3"}}},
			want: "one",
		},
		{
			name: "ties go to config order",
			routes: []Spec{
				rt("first", Conditions{PathPrefix: "/v1", Methods: []string{"GET"}}),
				rt("second", Conditions{PathPrefix: "/v1", Methods: []string{"GET", "HEAD"}}),
			},
			req:  req{target: "/v1"},
			want: "first",
		},
		{
			name: "ties go to config order, reversed",
			routes: []Spec{
				rt("second", Conditions{PathPrefix: "/v1", Methods: []string{"GET", "HEAD"}}),
				rt("first", Conditions{PathPrefix: "/v1", Methods: []string{"GET"}}),
			},
			req:  req{target: "/v1"},
			want: "second",
		},
		{
			name:   "empty match is the default route",
			routes: []Spec{rt("default", Conditions{}), rt("api", Conditions{Host: "api.example.com"})},
			req:    req{host: "other.example.org", target: "/anything"},
			want:   "default",
		},
		{
			name:   "nothing matches",
			routes: []Spec{rt("api", Conditions{Host: "api.example.com"}), rt("v1", Conditions{PathPrefix: "/v1"})},
			req:    req{host: "other.example.org", target: "/v2"},
		},
	})
}

func TestMatchHost(t *testing.T) {
	routes := []Spec{
		rt("exact", Conditions{Host: "api.example.com"}),
		rt("upper", Conditions{Host: "WWW.Example.COM"}),
		rt("fqdn", Conditions{Host: "fqdn.example.com."}),
		rt("wild", Conditions{Host: "*.example.com"}),
		rt("v6", Conditions{Host: "[2001:db8::1]"}),
		rt("v6bare", Conditions{Host: "::1"}),
		rt("v4", Conditions{Host: "192.0.2.1"}),
	}
	cases := []struct {
		name, host, want string
	}{
		{name: "exact", host: "api.example.com", want: "exact"},
		{name: "request case", host: "API.Example.Com", want: "exact"},
		{name: "config case", host: "www.example.com", want: "upper"},
		{name: "port stripped", host: "api.example.com:8443", want: "exact"},
		{name: "trailing dot in request", host: "api.example.com.", want: "exact"},
		{name: "trailing dot in request with port", host: "api.example.com.:80", want: "exact"},
		{name: "trailing dot in config", host: "fqdn.example.com", want: "fqdn"},
		{name: "wildcard one label", host: "x.example.com", want: "wild"},
		{name: "wildcard two labels", host: "a.b.example.com", want: "wild"},
		{name: "wildcard with port and case", host: "A.B.Example.com:80", want: "wildcard"},
		{name: "wildcard does not match the apex", host: "example.com"},
		{name: "wildcard needs a label boundary", host: "badexample.com"},
		{name: "wildcard needs a non-empty label", host: ".example.com"},
		{name: "suffix of another domain", host: "example.com.evil.org"},
		{name: "ipv6 with port", host: "[2001:db8::1]:8080", want: "v6"},
		{name: "ipv6 without port", host: "[2001:db8::1]", want: "v6"},
		{name: "ipv6 non-canonical spelling", host: "[2001:0DB8:0:0::1]:80", want: "v6"},
		{name: "ipv6 loopback", host: "[::1]:80", want: "v6bare"},
		{name: "ipv6 other", host: "[2001:db8::2]"},
		{name: "ipv4 with port", host: "192.0.2.1:80", want: "v4"},
		{name: "empty host", host: ""},
	}
	var tests []matchCase
	for _, c := range cases {
		want := c.want
		if want == "wildcard" {
			want = "wild"
		}
		tests = append(tests, matchCase{name: c.name, routes: routes, req: req{host: c.host}, want: want})
	}
	runMatchCases(t, tests)
}

func TestMatchPath(t *testing.T) {
	routes := []Spec{
		rt("v1", Conditions{PathPrefix: "/v1"}),
		rt("docs", Conditions{PathPrefix: "/docs/"}),
		rt("admin", Conditions{PathPrefix: "/admin"}),
		rt("root", Conditions{PathPrefix: "/"}),
		rt("star", Conditions{Methods: []string{"OPTIONS"}}),
	}
	cases := []struct {
		name, target, want string
		method             string
	}{
		{name: "prefix itself", target: "/v1", want: "v1"},
		{name: "prefix with slash", target: "/v1/", want: "v1"},
		{name: "below prefix", target: "/v1/users", want: "v1"},
		{name: "not a segment boundary", target: "/v1x", want: "root"},
		{name: "slash prefix needs the slash", target: "/docs", want: "root"},
		{name: "slash prefix matches itself", target: "/docs/", want: "docs"},
		{name: "slash prefix matches below", target: "/docs/a/b", want: "docs"},
		{name: "dot dot out of the prefix", target: "/v1/../admin", want: "admin"},
		{name: "dot dot to the prefix", target: "/v1/x/..", want: "v1"},
		{name: "dot dot above root", target: "/../../v1", want: "v1"},
		{name: "dot segment", target: "/v1/./x", want: "v1"},
		{name: "double slash", target: "//v1//x", want: "v1"},
		{name: "encoded slash dot dot", target: "/v1%2F..", want: "root"},
		{name: "encoded slash dot dot admin", target: "/v1%2F..%2Fadmin", want: "admin"},
		{name: "encoded dots", target: "/v1/%2e%2e/admin", want: "admin"},
		{name: "encoded slash is a separator after decoding", target: "/v1%2Fx", want: "v1"},
		{name: "encoded letter", target: "/%76%31", want: "v1"},
		{name: "case sensitive", target: "/V1", want: "root"},
		{name: "query ignored", target: "/v1?x=/admin", want: "v1"},
		{name: "asterisk form only matches prefix-less routes", target: "*", method: "OPTIONS", want: "star"},
	}
	var tests []matchCase
	for _, c := range cases {
		tests = append(tests, matchCase{name: c.name, routes: routes, req: req{method: c.method, target: c.target}, want: c.want})
	}
	runMatchCases(t, tests)
}

func TestMatchMethodsAndHeaders(t *testing.T) {
	routes := []Spec{
		rt("get", Conditions{Methods: []string{"get"}}),
		rt("hdr", Conditions{Headers: map[string]string{"x-tenant": "acme"}}),
		rt("host", Conditions{Headers: map[string]string{"Host": "h.example"}}),
		rt("empty", Conditions{Headers: map[string]string{"X-Empty": ""}}),
	}
	runMatchCases(t, []matchCase{
		{name: "config method lowered is upper cased", routes: routes, req: req{method: "GET"}, want: "get"},
		{name: "request methods are case sensitive", routes: routes, req: req{method: "get"}},
		{name: "header name case-insensitive", routes: routes, req: req{method: "POST", headers: map[string][]string{"X-TENANT": {"acme"}}}, want: "hdr"},
		{name: "header value exact", routes: routes, req: req{method: "POST", headers: map[string][]string{"X-Tenant": {"ACME"}}}},
		{name: "header value is not a list member", routes: routes, req: req{method: "POST", headers: map[string][]string{"X-Tenant": {"acme, other"}}}},
		{name: "any field line", routes: routes, req: req{method: "POST", headers: map[string][]string{"X-Tenant": {"other", "acme"}}}, want: "hdr"},
		{name: "host header condition", routes: routes, req: req{method: "POST", host: "h.example"}, want: "host"},
		{name: "empty value needs the header", routes: routes, req: req{method: "POST", headers: map[string][]string{"X-Empty": {""}}}, want: "empty"},
		{name: "absent header", routes: routes, req: req{method: "POST"}},
	})
}

func TestNew(t *testing.T) {
	ok := func(m Conditions) []Spec { return []Spec{rt("r", m)} }
	tests := []struct {
		name    string
		routes  []Spec
		wantErr bool
	}{
		{name: "empty table", routes: nil},
		{name: "wildcard", routes: ok(Conditions{Host: "*.example.com"})},
		{name: "ipv6 bare", routes: ok(Conditions{Host: "2001:db8::1"})},
		{name: "underscore label", routes: ok(Conditions{Host: "_svc.example.com"})},
		{name: "unknown upstream", routes: []Spec{{Name: "x", Upstream: "nope"}}, wantErr: true},
		{name: "duplicate name", routes: []Spec{rt("a", Conditions{}), rt("a", Conditions{PathPrefix: "/x"})}, wantErr: true},
		{name: "generated name collides", routes: []Spec{rt("route1", Conditions{}), {Upstream: "u-route1"}}, wantErr: true},
		{name: "star alone", routes: ok(Conditions{Host: "*"}), wantErr: true},
		{name: "star dot", routes: ok(Conditions{Host: "*."}), wantErr: true},
		{name: "star in the middle", routes: ok(Conditions{Host: "a.*.com"}), wantErr: true},
		{name: "star without dot", routes: ok(Conditions{Host: "*example.com"}), wantErr: true},
		{name: "double star", routes: ok(Conditions{Host: "*.*.example.com"}), wantErr: true},
		{name: "host with port", routes: ok(Conditions{Host: "example.com:8080"}), wantErr: true},
		{name: "ipv6 with port", routes: ok(Conditions{Host: "[::1]:80"}), wantErr: true},
		{name: "ipv6 zone", routes: ok(Conditions{Host: "fe80::1%eth0"}), wantErr: true},
		{name: "empty label", routes: ok(Conditions{Host: "a..example.com"}), wantErr: true},
		{name: "space in host", routes: ok(Conditions{Host: "a b.com"}), wantErr: true},
		{name: "prefix without slash", routes: ok(Conditions{PathPrefix: "v1"}), wantErr: true},
		{name: "unclean prefix", routes: ok(Conditions{PathPrefix: "/v1/../admin"}), wantErr: true},
		{name: "double slash prefix", routes: ok(Conditions{PathPrefix: "/v1//x"}), wantErr: true},
		{name: "bad method", routes: ok(Conditions{Methods: []string{"GE T"}}), wantErr: true},
		{name: "empty method", routes: ok(Conditions{Methods: []string{""}}), wantErr: true},
		{name: "bad header name", routes: ok(Conditions{Headers: map[string]string{"X A": "1"}}), wantErr: true},
		{name: "header twice by case", routes: ok(Conditions{Headers: map[string]string{"x-a": "1", "X-A": "2"}}), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := handlersFor(tt.routes)
			delete(hs, "nope")
			_, err := New(tt.routes, hs)
			if tt.wantErr != (err != nil) {
				t.Fatalf("New error = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrInvalidRoute) {
				t.Fatalf("error %v does not wrap ErrInvalidRoute", err)
			}
		})
	}
}

func TestRouteNamesAndCopies(t *testing.T) {
	routes := []Spec{
		{Upstream: "a", Match: Conditions{PathPrefix: "/a", Methods: []string{"GET"}}},
		{Name: "named", Upstream: "b"},
		{Upstream: "a", Match: Conditions{Host: "x.example"}},
	}
	tb := mustTable(t, routes)
	got := tb.Routes()
	want := []string{"route0", "named", "route2"}
	if len(got) != len(want) {
		t.Fatalf("Routes() has %d routes, want %d", len(got), len(want))
	}
	for i, rt := range got {
		if rt.Name != want[i] || rt.Index != i || rt.Upstream != routes[i].Upstream {
			t.Errorf("route %d = %s/%d/%s, want %s/%d/%s", i, rt.Name, rt.Index, rt.Upstream, want[i], i, routes[i].Upstream)
		}
		if rt.Handler() == nil {
			t.Errorf("route %d has no handler", i)
		}
	}
	// The table owns its copy of the config: editing the input later
	// changes nothing.
	routes[0].Match.Methods[0] = "POST"
	if m, ok := tb.Match(ViewOf(req{target: "/a"}.build())); !ok || m.Name != "route0" {
		t.Fatalf("after editing the config slice, GET /a = %v %v, want route0", m, ok)
	}
}

func TestServeHTTP(t *testing.T) {
	routes := []Spec{
		rt("api", Conditions{Host: "api.example.com", PathPrefix: "/v1"}),
	}
	tb := mustTable(t, routes)
	withInfo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, _ := reqinfo.With(r.Context())
		tb.ServeHTTP(w, r.WithContext(ctx))
	})
	tests := []struct {
		name       string
		handler    http.Handler
		host, path string
		wantStatus int
		wantBody   string
	}{
		{
			name: "routed with reqinfo", handler: withInfo, host: "api.example.com", path: "/v1/users",
			wantStatus: 200, wantBody: "upstream=u-api info.route=api info.upstream=u-api",
		},
		{
			name: "routed without reqinfo", handler: tb, host: "api.example.com", path: "/v1",
			wantStatus: 200, wantBody: "upstream=u-api info.route=- info.upstream=-",
		},
		{
			name: "no route", handler: withInfo, host: "api.example.com:8080", path: "/v2/x",
			wantStatus: 404, wantBody: "no route for api.example.com:8080/v2/x\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			r, err := http.NewRequest(http.MethodGet, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			r.Host = tt.host
			resp, err := srv.Client().Do(r)
			if err != nil {
				t.Fatalf("GET: %v", err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("read body: %v", err)
			}
			if resp.StatusCode != tt.wantStatus || string(body) != tt.wantBody {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
			if tt.wantStatus == 404 {
				if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
					t.Errorf("404 Content-Type = %q, want text/plain", ct)
				}
				if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
					t.Errorf("404 without X-Content-Type-Options: nosniff")
				}
			}
		})
	}
}

func TestServeHTTPNoRouteLeavesInfoEmpty(t *testing.T) {
	tb := mustTable(t, []Spec{rt("api", Conditions{Host: "api.example.com"})})
	ctx, in := reqinfo.With(t.Context())
	r := req{host: "other.example"}.build().WithContext(ctx)
	w := httptest.NewRecorder()
	tb.ServeHTTP(w, r)
	if w.Code != http.StatusNotFound || in.Route != "" || in.Upstream != "" {
		t.Fatalf("got %d route=%q upstream=%q, want 404 and empty info", w.Code, in.Route, in.Upstream)
	}
}

func TestMatchConcurrent(t *testing.T) {
	tb := mustTable(t, benchRoutes(100))
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 1000 {
				r := req{host: fmt.Sprintf("svc%d.example.com", (g+i)%10), target: fmt.Sprintf("/api/v%d/x", i%10)}.build()
				if _, ok := tb.Match(ViewOf(r)); !ok {
					t.Errorf("no match for %s%s", r.Host, r.URL.Path)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestCleanPath(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{name: "root", in: "/", want: "/"},
		{name: "clean", in: "/a/b", want: "/a/b"},
		{name: "trailing slash kept", in: "/a/b/", want: "/a/b/"},
		{name: "double slash", in: "/a//b", want: "/a/b"},
		{name: "double trailing slash", in: "/a//", want: "/a/"},
		{name: "dot", in: "/a/./b", want: "/a/b"},
		{name: "trailing dot", in: "/a/.", want: "/a"},
		{name: "dot dot", in: "/a/../b", want: "/b"},
		{name: "trailing dot dot", in: "/a/b/..", want: "/a"},
		{name: "dot dot slash", in: "/a/b/../", want: "/a/"},
		{name: "above root", in: "/../a", want: "/a"},
		{name: "dots in names are fine", in: "/a.b/..c/...", want: "/a.b/..c/..."},
		{name: "only slashes", in: "///", want: "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cleanPath(tt.in); got != tt.want {
				t.Fatalf("cleanPath(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// oracle is the slow, obviously correct definition of Match: filter the
// routes whose conditions hold, sort by the documented precedence, take the
// first.
func oracle(routes []Spec, r *http.Request) (int, bool) {
	host := requestHost(r.Host)
	p := r.URL.Path
	if p == "" {
		p = "/"
	}
	if strings.HasPrefix(p, "/") {
		c := path.Clean(p)
		if strings.HasSuffix(p, "/") && c != "/" {
			c += "/"
		}
		p = c
	}
	type cand struct{ idx, hostRank, suffix, prefix, methods, headers int }
	var cands []cand
	for i, cr := range routes {
		m := cr.Match
		c := cand{idx: i, hostRank: 2}
		if m.Host != "" {
			pat := strings.TrimSuffix(strings.ToLower(strings.Trim(m.Host, "[]")), ".")
			switch {
			case strings.Contains(pat, ":"):
				a, err1 := netip.ParseAddr(pat)
				b, err2 := netip.ParseAddr(host)
				if err1 != nil || err2 != nil || a != b.WithZone("") {
					continue
				}
				c.hostRank = 0
			case strings.HasPrefix(pat, "*."):
				suf := pat[1:]
				if !strings.HasSuffix(host, suf) || len(host) <= len(suf) || strings.Contains(host, ":") {
					continue
				}
				c.hostRank, c.suffix = 1, len(suf)
			default:
				if host != pat {
					continue
				}
				c.hostRank = 0
			}
		}
		if pp := m.PathPrefix; pp != "" {
			if !strings.HasPrefix(p, pp) {
				continue
			}
			if !strings.HasSuffix(pp, "/") && len(p) > len(pp) && p[len(pp)] != '/' {
				continue
			}
			c.prefix = len(pp)
		}
		if len(m.Methods) > 0 {
			if !slices.ContainsFunc(m.Methods, func(s string) bool { return strings.ToUpper(s) == r.Method }) {
				continue
			}
			c.methods = 1
		}
		okh := true
		for k, v := range m.Headers {
			if http.CanonicalHeaderKey(k) == "Host" {
				okh = okh && r.Host == v
			} else {
				okh = okh && slices.Contains(r.Header.Values(k), v)
			}
		}
		if !okh {
			continue
		}
		c.headers = len(m.Headers)
		cands = append(cands, c)
	}
	if len(cands) == 0 {
		return 0, false
	}
	best := slices.MinFunc(cands, func(a, b cand) int {
		return cmp.Or(
			cmp.Compare(a.hostRank, b.hostRank),
			cmp.Compare(b.suffix, a.suffix),
			cmp.Compare(b.prefix, a.prefix),
			cmp.Compare(b.methods, a.methods),
			cmp.Compare(b.headers, a.headers),
			cmp.Compare(a.idx, b.idx),
		)
	})
	return best.idx, true
}

// fuzzRoutes covers every kind of condition and overlaps on purpose.
func fuzzRoutes() []Spec {
	return []Spec{
		rt("default", Conditions{}),
		rt("root", Conditions{PathPrefix: "/"}),
		rt("v1", Conditions{PathPrefix: "/v1"}),
		rt("v1slash", Conditions{PathPrefix: "/v1/"}),
		rt("v1get", Conditions{PathPrefix: "/v1", Methods: []string{"GET", "head"}}),
		rt("v1hdr", Conditions{PathPrefix: "/v1", Headers: map[string]string{"X-A": "1"}}),
		rt("v1both", Conditions{PathPrefix: "/v1", Methods: []string{"POST"}, Headers: map[string]string{"X-A": "1", "X-B": "2"}}),
		rt("admin", Conditions{PathPrefix: "/admin/x"}),
		rt("api", Conditions{Host: "api.example.com"}),
		rt("apiv1", Conditions{Host: "api.example.com", PathPrefix: "/v1/users"}),
		rt("wild", Conditions{Host: "*.example.com"}),
		rt("wildeu", Conditions{Host: "*.eu.example.com", PathPrefix: "/v1"}),
		rt("wildget", Conditions{Host: "*.example.com", Methods: []string{"GET"}}),
		rt("v6", Conditions{Host: "[2001:db8::1]", PathPrefix: "/a"}),
		rt("v4", Conditions{Host: "192.0.2.1"}),
		rt("hosthdr", Conditions{Headers: map[string]string{"Host": "h.example"}}),
	}
}

func FuzzMatch(f *testing.F) {
	f.Add("api.example.com", "/v1/users/1", "GET", "1", "", "")
	f.Add("a.eu.example.com:80", "/v1/../admin/x", "POST", "2", "*.b.example.com", "/v1/x")
	f.Add("[2001:db8::1]:8080", "/a//b", "HEAD", "", "", "/a/")
	f.Add("API.EXAMPLE.COM.", "/v1%2F..", "get", "1", "api.example.com", "")
	f.Add("", "*", "OPTIONS", "", "[::1]", "/")
	f.Add("x.example.com", "/v1/./", "GET", "1", "x.example.com", "/v1/")
	f.Fuzz(func(t *testing.T, host, p, method, hv, extraHost, extraPrefix string) {
		routes := fuzzRoutes()
		extra := rt("extra", Conditions{Host: extraHost, PathPrefix: extraPrefix, Headers: map[string]string{"X-A": hv}})
		if _, err := New(append(slices.Clone(routes), extra), handlersFor(append(routes, extra))); err == nil {
			routes = append(routes, extra)
		}
		tb := mustTable(t, routes)
		r := &http.Request{
			Method: method,
			Host:   host,
			URL:    &url.URL{Path: p},
			Header: http.Header{"X-A": {hv}, "X-B": {"2"}},
		}
		got, ok := tb.Match(ViewOf(r))
		want, wantOK := oracle(routes, r)
		switch {
		case ok != wantOK:
			t.Fatalf("Match = %v, oracle = %v (route %d)", ok, wantOK, want)
		case ok && got.Index != want:
			t.Fatalf("Match = %s (%+v), oracle = %s (%+v)", got.Name, got.Match, routes[want].Name, routes[want].Match)
		}
	})
}

// benchRoutes builds n routes: hosts svc0..svc9.example.com, each with
// path prefixes /api/v<k>, some with methods, plus wildcards and a default.
func benchRoutes(n int) []Spec {
	var routes []Spec
	for i := 0; len(routes) < n-2; i++ {
		m := Conditions{
			Host:       fmt.Sprintf("svc%d.example.com", i%10),
			PathPrefix: fmt.Sprintf("/api/v%d", i/10),
		}
		if i%3 == 0 {
			m.Methods = []string{"GET"}
		}
		routes = append(routes, Spec{Name: fmt.Sprintf("r%d", i), Upstream: "u", Match: m})
	}
	routes = append(routes,
		Spec{Name: "wild", Upstream: "u", Match: Conditions{Host: "*.example.com"}},
		Spec{Name: "default", Upstream: "u"},
	)
	return routes
}

func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			tb := mustTable(b, benchRoutes(n))
			r := req{host: "svc7.example.com:8080", target: "/api/v3/users/42"}.build()
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := tb.Match(ViewOf(r)); !ok {
					b.Fatal("no match")
				}
			}
		})
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	tb := mustTable(t, benchRoutes(1000))
	for _, q := range []req{
		{host: "svc7.example.com:8080", target: "/api/v3/users/42"},
		{host: "other.example.com", target: "/x/"},
		{host: "[2001:db8::1]:80", target: "/"},
		{host: "nowhere.org", target: "/api"},
	} {
		r := q.build()
		if a := testing.AllocsPerRun(1000, func() { tb.Match(ViewOf(r)) }); a != 0 {
			t.Errorf("Match(%s%s) allocates %.1f times, want 0", q.host, q.target, a)
		}
	}
}

// Two routes to one upstream may differ in what wraps the upstream's
// handler (a cache on one only): Spec.Handler serves its route, the
// upstream's handler the others, and the upstream must still exist.
func TestSpecHandlerOverridesUpstreamHandler(t *testing.T) {
	wrapped := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "wrapped") })
	handlers := map[string]http.Handler{"web": upstreamHandler("web")}
	tests := []struct {
		name string
		path string
		want string
	}{
		{name: "route with its own handler", path: "/static/x", want: "wrapped"},
		{name: "route with the upstream's handler", path: "/api", want: "upstream=web info.route=api info.upstream=web"},
	}
	tb, err := New([]Spec{
		{Name: "static", Match: Conditions{PathPrefix: "/static"}, Upstream: "web", Handler: wrapped},
		{Name: "api", Upstream: "web"},
	}, handlers)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodGet, tt.path, nil)
			ctx, _ := reqinfo.With(r.Context())
			r = r.WithContext(ctx)
			tb.ServeHTTP(rec, r)
			if got := rec.Body.String(); got != tt.want {
				t.Fatalf("body %q, want %q", got, tt.want)
			}
		})
	}
	if _, err := New([]Spec{{Upstream: "nope", Handler: wrapped}}, handlers); !errors.Is(err, ErrInvalidRoute) {
		t.Fatalf("unknown upstream with a Handler: %v, want ErrInvalidRoute", err)
	}
}
