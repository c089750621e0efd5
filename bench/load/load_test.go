package load

import (
	"errors"
	"net"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/handoff-proxy/handoff/pkg/origin"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const wrkSample = `Running 2s test @ http://127.0.0.1:40001/1k
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.92ms    1.01ms  25.10ms   91.00%
    Req/Sec    34.12k     1.20k   36.00k    70.00%
  Latency Distribution
     50%  812.00us
     75%    2.10ms
     90%    2.90ms
     99%    7.54ms
  68012 requests in 2.00s, 80.12MB read
  Socket errors: connect 1, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 4
Requests/sec:  34006.10
Transfer/sec:     40.06MB
`

const h2loadSample = `starting benchmark...
spawning thread #0: 16 total client(s). Timing-based test with 0s of warm-up time and 2s of main duration for measurements.
Warm-up phase is over for thread #0.
Main benchmark duration is over for thread #0. Stopping all clients.
Stopped all clients for thread #0

finished in 2.00s, 20106.50 req/s, 22.01MB/s
requests: 40213 total, 40341 started, 40213 done, 40210 succeeded, 3 failed, 0 errored, 0 timeout
status codes: 40200 2xx, 0 3xx, 10 4xx, 0 5xx
traffic: 44.02MB (46157421) total, 363.12KB (371837) headers (space savings 90.12%), 40.27MB (42218112) data
`

func TestParseWrk(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Result
		wantErr bool
	}{
		{
			name: "full report",
			in:   wrkSample,
			want: Result{Unit: UnitRequests, Ops: 68012, Elapsed: 2 * time.Second, Rate: 34006.10, P50: 812 * time.Microsecond, P99: 7540 * time.Microsecond, Errors: 10},
		},
		{
			name: "no errors lines",
			in:   strings.ReplaceAll(strings.ReplaceAll(wrkSample, "  Socket errors: connect 1, read 2, write 0, timeout 3\n", ""), "  Non-2xx or 3xx responses: 4\n", ""),
			want: Result{Unit: UnitRequests, Ops: 68012, Elapsed: 2 * time.Second, Rate: 34006.10, P50: 812 * time.Microsecond, P99: 7540 * time.Microsecond},
		},
		{name: "no latency distribution", in: strings.Split(wrkSample, "  Latency Distribution")[0], wantErr: true},
		{name: "garbage", in: "unable to connect to 127.0.0.1:1 Connection refused", wantErr: true},
		{name: "bad unit", in: strings.Replace(wrkSample, "812.00us", "812.00xs", 1), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseWrk([]byte(tt.in))
			if tt.wantErr {
				if !errors.Is(err, ErrFormat) {
					t.Fatalf("err = %v, want ErrFormat", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseH2load(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Result
		wantErr bool
	}{
		{
			name: "timing-based run",
			in:   h2loadSample,
			// 40210 succeeded minus 10 answered 4xx; errors 3 failed + 10 4xx.
			want: Result{Unit: UnitRequests, Ops: 40200, Elapsed: 2 * time.Second, Rate: 20106.50, Errors: 13},
		},
		{name: "connection refused", in: "starting benchmark...\nclient could not connect to host\n", wantErr: true},
		{name: "bad counts", in: strings.Replace(h2loadSample, "40213 total", "x total", 1), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseH2load([]byte(tt.in))
			if tt.wantErr {
				if !errors.Is(err, ErrFormat) {
					t.Fatalf("err = %v, want ErrFormat", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseH2loadLog(t *testing.T) {
	log := "1700000000000000\t200\t100\n1700000000000100\t200\t300\n1700000000000200\t503\t5\n1700000000000300\t304\t200\n"
	got, err := ParseH2loadLog(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{100 * time.Microsecond, 300 * time.Microsecond, 200 * time.Microsecond}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v (the 503 excluded)", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if _, err := ParseH2loadLog(strings.NewReader("1\t200\n")); !errors.Is(err, ErrFormat) {
		t.Fatalf("short line: err = %v, want ErrFormat", err)
	}
}

func TestPercentiles(t *testing.T) {
	tests := []struct {
		name     string
		in       []time.Duration
		p50, p99 time.Duration
	}{
		{name: "empty", in: nil},
		{name: "one", in: []time.Duration{5}, p50: 5, p99: 5},
		{name: "hundred", in: seq(100), p50: 50, p99: 99},
		{name: "unsorted", in: []time.Duration{9, 1, 5, 3, 7}, p50: 5, p99: 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p50, p99 := percentiles(tt.in)
			if p50 != tt.p50 || p99 != tt.p99 {
				t.Fatalf("got p50 %v p99 %v, want %v %v", p50, p99, tt.p50, tt.p99)
			}
		})
	}
}

func seq(n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[n-1-i] = time.Duration(i + 1)
	}
	return out
}

func TestRunWSAgainstBackend(t *testing.T) {
	srv := httptest.NewServer(origin.Handler(origin.Options{}))
	t.Cleanup(srv.Close)
	r, err := RunWS(t.Context(), WSOptions{
		URL: "ws" + strings.TrimPrefix(srv.URL, "http") + origin.PathWebSocket, Connections: 4,
		Window: Window{Warmup: 200 * time.Millisecond, Duration: time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Unit != UnitMessages || r.Ops < 100 || r.Errors != 0 || r.P50 <= 0 || r.P99 < r.P50 {
		t.Fatalf("implausible result %+v", r)
	}
}

func TestRunWSRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if _, err := RunWS(t.Context(), WSOptions{URL: "ws://" + addr + "/ws", Window: Window{Duration: time.Second}}); err == nil {
		t.Fatal("want dial error")
	}
}

func TestRunRate(t *testing.T) {
	srv := httptest.NewServer(origin.Handler(origin.Options{}))
	t.Cleanup(srv.Close)
	tests := []struct {
		name     string
		url      string
		rate     float64
		wantErrs bool
	}{
		{name: "keeps up", url: srv.URL + origin.Path1K, rate: 500},
		{name: "non-2xx are errors", url: srv.URL + origin.PathSleep + "?ms=x", rate: 200, wantErrs: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := RunRate(t.Context(), RateOptions{URL: tt.url, Rate: tt.rate, Connections: 8, Window: Window{Warmup: 200 * time.Millisecond, Duration: time.Second}})
			if tt.wantErrs {
				if err == nil || r.Errors < int64(tt.rate/2) {
					t.Fatalf("want errors, got %+v, %v", r, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// Open loop: the achieved rate is the target, within timer slack.
			if r.Rate < tt.rate*0.9 || r.Rate > tt.rate*1.1 || r.Errors != 0 || r.P50 <= 0 {
				t.Fatalf("result %+v, want about %v req/s without errors", r, tt.rate)
			}
		})
	}
}

func TestRunTCPAgainstSource(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	src := origin.NewSource(ln)
	t.Cleanup(func() { _ = src.Close() })
	r, err := RunTCP(t.Context(), TCPOptions{Addr: ln.Addr().String(), Connections: 2, Window: Window{Duration: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Unit != UnitMiB || r.Rate < 1 || r.Errors != 0 {
		t.Fatalf("implausible result %+v", r)
	}
}

// TestRunWrkAndH2load runs the real tools against the backend when they are
// installed (bench/install.sh installs them).
func TestRunWrkAndH2load(t *testing.T) {
	h := origin.Handler(origin.Options{})
	srv := httptest.NewUnstartedServer(h)
	srv.Config = origin.NewHTTPServer(h)
	srv.Start()
	t.Cleanup(srv.Close)
	t.Run("wrk", func(t *testing.T) {
		if _, err := exec.LookPath("wrk"); err != nil {
			t.Skip("wrk not installed")
		}
		r, out, err := RunWrk(t.Context(), WrkOptions{URL: srv.URL + origin.PathPostSink, Connections: 4, Duration: time.Second, PostBody: 4096, ScriptDir: t.TempDir()})
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if r.Ops < 10 || r.Errors != 0 {
			t.Fatalf("implausible result %+v: %s", r, out)
		}
	})
	t.Run("h2load", func(t *testing.T) {
		if _, err := exec.LookPath("h2load"); err != nil {
			t.Skip("h2load not installed")
		}
		r, out, err := RunH2load(t.Context(), H2loadOptions{URL: srv.URL + origin.Path1K, Clients: 2, Streams: 4, Duration: time.Second, LogDir: t.TempDir()})
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if r.Ops < 10 || r.Errors != 0 || r.P50 <= 0 {
			t.Fatalf("implausible result %+v: %s", r, out)
		}
	})
}

func FuzzParseWrk(f *testing.F) {
	f.Add([]byte(wrkSample))
	f.Add([]byte("  50%  1.00ms\n  99%  2.00s\n  10 requests in 1.00s, 1KB read\nRequests/sec: 10\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseWrk(b)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error does not wrap ErrFormat: %v", err)
			}
			return
		}
		if r.Ops < 0 || r.Rate < 0 || r.P50 < 0 || r.P99 < 0 || r.Errors < 0 {
			t.Fatalf("negative values %+v", r)
		}
	})
}

func FuzzParseH2load(f *testing.F) {
	f.Add([]byte(h2loadSample))
	f.Add([]byte("finished in 1.00s, 5 req/s, 1MB/s\nrequests: 5 total, 5 succeeded\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseH2load(b)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error does not wrap ErrFormat: %v", err)
			}
			return
		}
		if r.Ops < 0 || r.Rate < 0 || r.Errors < 0 {
			t.Fatalf("negative values %+v", r)
		}
	})
}

func FuzzParseH2loadLog(f *testing.F) {
	f.Add([]byte("1700000000000000\t200\t100\n"))
	f.Add([]byte("1\t503\t5\n2\t200\t7\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ds, err := ParseH2loadLog(strings.NewReader(string(b)))
		if err != nil {
			return // malformed or over-long lines: any error is fine, no panic
		}
		for _, d := range ds {
			if d < 0 {
				t.Fatalf("negative latency %v", d)
			}
		}
	})
}
