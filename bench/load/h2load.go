package load

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/handoff-proxy/handoff/bench/pin"
)

// H2loadOptions configure one h2load(1) run.
type H2loadOptions struct {
	// Binary is the h2load executable. Empty means "h2load".
	Binary string
	// URL to load: http:// means HTTP/2 with prior knowledge (h2c,
	// RFC 9113 §3.3), https:// means HTTP/2 negotiated by ALPN.
	URL string
	// Clients (connections). Zero means 16.
	Clients int
	// Streams is the maximum concurrent streams per connection. Zero
	// means 8.
	Streams int
	// Duration of the measurement, at least 1s.
	Duration time.Duration
	// LogDir holds the per-request log h2load writes (for percentiles).
	// Required.
	LogDir string
	// Pin runs h2load on these CPUs.
	Pin pin.Options
}

// RunH2load runs h2load for a fixed duration and returns its rate with
// p50/p99 computed from its per-request log (h2load itself prints only
// mean and deviation).
func RunH2load(ctx context.Context, o H2loadOptions) (Result, []byte, error) {
	if err := checkDuration(o.Duration); err != nil {
		return Result{}, nil, fmt.Errorf("h2load: %w", err)
	}
	logPath := filepath.Join(o.LogDir, "h2load-requests.log")
	args := []string{
		"-t", "1",
		"-c", strconv.Itoa(cmpInt(o.Clients, 16)),
		"-m", strconv.Itoa(cmpInt(o.Streams, 8)),
		"-D", strconv.Itoa(int(o.Duration / time.Second)),
		"--log-file", logPath,
		o.URL,
	}
	ctx, cancel := context.WithTimeout(ctx, o.Duration+30*time.Second)
	defer cancel()
	out, err := pin.Command(ctx, o.Pin, cmp(o.Binary, "h2load"), args...).CombinedOutput()
	defer os.Remove(logPath)
	if err != nil {
		return Result{}, out, fmt.Errorf("run h2load: %w", err)
	}
	r, err := ParseH2load(out)
	if err != nil {
		return Result{}, out, err
	}
	f, err := os.Open(logPath)
	if err != nil {
		return Result{}, out, fmt.Errorf("open h2load log: %w", err)
	}
	defer f.Close()
	lat, err := ParseH2loadLog(f)
	if err != nil {
		return Result{}, out, err
	}
	r.P50, r.P99 = percentiles(lat)
	return r, out, nil
}

// ParseH2load parses h2load's summary ("finished in …", "requests: …",
// "status codes: …").
func ParseH2load(out []byte) (Result, error) {
	r := Result{Unit: UnitRequests}
	var sawFinished, sawRequests bool
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "finished in "):
			// "finished in 10.00s, 45678.90 req/s, 50.12MB/s"
			f := strings.Fields(strings.ReplaceAll(line, ",", " "))
			if len(f) < 5 || f[4] != "req/s" {
				return Result{}, fmt.Errorf("h2load finished line %q: %w", line, ErrFormat)
			}
			d, err := parseWrkDuration(f[2])
			if err != nil {
				return Result{}, err
			}
			rate, err := strconv.ParseFloat(f[3], 64)
			if err != nil || rate < 0 {
				return Result{}, fmt.Errorf("h2load rate %q: %w", f[3], ErrFormat)
			}
			r.Elapsed, r.Rate, sawFinished = d, rate, true
		case strings.HasPrefix(line, "requests: "):
			// "requests: 10 total, 10 started, 10 done, 9 succeeded, 1 failed, 0 errored, 0 timeout"
			counts, err := h2loadCounts(strings.TrimPrefix(line, "requests: "))
			if err != nil {
				return Result{}, err
			}
			r.Ops = float64(counts["succeeded"])
			r.Errors += counts["failed"] + counts["errored"] + counts["timeout"]
			sawRequests = true
		case strings.HasPrefix(line, "status codes: "):
			counts, err := h2loadCounts(strings.TrimPrefix(line, "status codes: "))
			if err != nil {
				return Result{}, err
			}
			// Succeeded requests include 4xx/5xx answers: count them as
			// errors like wrk's "Non-2xx or 3xx".
			r.Errors += counts["4xx"] + counts["5xx"]
			r.Ops -= float64(counts["4xx"] + counts["5xx"])
		}
	}
	if !sawFinished || !sawRequests {
		return Result{}, fmt.Errorf("h2load report incomplete (finished %t, requests %t): %w", sawFinished, sawRequests, ErrFormat)
	}
	if r.Ops < 0 {
		return Result{}, fmt.Errorf("h2load: more bad statuses than successes: %w", ErrFormat)
	}
	return r, nil
}

// h2loadCounts parses "10 total, 9 succeeded, …" into a map.
func h2loadCounts(s string) (map[string]int64, error) {
	m := map[string]int64{}
	for part := range strings.SplitSeq(s, ",") {
		f := strings.Fields(part)
		if len(f) != 2 {
			return nil, fmt.Errorf("h2load count %q: %w", part, ErrFormat)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("h2load count %q: %w", part, ErrFormat)
		}
		m[f[1]] = n
	}
	return m, nil
}

// ParseH2loadLog reads h2load's --log-file (tab-separated: start time in
// µs since the epoch, HTTP status, µs until the end of the response) and
// returns the latencies of the requests that got a 2xx or 3xx.
func ParseH2loadLog(r io.Reader) ([]time.Duration, error) {
	var out []time.Duration
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 3 {
			return nil, fmt.Errorf("h2load log line %q: %w", sc.Text(), ErrFormat)
		}
		status, err := strconv.Atoi(f[1])
		if err != nil {
			return nil, fmt.Errorf("h2load log status %q: %w", f[1], ErrFormat)
		}
		us, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil || us < 0 || us > 1e12 {
			return nil, fmt.Errorf("h2load log duration %q: %w", f[2], ErrFormat)
		}
		if status >= 200 && status < 400 {
			out = append(out, time.Duration(us)*time.Microsecond)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read h2load log: %w", err)
	}
	return out, nil
}
