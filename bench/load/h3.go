package load

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go/http3"
)

// H3Options configure the HTTP/3 driver. No packaged load tool speaks
// HTTP/3 here (h2load is built without ngtcp2 in Debian 12), so this one
// is ours, on the same quic-go as handoff's server.
type H3Options struct {
	// URL is an https:// URL to GET. The certificate is not verified:
	// the bench's peers use a throwaway self-signed one.
	URL string
	// Clients is the number of QUIC connections. Zero means 16.
	Clients int
	// Streams is the number of requests in flight on each connection,
	// each a closed loop. Zero means 8 (h2load's -m in the h2 rows).
	Streams int
	Window
}

// RunH3 opens Clients QUIC connections and keeps Streams GET requests in
// flight on each. One operation is one request whose body was read to
// the end; a status outside 2xx/3xx counts as an error.
func RunH3(ctx context.Context, o H3Options) (Result, error) {
	if err := checkDuration(o.Duration); err != nil {
		return Result{}, fmt.Errorf("h3: %w", err)
	}
	clients, streams := cmpInt(o.Clients, 16), cmpInt(o.Streams, 8)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	from, to := start.Add(o.Warmup), start.Add(o.Warmup+o.Duration)
	lat := make([][]time.Duration, clients*streams)
	var errs atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for c := range clients {
		// One Transport per client: quic-go keeps one connection per
		// host and Transport.
		tr := &http3.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // bench peers use a throwaway certificate
		defer tr.Close()
		client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
		for s := range streams {
			i := c*streams + s
			wg.Go(func() {
				for {
					t0 := time.Now()
					if t0.After(to) || ctx.Err() != nil {
						return
					}
					if err := getOnce(ctx, client, o.URL); err != nil {
						if ctx.Err() == nil {
							errs.Add(1)
							firstErr.CompareAndSwap(nil, err)
						}
						continue
					}
					if t1 := time.Now(); !t0.Before(from) && !t1.After(to) {
						lat[i] = append(lat[i], t1.Sub(t0))
					}
				}
			})
		}
	}
	wg.Wait()
	r := summarize(UnitRequests, o.Duration, lat, errs.Load())
	if r.Ops == 0 {
		return r, fmt.Errorf("h3: no request completed (%d errors, first: %v)", r.Errors, firstErr.Load())
	}
	return r, nil
}
