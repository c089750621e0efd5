package policy

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/auth"
	"github.com/handoff-proxy/handoff/pkg/ratelimit"
)

var ok = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Saw-Auth", r.Header.Get("Authorization")+r.Header.Get("Proxy-Authorization"))
})

func TestRateLimitHeaders(t *testing.T) {
	rl := &RateLimit{Limiter: ratelimit.NewLocal(nil), Limit: ratelimit.Limit{Requests: 2, Per: time.Minute},
		Route: `api"v1`, Obs: Discard{}}
	h := rl.Handler(ok)
	var last *httptest.ResponseRecorder
	for i := range 3 {
		last = httptest.NewRecorder()
		h.ServeHTTP(last, httptest.NewRequest("GET", "/", nil))
		if i == 0 {
			if got := last.Header().Get("RateLimit"); got != `"api\"v1";r=1;t=30` {
				t.Errorf("RateLimit %q", got)
			}
		}
	}
	if last.Code != 429 || last.Header().Get("Retry-After") != "30" {
		t.Fatalf("third: %d Retry-After %q", last.Code, last.Header().Get("Retry-After"))
	}
	if got := last.Header().Get("RateLimit-Policy"); got != `"api\"v1";q=2;w=60` {
		t.Fatalf("RateLimit-Policy %q", got)
	}
}

func TestAuthBearerProxy(t *testing.T) {
	tk, _ := auth.ParseTokens([]byte("ci " + auth.HashToken("tok") + "\n"))
	a := &Auth{Tokens: tk, Proxy: true, Lockout: auth.NewMemoryLockout(auth.Backoff{}, nil), Obs: Discard{}}
	h := a.Handler(ok)
	tests := []struct {
		name, cred string
		want       int
	}{
		{"none", "", 407},
		{"wrong", "Bearer nope", 407},
		{"basic to a bearer-only proxy", "Basic YTpi", 407},
		{"right", "Bearer tok", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			r := httptest.NewRequest("GET", "http://example.com/", nil)
			if tt.cred != "" {
				r.Header.Set("Proxy-Authorization", tt.cred)
			}
			h.ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d", w.Code, tt.want)
			}
			if w.Code == 407 && w.Header().Get("Proxy-Authenticate") != `Bearer realm="handoff"` {
				t.Fatalf("Proxy-Authenticate %q", w.Header().Get("Proxy-Authenticate"))
			}
			if w.Code == 200 && w.Header().Get("X-Saw-Auth") != "" {
				t.Fatal("credentials passed on")
			}
		})
	}
}
