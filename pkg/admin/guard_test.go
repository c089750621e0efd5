package admin

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestGuard(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	srv := httptest.NewServer(Guard(ok))
	defer srv.Close()
	tests := []struct {
		name   string
		method string
		host   string
		header map[string]string
		want   int
	}{
		{name: "cli post", method: "POST", header: map[string]string{"Content-Type": "application/json"}, want: 200},
		{name: "localhost host", method: "POST", host: "localhost:9901", header: map[string]string{"Content-Type": "application/json"}, want: 200},
		{name: "v6 host", method: "POST", host: "[::1]:9901", header: map[string]string{"Content-Type": "application/json"}, want: 200},
		{name: "same origin", method: "POST", header: map[string]string{"Content-Type": "application/json", "Origin": "ORIGIN"}, want: 200},
		{name: "foreign origin", method: "POST", header: map[string]string{"Content-Type": "application/json", "Origin": "http://evil.example"}, want: 403},
		{name: "foreign origin text", method: "POST", header: map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example"}, want: 403},
		{name: "null origin", method: "POST", header: map[string]string{"Content-Type": "application/json", "Origin": "null"}, want: 403},
		{name: "rebinding host", method: "POST", host: "evil.example", header: map[string]string{"Content-Type": "application/json"}, want: 403},
		{name: "simple request", method: "POST", header: map[string]string{"Content-Type": "text/plain"}, want: 403},
		{name: "form", method: "POST", header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, want: 403},
		{name: "no content type", method: "POST", want: 403},
		{name: "cross site fetch", method: "POST", header: map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, want: 403},
		{name: "get any host", method: "GET", host: "prometheus.example", want: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+"/api/v1/reload", strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			if tt.host != "" {
				req.Host = tt.host
			}
			for k, v := range tt.header {
				req.Header.Set(k, strings.ReplaceAll(v, "ORIGIN", srv.URL))
			}
			res, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != tt.want {
				t.Errorf("%s: status %d, want %d", tt.name, res.StatusCode, tt.want)
			}
		})
	}
}
