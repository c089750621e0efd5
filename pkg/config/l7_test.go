package config

import (
	"testing"
	"time"
)

// TestLoadL7 loads the README's l7 keys from YAML, so that header names
// (mixed case, dashes) survive the layers as map keys.
func TestLoadL7(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	writeFile(t, dir, "handoff.yaml", `listeners:
  - name: http
    address: 127.0.0.1:0
upstreams:
  app:
    targets:
      - address: 127.0.0.1:9001
routes:
  - match: {path_prefix: /api/}
    upstream: app
    strip_prefix: /api
    add_prefix: /internal
    rewrite: {match: "^/old/(.*)", to: "/new/$1"}
    max_request_body: 1073741824
    timeouts: {request: 10m, response_header: 5s}
    compress: {codings: [gzip], min_size: 512}
    headers:
      request:
        set: {X-Real-IP: "{client_ip}"}
        remove: [Cookie]
      response:
        add: {X-Frame-Options: DENY}
  - match: {host: old.example.com}
    redirect: {to: "https://{host}{uri}", status: 301}
  - match: {path_prefix: /maintenance}
    respond: {status: 503, body: "back soon", headers: {Retry-After: "600"}}
`)
	l, err := Load(LoadOptions{File: "handoff.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	r := l.Config.Routes
	if got := r[0].Headers.Request.Set["X-Real-IP"]; got != "{client_ip}" {
		t.Errorf("headers.request.set = %v", r[0].Headers.Request.Set)
	}
	if r[0].Headers.Response.Add["X-Frame-Options"] != "DENY" || r[0].Headers.Request.Remove[0] != "Cookie" {
		t.Errorf("headers = %+v %+v", r[0].Headers.Request, r[0].Headers.Response)
	}
	if r[0].StripPrefix != "/api" || r[0].AddPrefix != "/internal" || r[0].Rewrite.To != "/new/$1" {
		t.Errorf("path rewrite = %q %q %+v", r[0].StripPrefix, r[0].AddPrefix, r[0].Rewrite)
	}
	if r[0].MaxRequestBody != 1<<30 || r[0].Timeouts.Request != 10*time.Minute || r[0].Timeouts.ResponseHeader != 5*time.Second {
		t.Errorf("limits = %d %+v", r[0].MaxRequestBody, r[0].Timeouts)
	}
	if r[0].Compress.MinSize != 512 || r[0].Compress.Codings[0] != "gzip" {
		t.Errorf("compress = %+v", r[0].Compress)
	}
	if r[1].Redirect.Status != 301 || r[1].Upstream != "" {
		t.Errorf("redirect = %+v, upstream %q", r[1].Redirect, r[1].Upstream)
	}
	if r[2].Respond.Headers["Retry-After"] != "600" || r[2].Respond.Status != 503 {
		t.Errorf("respond = %+v", r[2].Respond)
	}
}
