// Package route owns the routing table and the syntax of its conditions
// (host patterns, path prefixes, methods, header conditions): which route,
// and so which upstream's handler, serves a request. A Table is built once
// per config from []Spec and is immutable: a reload builds a new one.
// Matching works on a small protocol-free view (Request), so that a fast
// HTTP/1.1 path can use it; Table.ServeHTTP builds the view for net/http.
//
// It must not know how an upstream balances or forwards (packages balance
// and proxy), nor how configuration is loaded (package config calls its
// parsers): it only gets one http.Handler per upstream name.
package route

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/handoff-proxy/handoff/pkg/reqinfo"
)

// Spec describes one route to build (config.Route carries the same
// fields).
type Spec struct {
	// Name labels the route; empty means "route<N>" with N its index.
	Name string
	// Match conditions; all given conditions must hold.
	Match Conditions
	// Upstream names the handler the route sends to.
	Upstream string
	// Handler, when not nil, serves this route instead of the upstream's
	// handler (for example that handler wrapped in the route's cache,
	// when two routes to one upstream differ in cache settings). The
	// upstream must still have a handler, unless Upstream is empty (a
	// redirect or respond route).
	Handler http.Handler
}

// Conditions are the conditions of a route, as configured; see
// ParseHostPattern and ParsePathPrefix for their syntax.
type Conditions struct {
	// Host is an exact host or "*.suffix"; empty matches any host.
	Host string
	// PathPrefix matches on segment boundaries; empty matches any path.
	PathPrefix string
	// Methods, any of which matches; empty matches any method.
	Methods []string
	// Headers that must all be present with exactly these values.
	Headers map[string]string
}

// Request is the view of a request that matching needs. The zero value
// is a request for "/" with no host, method or headers.
type Request struct {
	// Host as received, port included (for HTTP/2 :authority, RFC 9113
	// §8.3.1).
	Host string
	// Path is the percent-decoded path.
	Path string
	// Method is the request method.
	Method string
	// Header holds the header fields by canonical name; nil means none.
	// net/http's Header is one.
	Header map[string][]string
}

// ViewOf returns the view of r, without allocating.
func ViewOf(r *http.Request) Request {
	return Request{Host: r.Host, Path: r.URL.Path, Method: r.Method, Header: r.Header}
}

// ErrInvalidRoute is wrapped by every error New returns for a route it
// cannot build, and by the errors of the Parse functions, for errors.Is.
var ErrInvalidRoute = errors.New("invalid route")

// Route is one entry of a Table. Callers must not modify it: the Table and
// every request share it.
type Route struct {
	// Name labels the route in metrics and logs: config.Route.Name, or
	// "route<N>" with N its index in the config list.
	Name string
	// Upstream is the name of the upstream the route sends to.
	Upstream string
	// Index is the position of the route in the config list; it breaks
	// ties between equally specific routes.
	Index int
	// Match is a copy of the configured conditions.
	Match Conditions

	handler  http.Handler
	host     string // normalized exact host or wildcard suffix (".example.com"); empty for any
	wildcard bool   // reports whether host is a wildcard suffix
	prefix   string // path prefix; empty for any
	methods  []string
	headers  []header
}

type header struct {
	name  string // canonical
	value string
}

// Handler is the handler of the route's upstream.
func (rt *Route) Handler() http.Handler { return rt.handler }

// group is the routes that share one host condition. Routes with a path
// prefix are found by prefix, so that a lookup costs one map access per
// path segment however many routes share the host.
type group struct {
	// byPrefix holds, per path prefix, its routes most specific first.
	byPrefix map[string][]*Route
	// hasLen[n] reports whether byPrefix has a prefix of length n, so
	// that lookups that cannot hit are skipped.
	hasLen []bool
	// anyPath holds the routes without a path prefix, most specific first.
	anyPath []*Route
}

