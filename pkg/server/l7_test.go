package server

import (
	"cmp"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/config"
)

// echoURIBackend answers with the request URI and headers it got.
func echoURIBackend(t *testing.T) *httptest.Server {
	t.Helper()
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "backend")
		w.Header().Set("X-Backend-Uri", r.RequestURI)
		w.Header().Set("X-Got-Env", r.Header.Get("X-Env"))
		w.Header().Set("X-Got-Client", r.Header.Get("X-Client"))
		w.Header().Set("X-Got-Id", r.Header.Get("X-Id")+"|"+r.Header.Get("X-Request-Id"))
		w.Header().Set("X-Got-Cookie", r.Header.Get("Cookie"))
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(b.Close)
	return b
}

func TestL7(t *testing.T) {
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	tests := []struct {
		name   string
		route  func(*config.Route)
		uri    string
		status int
		want   map[string]string // response header fields
		body   string
	}{
		{name: "request and response headers", uri: "/x",
			route: func(r *config.Route) {
				r.Headers = &config.RouteHeaders{
					Request: &config.HeaderOps{Set: map[string]string{"X-Env": "prod {scheme}", "X-Client": "{client_ip}", "X-Id": "{request_id}"},
						Remove: []string{"Cookie"}},
					Response: &config.HeaderOps{Set: map[string]string{"X-Served-By": "{host}"}, Remove: []string{"Server"},
						Add: map[string]string{"X-Frame-Options": "DENY"}},
				}
			},
			status: 200, body: "ok",
			want: map[string]string{"X-Got-Env": "prod http", "X-Got-Client": "127.0.0.1", "X-Got-Cookie": "",
				"X-Served-By": "127.0.0.1", "Server": "", "X-Frame-Options": "DENY"}},
		{name: "strip prefix keeps query and escapes", uri: "/api/a%2Fb/c?q=%2F&r",
			route:  func(r *config.Route) { r.StripPrefix = "/api" },
			status: 200, want: map[string]string{"X-Backend-Uri": "/a%2Fb/c?q=%2F&r"}},
		{name: "add prefix", uri: "/x?y=1",
			route:  func(r *config.Route) { r.AddPrefix = "/v2/" },
			status: 200, want: map[string]string{"X-Backend-Uri": "/v2/x?y=1"}},
		{name: "regex rewrite", uri: "/old/p%20q?k=v",
			route:  func(r *config.Route) { r.Rewrite = &config.RouteRewrite{Match: "^/old/(.*)", To: "/new/$1"} },
			status: 200, want: map[string]string{"X-Backend-Uri": "/new/p%20q?k=v"}},
		{name: "redirect", uri: "/a%2Fb?x=1",
			route: func(r *config.Route) {
				r.Upstream = ""
				r.Redirect = &config.RouteRedirect{To: "https://{host}{uri}"}
			},
			status: 308, want: map[string]string{"Location": "https://127.0.0.1/a%2Fb?x=1"}},
		{name: "respond", uri: "/anything",
			route: func(r *config.Route) {
				r.Upstream = ""
				r.Respond = &config.RouteRespond{Status: 503, Body: "maintenance", Headers: map[string]string{"Retry-After": "60"}}
				r.Headers = &config.RouteHeaders{Response: &config.HeaderOps{Set: map[string]string{"X-Id": "{request_id}"}}}
			},
			status: 503, body: "maintenance", want: map[string]string{"Retry-After": "60", "Content-Type": "text/plain; charset=utf-8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := echoURIBackend(t)
			cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, hostOf(b))
			tt.route(&cfg.Routes[0])
			if err := cfg.Validate([]string{"http"}); err != nil {
				t.Fatal(err)
			}
			r := serve(t, cfg, nil)
			req, _ := http.NewRequest("GET", "http://"+r.addrs["http"]+tt.uri, nil)
			req.Header.Set("Cookie", "secret=1")
			resp, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tt.status, body)
			}
			if tt.body != "" && string(body) != tt.body {
				t.Errorf("body %q, want %q", body, tt.body)
			}
			for k, v := range tt.want {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if id := resp.Header.Get("X-Got-Id"); id != "" && tt.name == "request and response headers" {
				if p := strings.Split(id, "|"); p[0] == "" || p[0] != p[1] {
					t.Errorf("{request_id} %q differs from the forwarded X-Request-Id %q", p[0], p[1])
				}
			}
		})
	}
}

