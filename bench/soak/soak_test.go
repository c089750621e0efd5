package soak

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/handoff-proxy/handoff/pkg/origin"

	"github.com/handoff-proxy/handoff/pkg/handofftest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// series builds samples: baseline 5 at (rss0, g0, fd0), load n samples one
// per second with rss and goroutines growing per minute, settle samples.
func series(n int, rssPerMin, gPerMin float64, settle []Sample) []Sample {
	var ss []Sample
	at := time.Duration(0)
	for range 5 {
		ss = append(ss, Sample{At: at, Phase: PhaseBaseline, RSS: 10 << 20, Goroutines: 20, FDs: 10})
		at += time.Second
	}
	for i := range n {
		m := float64(i) / 60
		ss = append(ss, Sample{
			At: at, Phase: PhaseLoad, RSS: int64(float64(50<<20) + rssPerMin*m), Goroutines: 200 + gPerMin*m + float64(i%3),
			FDs: 120, Requests: int64(100 * (i + 1)),
		})
		at += time.Second
	}
	for _, s := range settle {
		s.At = at
		s.Phase = PhaseSettle
		s.Requests = int64(100 * n)
		ss = append(ss, s)
		at += time.Second
	}
	return ss
}

func TestEvaluate(t *testing.T) {
	back := []Sample{{RSS: 50 << 20, Goroutines: 60, FDs: 40}, {RSS: 50 << 20, Goroutines: 21, FDs: 11}}
	tests := []struct {
		name     string
		samples  []Sample
		pass     bool
		problems int
	}{
		{name: "steady and settles", samples: series(120, 0, 0, back), pass: true},
		{name: "rss leak", samples: series(120, 5<<20, 0, back), problems: 1},
		{name: "goroutine leak", samples: series(120, 0, 30, back), problems: 1},
		{name: "never settles", samples: series(120, 0, 0, back[:1]), problems: 1},
		{name: "failed requests", samples: func() []Sample {
			ss := series(120, 0, 0, back)
			ss[len(ss)-1].Failures = 3
			return ss
		}(), problems: 1},
		{name: "too short", samples: series(2, 0, 0, back), problems: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Evaluate(tt.samples, Thresholds{})
			if v.Pass != tt.pass || (!tt.pass && len(v.Problems) != tt.problems) {
				t.Fatalf("pass %v problems %q; want pass %v with %d problems", v.Pass, v.Problems, tt.pass, tt.problems)
			}
		})
	}
}

func TestEvaluateSlopes(t *testing.T) {
	// 5 MiB/min on a ~50 MiB mean is about 10%/min.
	v := Evaluate(series(120, 5<<20, 12, nil), Thresholds{})
	if v.RSSSlopePctPerMin < 8 || v.RSSSlopePctPerMin > 11 {
		t.Fatalf("rss slope %.2f%%/min, want ≈ 9.5", v.RSSSlopePctPerMin)
	}
	if v.GoroutineSlopePerMin < 11 || v.GoroutineSlopePerMin > 13 {
		t.Fatalf("goroutine slope %.2f/min, want ≈ 12", v.GoroutineSlopePerMin)
	}
	if v.Baseline.Goroutines != 20 || v.Baseline.FDs != 10 {
		t.Fatalf("baseline %+v", v.Baseline)
	}
}

func TestParseMetric(t *testing.T) {
	text := "# HELP go_goroutines Number of goroutines.\n# TYPE go_goroutines gauge\ngo_goroutines 42\ngo_goroutines_total{x=\"y\"} 7\ngo_gc_duration_seconds{quantile=\"0\"} 1e-05\n"
	tests := []struct {
		name   string
		metric string
		want   float64
		ok     bool
	}{
		{name: "present", metric: "go_goroutines", want: 42, ok: true},
		{name: "labelled only", metric: "go_gc_duration_seconds", ok: false},
		{name: "absent", metric: "process_open_fds", ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, ok, err := ParseMetric(strings.NewReader(text), tt.metric)
			if err != nil {
				t.Fatal(err)
			}
			if ok != tt.ok || v != tt.want {
				t.Fatalf("got %v %v, want %v %v", v, ok, tt.want, tt.ok)
			}
		})
	}
	if _, _, err := ParseMetric(strings.NewReader("go_goroutines many\n"), "go_goroutines"); !errors.Is(err, ErrFormat) {
		t.Fatalf("err = %v, want ErrFormat", err)
	}
}

func FuzzParseMetric(f *testing.F) {
	f.Add([]byte("go_goroutines 42\n"))
	f.Add([]byte("# TYPE go_goroutines gauge\ngo_goroutines 1.5e3 1700000000\n"))
	f.Add([]byte("go_goroutines{a=\"b\"} 3\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, err := ParseMetric(strings.NewReader(string(b)), "go_goroutines")
		_ = err // any error is acceptable; the parser must not panic
	})
}

// TestRunAgainstBackend soaks the bench backend itself (standing in for a
// proxy) for a few seconds, sampling this test process, and checks that
// every phase was sampled and every client kind got answers.
func TestRunAgainstBackend(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about 15s")
	}
	h := origin.Handler(origin.Options{})
	srv := httptest.NewUnstartedServer(h)
	srv.Config = origin.NewHTTPServer(h)
	srv.Start()
	t.Cleanup(srv.Close)
	metrics := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "# TYPE go_goroutines gauge\ngo_goroutines %d\n", runtime.NumGoroutine())
	}))
	t.Cleanup(metrics.Close)

	res, err := Run(t.Context(), Options{
		Addr: strings.TrimPrefix(srv.URL, "http://"), PID: os.Getpid(), MetricsURL: metrics.URL,
		Duration: 5 * time.Second, Baseline: 2 * time.Second, SettleTimeout: 5 * time.Second, Every: 250 * time.Millisecond,
		Mix:      Mix{KeepAlive: 2, NewConn: 1, Slow: 2, WebSocket: 1},
		Progress: handofftest.Writer(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	phases := map[string]int{}
	for _, s := range res.Samples {
		phases[s.Phase]++
	}
	if phases[PhaseBaseline] == 0 || phases[PhaseLoad] < 10 || phases[PhaseSettle] == 0 {
		t.Fatalf("phases sampled %v", phases)
	}
	v := res.Verdict
	if v.Failures != 0 || v.Requests < 100 {
		t.Fatalf("requests %d failures %d (%v)", v.Requests, v.Failures, res.FirstFailures)
	}
	if v.Baseline.Goroutines <= 0 || v.MeanRSSBytes <= 0 {
		t.Fatalf("verdict lacks measurements: %+v", v)
	}
	var b strings.Builder
	if err := WriteMarkdown(&b, res, "test"); err != nil || !strings.Contains(b.String(), "Failed requests | 0 of") {
		t.Fatalf("markdown %q, %v", b.String(), err)
	}
}
