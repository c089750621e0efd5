package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
)

// StatusClientClosedRequest is the status access logs show when the client
// went away before the response was complete (the nginx convention). It is
// never written to a client.
const StatusClientClosedRequest = 499

// Kinds of upstream error passed to Observer.UpstreamError.
const (
	// KindConnect: the TCP connect or TLS handshake to the target failed,
	// so no byte of the request was sent.
	KindConnect = "connect"
	// KindTimeout: the target did not answer in time (dial, TLS handshake,
	// response header or whole-request timeout).
	KindTimeout = "timeout"
	// KindNoTarget: no target of the pool was eligible; the target
	// argument is empty.
	KindNoTarget = "no_target"
	// KindBody: the target's response body broke off mid-stream.
	KindBody = "body"
	// KindProtocol: any other failure talking to the target (reset,
	// malformed response, refused upgrade).
	KindProtocol = "protocol"
	// KindCapacity: every eligible target was at its max_conns and the
	// queue was full or the wait timed out; the target argument is
	// empty.
	KindCapacity = "capacity"
	// KindLocal: this machine ran out of a resource (file descriptors,
	// memory, ephemeral ports) while reaching the target; not the
	// target's fault.
	KindLocal = "local"
)

var (
	// errNoTarget means no target was eligible.
	errNoTarget = errors.New("no healthy upstream")
	// errCapacity means every eligible target was at its max_conns.
	errCapacity = errors.New("upstream at capacity")
	// errClientGone marks an error that happened because the client went
	// away (its request context was canceled).
	errClientGone = errors.New("client went away")
)

// requestBodyError wraps a failure to read the client's request body: the
// client's fault, never the upstream's.
type requestBodyError struct{ err error }

func (e *requestBodyError) Error() string { return "read request body: " + e.err.Error() }
func (e *requestBodyError) Unwrap() error { return e.err }

// localError wraps a failure caused by a shortage of this machine's
// resources (see isLocalError).
type localError struct{ err error }

func (e *localError) Error() string { return "local resource exhausted: " + e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

// statusFor maps an error from forwarding a request to the status the
// client gets. It is the only place that does (caddy reverseproxy
// statusError does the same job):
//
//   - client went away: StatusClientClosedRequest, for the logs only;
//   - request body over MaxRequestBody: 413 (RFC 9110 §15.5.14);
//   - request body unreadable (malformed chunking): 400; paused past
//     timeouts.body_read: 408;
//   - no eligible target, every eligible target at its max_conns, or
//     this machine out of a resource (file descriptors, memory, ports):
//     503 (RFC 9110 §15.6.4: temporary overload, not the target's fault);
//   - the upstream timed out (dial, TLS handshake, response header,
//     RequestTimeout): 504 (RFC 9110 §15.6.5);
//   - anything else: 502 (RFC 9110 §15.6.3).
func statusFor(err error) int {
	var (
		tooLarge *http.MaxBytesError
		bodyErr  *requestBodyError
		localErr *localError
		netErr   net.Error
	)
	switch {
	case errors.Is(err, errClientGone):
		return StatusClientClosedRequest
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.As(err, &bodyErr):
		if errors.As(err, &netErr) && netErr.Timeout() {
			// The client paused its body past timeouts.body_read
			// (RFC 9110 §15.5.9).
			return http.StatusRequestTimeout
		}
		return http.StatusBadRequest
	case errors.Is(err, errNoTarget), errors.Is(err, errCapacity), errors.As(err, &localErr):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return http.StatusGatewayTimeout
	default:
		return http.StatusBadGateway
	}
}

// kindOf classifies an upstream error for the Observer. connectFailed
// reports whether the attempt failed before a connection was obtained.
func kindOf(err error, connectFailed bool) string {
	var netErr net.Error
	switch {
	case errors.Is(err, errNoTarget):
		return KindNoTarget
	case errors.Is(err, errCapacity):
		return KindCapacity
	case errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return KindTimeout
	case connectFailed:
		return KindConnect
	default:
		return KindProtocol
	}
}

// isDialError reports whether err comes from dialing the target:
// net.Dialer returns a *net.OpError with Op "dial" for every connect
// failure (refused, unreachable, timeout, resolution).
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
