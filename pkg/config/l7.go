package config

import (
	"cmp"
	"errors"
	"time"

	"github.com/handoff-proxy/handoff/pkg/compression"
	"github.com/handoff-proxy/handoff/pkg/rewrite"
)

// RouteHeaders edits a route's request header before it is forwarded
// and its response header before it is answered (l7).
type RouteHeaders struct {
	// Request edits what the upstream receives. Nil means none.
	Request *HeaderOps `koanf:"request" json:"request,omitempty" yaml:"request,omitempty"`
	// Response edits what the client receives. Nil means none.
	Response *HeaderOps `koanf:"response" json:"response,omitempty" yaml:"response,omitempty"`
}

// HeaderOps are header edits, applied remove, then set, then add. Values
// may name {client_ip}, {host} (or {hostname}), {hostport}, {request_id},
// {scheme} and, with tls.client_auth, {client_cert_subject},
// {client_cert_san} and {client_cert_fingerprint};
// CR, LF and other control bytes are refused at load and dropped from
// expanded values.
type HeaderOps struct {
	// Set replaces every value of each field. Empty means none.
	Set map[string]string `koanf:"set" json:"set,omitempty" yaml:"set,omitempty"`
	// Add appends one value to each field. Empty means none.
	Add map[string]string `koanf:"add" json:"add,omitempty" yaml:"add,omitempty"`
	// Remove deletes each field. Empty means none.
	Remove []string `koanf:"remove" json:"remove,omitempty" yaml:"remove,omitempty"`
}

// Spec is o as the rewrite package takes it.
func (o *HeaderOps) Spec() rewrite.HeaderSpec {
	if o == nil {
		return rewrite.HeaderSpec{}
	}
	return rewrite.HeaderSpec{Set: o.Set, Add: o.Add, Remove: o.Remove}
}

// RouteRedirect makes a route answer with a redirect itself.
type RouteRedirect struct {
	// To is the Location, a template over the header variables and
	// {uri} (escaped path and query), {path}, {query}. Required.
	To string `koanf:"to" json:"to" yaml:"to"`
	// Status is 301, 302, 303, 307 or 308. Zero means 308.
	Status int `koanf:"status" json:"status,omitempty" yaml:"status,omitempty"`
}

// RouteRewrite replaces a route's path when an RE2 expression matches.
type RouteRewrite struct {
	// Match is matched against the escaped path. Required.
	Match string `koanf:"match" json:"match" yaml:"match"`
	// To replaces the whole path, with $1 or ${name} from Match's groups.
	To string `koanf:"to" json:"to" yaml:"to"`
}

// RouteRespond makes a route answer with a fixed response itself.
type RouteRespond struct {
	// Status is 200-599. Zero means 200.
	Status int `koanf:"status" json:"status,omitempty" yaml:"status,omitempty"`
	// Body is sent as is; text/plain unless Headers set Content-Type.
	Body string `koanf:"body" json:"body,omitempty" yaml:"body,omitempty"`
	// Headers are set on the response (no variables). Empty means none.
	Headers map[string]string `koanf:"headers" json:"headers,omitempty" yaml:"headers,omitempty"`
}

// RouteTimeouts override, for one route, the server's and the upstream's
// timeouts.
type RouteTimeouts struct {
	// ResponseHeader bounds the wait for response headers after the
	// request was written. It can only shorten the upstream's
	// timeouts.response_header (the connection's own limit), so a longer
	// value is refused. Zero means the upstream's.
	ResponseHeader time.Duration `koanf:"response_header" json:"response_header,omitempty" yaml:"response_header,omitempty"`
	// Request bounds the whole request, response body included, in
	// place of timeouts.request (longer or shorter). Zero means that one.
	Request time.Duration `koanf:"request" json:"request,omitempty" yaml:"request,omitempty"`
}

// RouteCompress compresses a route's responses for clients that accept
// it: compressible types only, never twice, never ranges or no-transform.
type RouteCompress struct {
	// Codings offered, in order of preference: zstd, br (brotli), gzip.
	// Empty means all three, in that order.
	Codings []string `koanf:"codings" json:"codings,omitempty" yaml:"codings,omitempty"`
	// MinSize is the smallest body compressed, in bytes. Zero means 1024.
	MinSize int `koanf:"min_size" json:"min_size,omitempty" yaml:"min_size,omitempty"`
}

