package server

// Header edits, path rewrites, redirects, static responses and limits
// (routes[].headers, strip_prefix, add_prefix, rewrite, redirect,
// respond, timeouts, max_request_body, compress) as the server wires them: per route, between the policies and
// the mirror (route table → access → rate_limit → auth → l7 → mirror →
// cache → proxy), so that a redirect or static answer is only given to
// requests the policies let through, and the mirror, the cache and the
// upstream all see the rewritten request. The decisions live in
// pkg/rewrite; this file only computes the variables from the request.

import (
	"fmt"
	"net/http"

	"github.com/handoff-proxy/handoff/pkg/clientcert"
	"github.com/handoff-proxy/handoff/pkg/clientip"
	"github.com/handoff-proxy/handoff/pkg/compression"
	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/proxy"
	"github.com/handoff-proxy/handoff/pkg/reqinfo"
	"github.com/handoff-proxy/handoff/pkg/rewrite"
	"github.com/handoff-proxy/handoff/pkg/route"
)

// routeL7 is one route's parsed l7 configuration.
type routeL7 struct {
	trusted       clientip.Trusted
	reqH, respH   rewrite.Headers
	path          rewrite.Path
	redirect      *rewrite.Redirect
	static        *rewrite.Static
	limits        proxy.Limits // zero when the route overrides none
	compress      *compression.Compressor
	needRequestID bool
}

// wrapL7 puts the l7 edits of each route of cfg in front of its handler
// (specs[i].Handler when the cache or mirror set it, else the upstream's).
func wrapL7(cfg *config.Config, specs []route.Spec, handlers map[string]http.Handler, trusted clientip.Trusted) error {
	for i, rc := range cfg.Routes {
		if rc.Headers == nil && !rc.AnswersItself() && rc.PathSpec() == (rewrite.PathSpec{}) &&
			rc.Timeouts == nil && rc.MaxRequestBody == 0 && rc.Compress == nil {
			continue
		}
		l, err := parseL7(rc)
		if err != nil {
			return fmt.Errorf("route %q: %w", routeName(rc, i), err) // validated already
		}
		l.trusted = trusted
		h := specs[i].Handler
		if h == nil {
			h = handlers[rc.Upstream]
		}
		if h == nil && !rc.AnswersItself() {
			continue // route.New reports the unknown upstream
		}
		specs[i].Handler = l.handler(h)
	}
	return nil
}

// listenerRedirect answers every request with the redirect of
// listeners[].redirect, with the same variables as a route's redirect.
func listenerRedirect(rd *config.RouteRedirect, trusted clientip.Trusted) (http.Handler, error) {
	r, err := rewrite.ParseRedirect(rd.To, rd.Status)
	if err != nil {
		return nil, err
	}
	l := &routeL7{trusted: trusted, redirect: &r, needRequestID: r.Uses(rewrite.VarRequestID)}
	return l.handler(nil), nil
}

func routeName(rc config.Route, i int) string {
	if rc.Name != "" {
		return rc.Name
	}
	return fmt.Sprintf("route%d", i)
}

func parseL7(rc config.Route) (*routeL7, error) {
	l := &routeL7{}
	var err error
	if rc.Headers != nil {
		if l.reqH, err = rewrite.ParseHeaders(rc.Headers.Request.Spec()); err != nil {
			return nil, fmt.Errorf("headers.request: %w", err)
		}
		if l.respH, err = rewrite.ParseHeaders(rc.Headers.Response.Spec()); err != nil {
			return nil, fmt.Errorf("headers.response: %w", err)
		}
	}
	if l.path, err = rewrite.ParsePath(rc.PathSpec()); err != nil {
		return nil, err
	}
	if rd := rc.Redirect; rd != nil {
		r, err := rewrite.ParseRedirect(rd.To, rd.Status)
		if err != nil {
			return nil, fmt.Errorf("redirect: %w", err)
		}
		l.redirect = &r
	}
	if rs := rc.Respond; rs != nil {
		s, err := rewrite.ParseStatic(rs.Status, rs.Body, rs.Headers)
		if err != nil {
			return nil, fmt.Errorf("respond: %w", err)
		}
		l.static = &s
	}
	if cc := rc.Compress; cc != nil {
		if l.compress, err = compression.New(compression.Options{Codings: cc.Codings, MinSize: cc.MinSize}); err != nil {
			return nil, fmt.Errorf("compress: %w", err)
		}
	}
	l.limits.MaxRequestBody = rc.MaxRequestBody
	if t := rc.Timeouts; t != nil {
		l.limits.RequestTimeout, l.limits.ResponseHeader = t.Request, t.ResponseHeader
	}
	l.needRequestID = l.reqH.Uses(rewrite.VarRequestID) || l.respH.Uses(rewrite.VarRequestID) ||
		l.redirect != nil && l.redirect.Uses(rewrite.VarRequestID)
	return l, nil
}

