package load

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/handoff-proxy/handoff/bench/pin"
)

// WrkOptions configure one wrk(1) run.
type WrkOptions struct {
	// Binary is the wrk executable. Empty means "wrk".
	Binary string
	// URL to load.
	URL string
	// Connections kept open. Zero means 64.
	Connections int
	// Threads of wrk. Zero means 1 (the load generator gets one core).
	Threads int
	// Duration of the run, at least 1s, rounded down to whole seconds.
	Duration time.Duration
	// Headers added to every request ("Name: value").
	Headers []string
	// PostBody, when non-zero, makes every request a POST with a body of
	// that many bytes (a Lua script written to ScriptDir).
	PostBody int
	// ScriptDir holds the generated Lua script. Required with PostBody.
	ScriptDir string
	// Pin runs wrk on these CPUs.
	Pin pin.Options
}

// RunWrk runs wrk and parses its report.
func RunWrk(ctx context.Context, o WrkOptions) (Result, []byte, error) {
	if err := checkDuration(o.Duration); err != nil {
		return Result{}, nil, fmt.Errorf("wrk: %w", err)
	}
	bin := cmp(o.Binary, "wrk")
	conns := cmpInt(o.Connections, 64)
	threads := cmpInt(o.Threads, 1)
	args := []string{
		"-t", strconv.Itoa(threads),
		"-c", strconv.Itoa(conns),
		"-d", strconv.Itoa(int(o.Duration/time.Second)) + "s",
		"--timeout", "10s",
		"--latency",
	}
	for _, h := range o.Headers {
		args = append(args, "-H", h)
	}
	if o.PostBody > 0 {
		script := filepath.Join(o.ScriptDir, fmt.Sprintf("post-%d.lua", o.PostBody))
		lua := fmt.Sprintf("wrk.method = \"POST\"\nwrk.body = string.rep(\"a\", %d)\nwrk.headers[\"Content-Type\"] = \"application/octet-stream\"\n", o.PostBody)
		if err := os.WriteFile(script, []byte(lua), 0o644); err != nil {
			return Result{}, nil, fmt.Errorf("write wrk script: %w", err)
		}
		args = append(args, "-s", script)
	}
	args = append(args, o.URL)
	ctx, cancel := context.WithTimeout(ctx, o.Duration+30*time.Second)
	defer cancel()
	out, err := pin.Command(ctx, o.Pin, bin, args...).CombinedOutput()
	if err != nil {
		return Result{}, out, fmt.Errorf("run wrk: %w", err)
	}
	r, err := ParseWrk(out)
	return r, out, err
}

// ParseWrk parses the report wrk 4 prints with --latency.
func ParseWrk(out []byte) (Result, error) {
	r := Result{Unit: UnitRequests}
	var sawSummary, sawRate, saw50, saw99 bool
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "50%":
			d, err := parseWrkDuration(f[1])
			if err != nil {
				return Result{}, err
			}
			r.P50, saw50 = d, true
		case len(f) == 2 && f[0] == "99%":
			d, err := parseWrkDuration(f[1])
			if err != nil {
				return Result{}, err
			}
			r.P99, saw99 = d, true
		case len(f) >= 4 && f[1] == "requests" && f[2] == "in":
			// "502345 requests in 10.00s, 560.12MB read"
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil || n < 0 {
				return Result{}, fmt.Errorf("wrk requests %q: %w", f[0], ErrFormat)
			}
			d, err := parseWrkDuration(strings.TrimSuffix(f[3], ","))
			if err != nil {
				return Result{}, err
			}
			r.Ops, r.Elapsed, sawSummary = float64(n), d, true
		case len(f) == 2 && f[0] == "Requests/sec:":
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil || v < 0 {
				return Result{}, fmt.Errorf("wrk rate %q: %w", f[1], ErrFormat)
			}
			r.Rate, sawRate = v, true
		case len(f) >= 3 && f[0] == "Socket" && f[1] == "errors:":
			// "Socket errors: connect 0, read 0, write 0, timeout 0"
			for i := 2; i+1 < len(f); i += 2 {
				n, err := strconv.ParseInt(strings.TrimSuffix(f[i+1], ","), 10, 64)
				if err != nil || n < 0 {
					return Result{}, fmt.Errorf("wrk socket errors: %w", ErrFormat)
				}
				r.Errors += n
			}
		case len(f) == 5 && strings.Join(f[:4], " ") == "Non-2xx or 3xx responses:":
			n, err := strconv.ParseInt(f[4], 10, 64)
			if err != nil || n < 0 {
				return Result{}, fmt.Errorf("wrk non-2xx: %w", ErrFormat)
			}
			r.Errors += n
		}
	}
	if !sawSummary || !sawRate || !saw50 || !saw99 {
		return Result{}, fmt.Errorf("wrk report incomplete (summary %t, rate %t, p50 %t, p99 %t): %w", sawSummary, sawRate, saw50, saw99, ErrFormat)
	}
	return r, nil
}

// parseWrkDuration parses wrk's "812.00us", "1.23ms", "2.00s", "1.50m".
func parseWrkDuration(s string) (time.Duration, error) {
	units := []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}}
	for _, u := range units {
		num, ok := strings.CutSuffix(s, u.suffix)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(num, 64)
		if err != nil || v < 0 || v > 1e6 {
			return 0, fmt.Errorf("wrk duration %q: %w", s, ErrFormat)
		}
		return time.Duration(v * float64(u.unit)), nil
	}
	return 0, fmt.Errorf("wrk duration %q: %w", s, ErrFormat)
}

func cmp(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func cmpInt(n, def int) int {
	if n == 0 {
		return def
	}
	return n
}