// Table is an immutable routing table; it is safe for concurrent use.
type Table struct {
	routes   []*Route              // config order
	exact    map[string]*group     // by normalized host name
	ips      map[netip.Addr]*group // IPv6 literal hosts, compared as addresses
	wildcard map[string]*group     // by suffix with its leading dot, ".example.com"
	anyHost  *group
}

// New builds the table for routes; handlers holds one handler per upstream
// name. Every route's upstream must have a handler, route names must be
// unique, and every condition must be well formed (see ParseHostPattern,
// ParsePathPrefix, ParseMethod, ParseHeaderName); errors wrap
// ErrInvalidRoute.
func New(routes []Spec, handlers map[string]http.Handler) (*Table, error) {
	t := &Table{
		exact:    make(map[string]*group),
		ips:      make(map[netip.Addr]*group),
		wildcard: make(map[string]*group),
		anyHost:  &group{byPrefix: make(map[string][]*Route)},
	}
	names := make(map[string]int, len(routes))
	for i, cr := range routes {
		rt, err := build(i, cr, handlers)
		if err != nil {
			return nil, fmt.Errorf("route %d (%q): %w", i, cmp.Or(cr.Name, "route"+strconv.Itoa(i)), err)
		}
		if j, dup := names[rt.Name]; dup {
			return nil, fmt.Errorf("route %d: %w: name %q already used by route %d", i, ErrInvalidRoute, rt.Name, j)
		}
		names[rt.Name] = i
		t.routes = append(t.routes, rt)
		t.groupFor(rt).add(rt)
	}
	for _, g := range t.groups() {
		g.sort()
	}
	return t, nil
}

// build validates and normalizes one config route.
func build(i int, cr Spec, handlers map[string]http.Handler) (*Route, error) {
	h, ok := handlers[cr.Upstream]
	if cr.Handler != nil && cr.Upstream == "" {
		h, ok = cr.Handler, true // a route that answers itself names no upstream
	}
	if !ok || h == nil {
		return nil, fmt.Errorf("%w: no upstream %q", ErrInvalidRoute, cr.Upstream)
	}
	if cr.Handler != nil {
		h = cr.Handler
	}
	rt := &Route{
		Name:     cr.Name,
		Upstream: cr.Upstream,
		Index:    i,
		Match: Conditions{
			Host:       cr.Match.Host,
			PathPrefix: cr.Match.PathPrefix,
			Methods:    slices.Clone(cr.Match.Methods),
		},
		handler: h,
	}
	if rt.Name == "" {
		rt.Name = "route" + strconv.Itoa(i)
	}
	var err error
	if rt.host, rt.wildcard, err = ParseHostPattern(cr.Match.Host); err != nil {
		return nil, fmt.Errorf("host: %w", err)
	}
	if rt.prefix, err = ParsePathPrefix(cr.Match.PathPrefix); err != nil {
		return nil, fmt.Errorf("path_prefix: %w", err)
	}
	for _, m := range cr.Match.Methods {
		m, err := ParseMethod(m)
		if err != nil {
			return nil, err
		}
		rt.methods = append(rt.methods, m)
	}
	if len(cr.Match.Headers) > 0 {
		rt.Match.Headers = make(map[string]string, len(cr.Match.Headers))
	}
	for name, value := range cr.Match.Headers {
		canon, err := ParseHeaderName(name)
		if err != nil {
			return nil, err
		}
		rt.Match.Headers[name] = value
		rt.headers = append(rt.headers, header{name: canon, value: value})
	}
	slices.SortFunc(rt.headers, func(a, b header) int { return strings.Compare(a.name, b.name) })
	for j := 1; j < len(rt.headers); j++ {
		if rt.headers[j].name == rt.headers[j-1].name {
			return nil, fmt.Errorf("%w: header %q given twice", ErrInvalidRoute, rt.headers[j].name)
		}
	}
	return rt, nil
}

func (t *Table) groupFor(rt *Route) *group {
	switch {
	case rt.host == "":
		return t.anyHost
	case rt.wildcard:
		return groupIn(t.wildcard, rt.host)
	case strings.Contains(rt.host, ":"):
		return groupIn(t.ips, netip.MustParseAddr(rt.host)) // validated by ParseHostPattern
	default:
		return groupIn(t.exact, rt.host)
	}
}