func TestL7ConfigErrors(t *testing.T) {
	tests := []struct {
		name  string
		route func(*config.Route)
		key   string
	}{
		{name: "crlf in request header", key: "routes[0].headers.request.set.X-A",
			route: func(r *config.Route) {
				r.Headers = &config.RouteHeaders{Request: &config.HeaderOps{Set: map[string]string{"X-A": "a\r\nInjected: 1"}}}
			}},
		{name: "bad response header name", key: "routes[0].headers.response.add.X B",
			route: func(r *config.Route) {
				r.Headers = &config.RouteHeaders{Response: &config.HeaderOps{Add: map[string]string{"X B": "v"}}}
			}},
		{name: "bad regex", key: "routes[0].rewrite.match",
			route: func(r *config.Route) { r.Rewrite = &config.RouteRewrite{Match: "(", To: "/"} }},
		{name: "missing group", key: "routes[0].rewrite.to",
			route: func(r *config.Route) { r.Rewrite = &config.RouteRewrite{Match: "^/(a)", To: "/$3"} }},
		{name: "relative strip", key: "routes[0].strip_prefix", route: func(r *config.Route) { r.StripPrefix = "api" }},
		{name: "redirect status", key: "routes[0].redirect",
			route: func(r *config.Route) { r.Redirect = &config.RouteRedirect{To: "/x", Status: 200} }},
		{name: "respond crlf header", key: "routes[0].respond",
			route: func(r *config.Route) { r.Respond = &config.RouteRespond{Headers: map[string]string{"X": "\n"}} }},
		{name: "no upstream without redirect", key: "routes[0].upstream", route: func(r *config.Route) { r.Upstream = "" }},
		{name: "unknown coding", key: "routes[0].compress.codings",
			route: func(r *config.Route) { r.Compress = &config.RouteCompress{Codings: []string{"lzw"}} }},
		{name: "respond and cache", key: "routes[0]",
			route: func(r *config.Route) { r.Respond = &config.RouteRespond{}; r.Cache = &config.RouteCache{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, "127.0.0.1:1")
			tt.route(&cfg.Routes[0])
			err := cfg.Validate([]string{"http"})
			if err == nil || !strings.Contains(err.Error(), tt.key+":") {
				t.Fatalf("err = %v, want one naming %s", err, tt.key)
			}
		})
	}
}

// timingBackend answers /hang never (until the request ends), /late after
// 300ms, /trickle with headers at once and the body 300ms later, and
// anything else at once with the size of the body it read.
func timingBackend(t *testing.T) *httptest.Server {
	t.Helper()
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		wait := func() {
			select {
			case <-time.After(300 * time.Millisecond):
			case <-r.Context().Done():
			}
		}
		switch r.URL.Path {
		case "/hang":
			<-r.Context().Done()
			return
		case "/late":
			wait()
		case "/trickle":
			w.WriteHeader(http.StatusOK)
			http.NewResponseController(w).Flush()
			wait()
		}
		fmt.Fprintf(w, "read %d", n)
	}))
	t.Cleanup(b.Close)
	return b
}

func TestL7Limits(t *testing.T) {
	tests := []struct {
		name   string
		global func(*config.Config)
		route  func(*config.Route)
		method string
		path   string
		body   int
		status int
	}{
		{name: "route request timeout", path: "/hang", status: 504,
			route: func(r *config.Route) { r.Timeouts = &config.RouteTimeouts{Request: 100 * time.Millisecond} }},
		{name: "route request timeout longer than the server's", path: "/late", status: 200,
			global: func(c *config.Config) { c.Timeouts.Request = 50 * time.Millisecond },
			route:  func(r *config.Route) { r.Timeouts = &config.RouteTimeouts{Request: 10 * time.Second} }},
		{name: "server request timeout without override", path: "/late", status: 504,
			global: func(c *config.Config) { c.Timeouts.Request = 50 * time.Millisecond },
			route:  func(r *config.Route) {}},
		{name: "route response_header", path: "/hang", status: 504,
			route: func(r *config.Route) { r.Timeouts = &config.RouteTimeouts{ResponseHeader: 100 * time.Millisecond} }},
		{name: "response_header stops at headers", path: "/trickle", status: 200,
			route: func(r *config.Route) { r.Timeouts = &config.RouteTimeouts{ResponseHeader: 100 * time.Millisecond} }},
		{name: "route body limit", method: "POST", path: "/", body: 20, status: 413,
			route: func(r *config.Route) { r.MaxRequestBody = 10 }},
		{name: "route body limit above the server's", method: "POST", path: "/", body: 50, status: 200,
			global: func(c *config.Config) { c.Limits.MaxRequestBody = 10 },
			route:  func(r *config.Route) { r.MaxRequestBody = 100 }},
		{name: "server body limit without override", method: "POST", path: "/", body: 50, status: 413,
			global: func(c *config.Config) { c.Limits.MaxRequestBody = 10 },
			route:  func(r *config.Route) { r.Headers = &config.RouteHeaders{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := timingBackend(t)
			cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, hostOf(b))
			if tt.global != nil {
				tt.global(cfg)
			}
			tt.route(&cfg.Routes[0])
			if err := cfg.Validate([]string{"http"}); err != nil {
				t.Fatal(err)
			}
			r := serve(t, cfg, nil)
			req, _ := http.NewRequest(cmp.Or(tt.method, "GET"), "http://"+r.addrs["http"]+tt.path,
				strings.NewReader(strings.Repeat("x", tt.body)))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tt.status, body)
			}
			if tt.status == 200 && (err != nil || string(body) != fmt.Sprintf("read %d", tt.body)) {
				t.Fatalf("body %q, %v", body, err)
			}
		})
	}
}

func TestL7ResponseHeaderBoundedByUpstream(t *testing.T) {
	cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, "127.0.0.1:1")
	cfg.Routes[0].Timeouts = &config.RouteTimeouts{ResponseHeader: 2 * time.Minute}
	err := cfg.Validate([]string{"http"})
	if err == nil || !strings.Contains(err.Error(), "routes[0].timeouts.response_header:") {
		t.Fatalf("err = %v, want one naming routes[0].timeouts.response_header", err)
	}
}
