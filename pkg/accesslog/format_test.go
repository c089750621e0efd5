package accesslog

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestFormats(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("", -7*3600))
	tests := []struct {
		name   string
		format string
		check  func(t *testing.T, line string)
	}{
		{name: "json", format: FormatJSON, check: func(t *testing.T, line string) {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			if m[KeyStatus] != 201.0 || m[KeyURI] != "/p/a%20b?q=1" || m[KeyMethod] != "POST" || m["msg"] != Message {
				t.Errorf("record %v", m)
			}
		}},
		{name: "logfmt", format: FormatLogfmt, check: func(t *testing.T, line string) {
			for _, want := range []string{"msg=request", "method=POST", "uri=\"/p/a%20b?q=1\"", "status=201", "bytes=5", "referer=https://ref.example/"} {
				if !strings.Contains(line, want) {
					t.Errorf("%q lacks %q", line, want)
				}
			}
		}},
		{name: "combined", format: FormatCombined, check: func(t *testing.T, line string) {
			want := `127.0.0.1 - - [04/Mar/2026:05:06:07 -0700] "POST /p/a%20b?q=1 HTTP/1.1" 201 5 "https://ref.example/" "agent \x22quoted\x22"` + "\n"
			if line != want {
				t.Errorf("got  %q\nwant %q", line, want)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &sink{t: t}
			h := New(Options{Logger: slog.New(NewHandler(s, tt.format)), Now: func() time.Time { return at }},
				http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.WriteHeader(201)
					io.WriteString(w, "hello")
				}))
			srv := httptest.NewServer(h)
			defer srv.Close()
			req, _ := http.NewRequest("POST", srv.URL+"/p/a%20b?q=1", strings.NewReader("x"))
			req.Header.Set("Referer", "https://ref.example/")
			req.Header.Set("User-Agent", `agent "quoted"`)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			srv.Close() // the record is written after the handler returns
			tt.check(t, s.String())
		})
	}
}

func TestCombinedServerAnswer(t *testing.T) {
	s := &sink{t: t}
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	ServerAnswer(slog.New(NewHandler(s, FormatCombined)), "192.0.2.1:5555", 400, at)
	if want := `192.0.2.1 - - [04/Mar/2026:05:06:07 +0000] "-" 400 - "-" "-"` + "\n"; s.String() != want {
		t.Errorf("got %q, want %q", s.String(), want)
	}
	if !regexp.MustCompile(`^\S+ - - \[`).MatchString(s.String()) {
		t.Error("not CLF")
	}
}

func TestSample(t *testing.T) {
	tests := []struct {
		name   string
		sample float64
		status int
		n      int
		min    int
		max    int
	}{
		{name: "10% of successes", sample: 0.1, status: 200, n: 10000, min: 900, max: 1100},
		{name: "half of redirects", sample: 0.5, status: 302, n: 2000, min: 900, max: 1100},
		{name: "errors always", sample: 0.1, status: 503, n: 500, min: 500, max: 500},
		{name: "client errors always", sample: 0.01, status: 404, n: 500, min: 500, max: 500},
		{name: "zero logs all", sample: 0, status: 200, n: 500, min: 500, max: 500},
		{name: "one logs all", sample: 1, status: 200, n: 500, min: 500, max: 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var count int
			logger := slog.New(countHandler{&count})
			rng := rand.New(rand.NewPCG(1, 2)) // deterministic: the bounds are ±3σ anyway
			h := New(Options{Logger: logger, Sample: tt.sample, Rand: rng.Float64},
				http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(tt.status) }))
			for range tt.n {
				h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
			}
			if count < tt.min || count > tt.max {
				t.Errorf("logged %d of %d, want %d..%d", count, tt.n, tt.min, tt.max)
			}
		})
	}
}

// countHandler counts records (no concurrency in TestSample).
type countHandler struct{ n *int }

func (c countHandler) Enabled(_ context.Context, _ slog.Level) bool { return true }
func (c countHandler) Handle(context.Context, slog.Record) error    { *c.n++; return nil }
func (c countHandler) WithAttrs([]slog.Attr) slog.Handler           { return c }
func (c countHandler) WithGroup(string) slog.Handler                { return c }

func TestFileReopen(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/access.log"
	f, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	io.WriteString(f, "one\n")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	io.WriteString(f, "two\n") // still the renamed file, as logrotate expects until postrotate
	if err := f.Reopen(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(f, "three\n")
	for p, want := range map[string]string{path + ".1": "one\ntwo\n", path: "three\n"} {
		if b, _ := os.ReadFile(p); string(b) != want {
			t.Errorf("%s = %q, want %q", p, b, want)
		}
	}
	if err := os.Chmod(dir, 0o500); err == nil && os.Getuid() != 0 {
		defer os.Chmod(dir, 0o700)
		os.Remove(path)
		if err := f.Reopen(); err == nil {
			t.Error("Reopen in a read-only directory succeeded")
		}
	}
}