// groupIn returns m[k], creating it when missing.
func groupIn[K comparable](m map[K]*group, k K) *group {
	g, ok := m[k]
	if !ok {
		g = &group{byPrefix: make(map[string][]*Route)}
		m[k] = g
	}
	return g
}

func (t *Table) groups() []*group {
	out := []*group{t.anyHost}
	for _, m := range []map[string]*group{t.exact, t.wildcard} {
		for _, g := range m {
			out = append(out, g)
		}
	}
	for _, g := range t.ips {
		out = append(out, g)
	}
	return out
}

func (g *group) add(rt *Route) {
	if rt.prefix == "" {
		g.anyPath = append(g.anyPath, rt)
		return
	}
	g.byPrefix[rt.prefix] = append(g.byPrefix[rt.prefix], rt)
	if n := len(rt.prefix); n >= len(g.hasLen) {
		g.hasLen = append(g.hasLen, make([]bool, n+1-len(g.hasLen))...)
	}
	g.hasLen[len(rt.prefix)] = true
}

// lookup returns the routes with prefix exactly p.
func (g *group) lookup(p string) []*Route {
	if len(p) >= len(g.hasLen) || !g.hasLen[len(p)] {
		return nil
	}
	return g.byPrefix[p]
}

// sort orders the routes of each prefix, and those without one, most
// specific first (see bySpecificity).
func (g *group) sort() {
	for _, rs := range g.byPrefix {
		slices.SortFunc(rs, bySpecificity)
	}
	slices.SortFunc(g.anyPath, bySpecificity)
}

// bySpecificity orders routes that share host and path prefix: those with
// method conditions first, then those with more header conditions, then
// config order.
func bySpecificity(a, b *Route) int {
	if am, bm := len(a.methods) > 0, len(b.methods) > 0; am != bm {
		if am {
			return -1
		}
		return 1
	}
	if c := cmp.Compare(len(b.headers), len(a.headers)); c != 0 {
		return c
	}
	return cmp.Compare(a.Index, b.Index)
}

// Routes returns the routes in config order.
func (t *Table) Routes() []*Route { return slices.Clone(t.routes) }

// Match returns the most specific route whose conditions all hold for v,
// and whether there is one. Precedence: an exact host beats a wildcard
// host, a longer wildcard suffix beats a shorter one, any wildcard beats no
// host condition; then a longer path prefix wins; then a route with method
// conditions; then one with more header conditions; then the route listed
// first.
//
// The host is v.Host (for HTTP/2 the :authority pseudo-header, RFC 9113
// §8.3.1) without port, brackets or trailing dot, compared
// case-insensitively (RFC 9110 §4.2.3). The path is v.Path, already
// percent-decoded, cleaned of "." and ".." segments and repeated slashes
// with a trailing slash kept, so that "/v1/../admin" and "/v1%2F.." never
// match "/v1".
func (t *Table) Match(v Request) (*Route, bool) {
	r := &v
	host := requestHost(r.Host)
	p := r.Path
	if p == "" {
		p = "/"
	}
	if p[0] == '/' {
		p = cleanPath(p)
	}
	if host != "" {
		if strings.IndexByte(host, ':') >= 0 {
			if a, err := netip.ParseAddr(host); err == nil {
				if rt := t.ips[a.WithZone("")].match(r, p); rt != nil {
					return rt, true
				}
			}
		} else {
			if rt := t.exact[host].match(r, p); rt != nil {
				return rt, true
			}
			if len(t.wildcard) > 0 {
				// Left to right over the dots: the longest suffix first,
				// and only suffixes with at least one label in front.
				for i := 1; i < len(host); i++ {
					if host[i] != '.' {
						continue
					}
					if rt := t.wildcard[host[i:]].match(r, p); rt != nil {
						return rt, true
					}
				}
			}
		}
	}
	if rt := t.anyHost.match(r, p); rt != nil {
		return rt, true
	}
	return nil, false
}

