package cache

import (
	"net/http"
	"testing"
)

// Routes ignore the port, so keys do too: two processes of one deployment
// listening on different ports share their entries.
func TestPrimaryKeyHostWithoutPort(t *testing.T) {
	tests := []struct {
		name, host, want string
	}{
		{name: "name and port", host: "Example.COM:8080", want: "http://example.com/a?q"},
		{name: "name", host: "example.com", want: "http://example.com/a?q"},
		{name: "IPv4 and port", host: "127.0.0.1:41234", want: "http://127.0.0.1/a?q"},
		{name: "IPv6 and port", host: "[::1]:8080", want: "http://[::1]/a?q"},
		{name: "IPv6", host: "[::1]", want: "http://[::1]/a?q"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PrimaryKey("http", tt.host, "/a", "q", http.Header{}, KeyOptions{IncludeQuery: true}); got != tt.want {
				t.Fatalf("PrimaryKey(host %q) = %q, want %q", tt.host, got, tt.want)
			}
		})
	}
	if got := normaliseURL("HTTP://Example.com:8080/A"); got != "http://example.com/A" {
		t.Fatalf("normaliseURL = %q", got)
	}
}
