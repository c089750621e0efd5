package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"sync"
	"time"
)

// Limits override, for one request, the limits a Handler was built with:
// the per-route timeouts and max_request_body, set by the layer that
// knows the route (WithLimits) and read here, where they are enforced.
type Limits struct {
	// MaxRequestBody replaces Options.MaxRequestBody. Zero keeps it.
	MaxRequestBody int64
	// RequestTimeout replaces Options.RequestTimeout. Zero keeps it.
	RequestTimeout time.Duration
	// ResponseHeader bounds the wait for response headers after the
	// request was written, like the upstream's timeouts.response_header
	// (which still applies too, so only a shorter value has an effect).
	// Zero means only the upstream's.
	ResponseHeader time.Duration
}

type limitsKey struct{}

// WithLimits returns ctx carrying l for the Handler that serves it.
func WithLimits(ctx context.Context, l Limits) context.Context {
	return context.WithValue(ctx, limitsKey{}, l)
}

func limitsFrom(ctx context.Context) Limits {
	l, _ := ctx.Value(limitsKey{}).(Limits)
	return l
}

// errResponseHeaderTimeout is an attempt's route response_header timeout;
// it wraps context.DeadlineExceeded so that it maps to 504 and counts as
// a timeout for retry_on and health, as the transport's own timeout does.
var errResponseHeaderTimeout = fmt.Errorf("route response_header timeout: %w", context.DeadlineExceeded)

// roundTripWithin sends req over tr and gives up when the response
// headers take longer than d after the request was written (the moment
// http.Transport starts its ResponseHeaderTimeout). The timer stops once
// headers arrive; the body is then bounded only by req's own context.
func roundTripWithin(tr http.RoundTripper, req *http.Request, d time.Duration) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	var (
		mu      sync.Mutex
		timer   *time.Timer
		done    bool
		expired bool
	)
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) {
		mu.Lock()
		defer mu.Unlock()
		if !done && timer == nil {
			timer = time.AfterFunc(d, func() {
				mu.Lock()
				expired = !done
				mu.Unlock()
				if expired {
					cancel(errResponseHeaderTimeout)
				}
			})
		}
	}})
	res, err := tr.RoundTrip(req.WithContext(ctx))
	mu.Lock()
	done = true
	if timer != nil {
		timer.Stop()
	}
	timedOut := expired
	mu.Unlock()
	if timedOut {
		if res != nil {
			res.Body.Close()
		}
		cancel(nil)
		return nil, errResponseHeaderTimeout
	}
	if err != nil {
		cancel(nil)
		if errors.Is(context.Cause(ctx), errResponseHeaderTimeout) {
			return nil, errResponseHeaderTimeout
		}
	}
	// On success ctx lives on with the response body; it ends with the
	// request's context, its parent.
	return res, err
}