// match returns the first route of g matching r, whose cleaned path is p.
// Only prefixes that end where p has a segment boundary can match, so it
// looks them up longest first: for "/a/b" the prefixes "/a/b", "/a/",
// "/a" and "/". A nil group matches nothing.
func (g *group) match(r *Request, p string) *Route {
	if g == nil {
		return nil
	}
	if len(g.byPrefix) > 0 && p[0] == '/' {
		if rt := first(g.lookup(p), r); rt != nil {
			return rt
		}
		// No prefix is longer than len(g.hasLen)-1: start there.
		for i := min(len(p), len(g.hasLen)) - 1; i >= 0; i-- {
			if p[i] != '/' {
				continue
			}
			if i+1 < len(p) { // p itself was looked up above
				if rt := first(g.lookup(p[:i+1]), r); rt != nil {
					return rt
				}
			}
			if i > 0 {
				if rt := first(g.lookup(p[:i]), r); rt != nil {
					return rt
				}
			}
		}
	}
	return first(g.anyPath, r)
}

// first returns the first route of rs whose method and header conditions
// hold for r.
func first(rs []*Route, r *Request) *Route {
	for _, rt := range rs {
		if rt.methodMatches(r.Method) && rt.headersMatch(r) {
			return rt
		}
	}
	return nil
}

func (rt *Route) methodMatches(m string) bool {
	return len(rt.methods) == 0 || slices.Contains(rt.methods, m)
}

// headersMatch reports whether every header condition holds: one of the
// header's field lines has exactly the value. Host is not in r.Header (Go
// moves it to r.Host), so a Host condition compares r.Host.
func (rt *Route) headersMatch(r *Request) bool {
	for _, h := range rt.headers {
		if h.name == "Host" {
			if r.Host != h.value {
				return false
			}
			continue
		}
		if !slices.Contains(r.Header[h.name], h.value) {
			return false
		}
	}
	return true
}

// ServeHTTP sends r to the handler of the route it matches, after noting
// the route and upstream in the request's reqinfo.Info if it has one. A
// request no route matches gets 404 with a one-line text body.
func (t *Table) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt, ok := t.Match(ViewOf(r))
	if !ok {
		// http.Error sends text/plain with nosniff: the body echoes the
		// request and must never be taken for HTML.
		http.Error(w, "no route for "+r.Host+r.URL.Path, http.StatusNotFound)
		return
	}
	if in := reqinfo.From(r.Context()); in != nil {
		in.Route = rt.Name
		in.Upstream = rt.Upstream
	}
	rt.handler.ServeHTTP(w, r)
}

// requestHost normalizes a Host header value (RFC 9110 §7.2: uri-host
// [":" port]): the port is dropped, an IPv6 literal loses its brackets, a
// trailing dot is dropped and ASCII letters are lowered.
func requestHost(h string) string {
	if h == "" {
		return ""
	}
	if h[0] == '[' {
		if i := strings.IndexByte(h, ']'); i > 0 {
			h = h[1:i]
		}
	} else if i := strings.IndexByte(h, ':'); i >= 0 && strings.IndexByte(h[i+1:], ':') < 0 {
		h = h[:i] // one colon: host:port; more: a bare IPv6 literal
	}
	h = strings.TrimSuffix(h, ".")
	return strings.ToLower(h) // returns h itself when it has no upper case
}

// cleanPath is path.Clean keeping a trailing slash, so that "/v1/" still
// differs from "/v1". It returns p itself, without allocating, when p is
// already clean. p must start with "/".
func cleanPath(p string) string {
	if isClean(p) {
		return p
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

// isClean reports whether the rooted path p has no empty, "." or ".."
// segment (a trailing slash is allowed).
func isClean(p string) bool {
	start := 1
	for i := 1; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			continue
		}
		seg := p[start:i]
		if (seg == "" && i < len(p)) || seg == "." || seg == ".." {
			return false
		}
		start = i + 1
	}
	return true
}