// AnswersItself reports whether the route answers without an upstream
// (redirect or respond), so that routes[].upstream may be empty.
func (r Route) AnswersItself() bool { return r.Redirect != nil || r.Respond != nil }

// PathSpec is the route's path rewrite as the rewrite package takes it.
func (r Route) PathSpec() rewrite.PathSpec {
	s := rewrite.PathSpec{StripPrefix: r.StripPrefix, AddPrefix: r.AddPrefix}
	if r.Rewrite != nil {
		s.Match, s.To = r.Rewrite.Match, r.Rewrite.To
	}
	return s
}

// l7 checks the header edits, redirects, rewrites and static responses of
// every route with the parsers the server uses.
func (v *validator) l7(c *Config) {
	for i, l := range c.Listeners {
		rd := l.Redirect
		if rd == nil {
			continue
		}
		key := joinKey(indexKey("listeners", i), "redirect")
		if l.Protocol != "" && l.Protocol != ProtocolHTTP && l.Protocol != ProtocolHTTPS {
			v.errs.add(key, "only for protocols http and https")
		} else if _, err := rewrite.ParseRedirect(rd.To, rd.Status); err != nil {
			v.errs.addErr(key, "invalid", err)
		}
	}
	for i, r := range c.Routes {
		key := indexKey("routes", i)
		if h := r.Headers; h != nil {
			v.headerOps(joinKey(key, "headers.request"), h.Request)
			v.headerOps(joinKey(key, "headers.response"), h.Response)
		}
		if _, err := rewrite.ParsePath(r.PathSpec()); err != nil {
			var pe *rewrite.PathError
			errors.As(err, &pe)
			v.errs.addErr(joinKey(key, pe.Key), "invalid", pe.Err)
		}
		if rd := r.Redirect; rd != nil {
			if _, err := rewrite.ParseRedirect(rd.To, rd.Status); err != nil {
				v.errs.addErr(joinKey(key, "redirect"), "invalid", err)
			}
		}
		if rs := r.Respond; rs != nil {
			if _, err := rewrite.ParseStatic(rs.Status, rs.Body, rs.Headers); err != nil {
				v.errs.addErr(joinKey(key, "respond"), "invalid", err)
			}
		}
		v.routeTimeouts(c, key, r)
		if rc := r.Compress; rc != nil {
			if _, err := compression.New(compression.Options{Codings: rc.Codings, MinSize: rc.MinSize}); err != nil {
				v.errs.addErr(joinKey(key, "compress.codings"), "invalid", err)
			}
		}
		switch {
		case r.Redirect != nil && r.Respond != nil:
			v.errs.add(joinKey(key, "redirect"), "a route either redirects or responds, not both")
		case r.AnswersItself() && (r.Cache != nil || r.Mirror != nil):
			v.errs.add(key, "a route that redirects or responds itself cannot also cache or mirror")
		}
	}
}

func (v *validator) headerOps(key string, o *HeaderOps) {
	if o == nil {
		return
	}
	if _, err := rewrite.ParseHeaders(o.Spec()); err != nil {
		var he *rewrite.HeaderError
		errors.As(err, &he)
		v.errs.addErr(joinKey(key, he.Key), "invalid", he.Err)
	}
}

// routeTimeouts checks that a route's response_header is within its
// upstream's, which the transport enforces on the connection anyway.
func (v *validator) routeTimeouts(c *Config, key string, r Route) {
	if r.Timeouts == nil || r.Timeouts.ResponseHeader <= 0 {
		return
	}
	up, ok := c.Upstreams[r.Upstream]
	if !ok {
		return // routes() reports it
	}
	limit := cmp.Or(up.Timeouts.ResponseHeader, defaultResponseHeader)
	if r.Timeouts.ResponseHeader > limit {
		v.errs.add(joinKey(key, "timeouts.response_header"), "%s is longer than upstream %q's timeouts.response_header (%s), which bounds it: raise that one",
			r.Timeouts.ResponseHeader, r.Upstream, limit)
	}
}
