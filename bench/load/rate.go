package load

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// rateDrain is how long RunRate waits after the last request was due.
const rateDrain = 5 * time.Second

// RateOptions configure the constant-rate HTTP driver.
type RateOptions struct {
	// URL to GET.
	URL string
	// Rate is the target in requests per second. Required.
	Rate float64
	// Connections is the most requests in flight (and keep-alive
	// connections). Zero means 64.
	Connections int
	Window
}

// RunRate sends GETs on a fixed schedule, like wrk2: request i is due at
// start + i/Rate whether or not earlier ones have finished, and its latency
// runs from when it was due, not from when a connection became free. A
// stalled proxy therefore shows up in the percentiles instead of silently
// lowering the rate (the coordinated omission of closed-loop generators).
// Requests due in the window that fail, or are not answered within
// rateDrain after the window, count as errors.
func RunRate(ctx context.Context, o RateOptions) (Result, error) {
	if err := checkDuration(o.Duration); err != nil {
		return Result{}, fmt.Errorf("rate: %w", err)
	}
	if o.Rate <= 0 {
		return Result{}, fmt.Errorf("rate: target %v req/s must be positive", o.Rate)
	}
	n := cmpInt(o.Connections, 64)
	tr := &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: n, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	start := time.Now()
	from := start.Add(o.Warmup)
	total := int((o.Warmup + o.Duration).Seconds() * o.Rate)
	due := make(chan time.Time, total)
	lat := make([][]time.Duration, n)
	var errs atomic.Int64
	var wg sync.WaitGroup
	for w := range n {
		wg.Go(func() {
			for d := range due {
				err := getOnce(ctx, client, o.URL)
				end := time.Now()
				if d.Before(from) {
					continue // warm-up
				}
				if err != nil {
					errs.Add(1)
					continue
				}
				lat[w] = append(lat[w], end.Sub(d))
			}
		})
	}
	interval := time.Duration(float64(time.Second) / o.Rate)
	tick := time.NewTicker(time.Millisecond)
	sent := 0
loop:
	for sent < total {
		select {
		case <-ctx.Done():
			break loop
		case now := <-tick.C:
			for sent < total {
				d := start.Add(time.Duration(sent) * interval)
				if d.After(now) {
					break
				}
				due <- d
				sent++
			}
		}
	}
	tick.Stop()
	close(due)
	// Requests due in the window may finish after it; give them a drain
	// period, then cut what is left (counted as errors).
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	drain := time.NewTimer(rateDrain)
	select {
	case <-drained:
	case <-drain.C:
		cancel()
		<-drained
	}
	drain.Stop()
	r := summarize(UnitRequests, o.Duration, lat, errs.Load())
	if r.Ops == 0 {
		return r, fmt.Errorf("rate: no request completed (%d errors)", r.Errors)
	}
	return r, nil
}

func getOnce(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if resp.StatusCode >= 400 {
		return fmt.Errorf("get: status %d", resp.StatusCode)
	}
	return nil
}
