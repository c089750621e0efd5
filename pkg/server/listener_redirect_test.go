package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/handoff-proxy/handoff/pkg/config"
)

func TestListenerRedirect(t *testing.T) {
	tests := []struct {
		name     string
		redirect config.RouteRedirect
		host     string // Host header sent
		target   string // request target sent
		status   int
		location string
	}{
		{name: "http to https keeps path and query", redirect: config.RouteRedirect{To: "https://{hostname}{uri}"},
			host: "example.com:8080", target: "/a/b?x=1&y=2", status: 308, location: "https://example.com/a/b?x=1&y=2"},
		{name: "encoded path and query stay encoded", redirect: config.RouteRedirect{To: "https://{hostname}{uri}"},
			host: "example.com", target: "/a%2Fb/%20c?q=%2F%26&r", status: 308, location: "https://example.com/a%2Fb/%20c?q=%2F%26&r"},
		{name: "root without query", redirect: config.RouteRedirect{To: "https://{hostname}{uri}"},
			host: "Example.COM", target: "/", status: 308, location: "https://Example.COM/"},
		{name: "explicit port and status", redirect: config.RouteRedirect{To: "https://{hostname}:8443{path}?from=http&{query}", Status: 301},
			host: "[2001:db8::1]:80", target: "/p?k=v", status: 301, location: "https://[2001:db8::1]:8443/p?from=http&k=v"},
		{name: "absolute-form request target", redirect: config.RouteRedirect{To: "https://{hostname}{uri}"},
			host: "example.com", target: "http://example.com/x?y", status: 308, location: "https://example.com/x?y"},
	}
	b := echoBackend(t, "b")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig([]config.Listener{
				{Name: "http", Protocol: config.ProtocolHTTP, Redirect: &tt.redirect},
				{Name: "other", Protocol: config.ProtocolHTTP},
			}, hostOf(b))
			if err := cfg.Validate([]string{"http", "other"}); err != nil {
				t.Fatal(err)
			}
			r := serve(t, cfg, nil)
			conn, err := net.Dial("tcp", r.addrs["http"])
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", tt.target, tt.host)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status || resp.Header.Get("Location") != tt.location {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, resp.Header.Get("Location"), tt.status, tt.location)
			}
			// The other listener still routes.
			resp2, err := http.Get("http://" + r.addrs["other"] + "/")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp2.Body)
			resp2.Body.Close()
			if string(body) != "b" {
				t.Errorf("other listener answered %q, want the backend", body)
			}
		})
	}
}

func TestListenerRedirectConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		lc   config.Listener
		key  string
	}{
		{name: "bad status", key: "listeners[0].redirect",
			lc: config.Listener{Name: "http", Protocol: config.ProtocolHTTP, Redirect: &config.RouteRedirect{To: "https://{hostname}{uri}", Status: 200}}},
		{name: "unknown variable", key: "listeners[0].redirect",
			lc: config.Listener{Name: "http", Protocol: config.ProtocolHTTP, Redirect: &config.RouteRedirect{To: "https://{server}{uri}"}}},
		{name: "tcp listener", key: "listeners[0].redirect",
			lc: config.Listener{Name: "http", Protocol: config.ProtocolTCP, Upstream: "web", Redirect: &config.RouteRedirect{To: "https://x/"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig([]config.Listener{tt.lc}, "127.0.0.1:1")
			err := cfg.Validate([]string{"http"})
			if err == nil || !strings.Contains(err.Error(), tt.key+":") {
				t.Fatalf("err = %v, want one naming %s", err, tt.key)
			}
		})
	}
}
