// Package reqinfo carries the facts about one proxied request that several
// layers learn and others report: the route and upstream the router chose,
// the target the proxy reached, retries, and whether the client went away.
// The router creates it, the proxy fills it in, the access log and metrics
// read it after the handler returns. All of that happens on the request's
// own goroutine, so it needs no locking. Recorder learns the rest (status
// and body size) from the ResponseWriter.
//
// It knows nothing of routing, proxying or logging.
package reqinfo

import "context"

// Info is what the layers learned about one request.
type Info struct {
	// Route is the name of the matched route; empty when none matched.
	Route string
	// Upstream is the name of the upstream the route sends to.
	Upstream string
	// Target is the address of the last target tried.
	Target string
	// Retries is how many times the request was sent to another target.
	Retries int
	// ClientGone reports whether the client went away before the response
	// was complete; logs show 499 for it (the nginx convention), and the
	// upstream is not blamed.
	ClientGone bool
	// RequestID is the X-Request-Id the proxy forwarded.
	RequestID string
	// TraceID is the W3C trace id of the traceparent the proxy
	// forwarded (32 hex digits); empty when none was.
	TraceID string
}

type key struct{}

// With returns a context carrying a new, empty Info, and that Info.
func With(ctx context.Context) (context.Context, *Info) {
	in := &Info{}
	return context.WithValue(ctx, key{}, in), in
}

// From returns the Info in ctx, or nil when there is none.
func From(ctx context.Context) *Info {
	in, _ := ctx.Value(key{}).(*Info)
	return in
}