func (l *routeL7) handler(next http.Handler) http.Handler {
	if l.compress != nil {
		next = l.compress.Handler(next) // inside the response header edits, which see its Vary
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		vars := l.vars(r)
		if !l.respH.Empty() {
			w = &headerWriter{ResponseWriter: w, h: l.respH, vars: vars}
		}
		switch {
		case l.static != nil:
			l.static.Serve(w, r)
			return
		case l.redirect != nil:
			to, status := l.redirect.Target(vars)
			w.Header().Set("Location", to)
			w.WriteHeader(status)
			return
		}
		if !l.path.Empty() {
			// A copy: the outer layers (access log, metrics) share r.URL
			// and keep reporting what the client asked for; the
			// forwarder builds the outgoing URL from the copy.
			u := *r.URL
			if l.path.RewriteURL(&u) {
				r = r.WithContext(r.Context())
				r.URL, r.RequestURI = &u, u.RequestURI()
			}
		}
		l.reqH.Apply(r.Header, vars)
		if l.limits != (proxy.Limits{}) {
			r = r.WithContext(proxy.WithLimits(r.Context(), l.limits))
		}
		next.ServeHTTP(w, r)
	})
}

// vars computes the variables of one request lazily. The request id is
// fixed first when a template uses it, so that the forwarder sends the
// same one and the access log has it (as stampCached does).
func (l *routeL7) vars(r *http.Request) rewrite.Vars {
	var id string
	if l.needRequestID {
		id = proxy.RequestID(r.Header)
		r.Header["X-Request-Id"] = []string{id}
		if in := reqinfo.From(r.Context()); in != nil {
			in.RequestID = id
		}
	}
	uri := r.URL.RequestURI()
	return func(name string) string {
		switch name {
		case rewrite.VarClientIP:
			if ip := l.trusted.ClientIP(clientip.Peer(r.RemoteAddr), r.Header["X-Forwarded-For"]); ip.IsValid() {
				return ip.String()
			}
			return ""
		case rewrite.VarHost, rewrite.VarHostname:
			return rewrite.HostOnly(r.Host)
		case rewrite.VarHostPort:
			return r.Host
		case rewrite.VarRequestID:
			return id
		case rewrite.VarScheme:
			if r.TLS != nil {
				return "https"
			}
			return "http"
		case rewrite.VarURI:
			return uri
		case rewrite.VarPath:
			return r.URL.EscapedPath()
		case rewrite.VarQuery:
			return r.URL.RawQuery
		case rewrite.VarClientCertSubject:
			return clientcert.Subject(r.TLS)
		case rewrite.VarClientCertSAN:
			return clientcert.SANs(r.TLS)
		case rewrite.VarClientCertFingerprint:
			return clientcert.Fingerprint(r.TLS)
		}
		return ""
	}
}

// headerWriter applies response header edits just before the final
// header goes out; informational (1xx) responses pass untouched.
type headerWriter struct {
	http.ResponseWriter
	h     rewrite.Headers
	vars  rewrite.Vars
	wrote bool
}

func (w *headerWriter) WriteHeader(code int) {
	if !w.wrote && code >= 200 {
		w.wrote = true
		w.h.Apply(w.ResponseWriter.Header(), w.vars)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *headerWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Flush keeps streaming (SSE) working through the edits.
func (w *headerWriter) Flush() {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach Hijack and deadlines.
func (w *headerWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
