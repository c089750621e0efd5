// Package accesslog writes one log record per HTTP request through an
// injected *slog.Logger: who asked for what, what was answered, how long it
// took, and which route, upstream and target served it (from package
// reqinfo). Under systemd the logger writes to stdout and journald keeps
// the lines; whether they are JSON or logfmt is the slog handler's choice.
//
// It owns the response-writer wrapping needed to learn the status and size,
// and keeps Flush, Hijack (WebSocket), io.ReaderFrom and
// http.ResponseController working through it. It does not know how
// requests are routed or forwarded, nor where the log goes.
package accesslog

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"time"

	"github.com/handoff-proxy/handoff/pkg/clientcert"
	"github.com/handoff-proxy/handoff/pkg/reqinfo"
)

// StatusClientGone is the status logged for a request whose client went
// away before the response was complete: 499, the nginx convention. It is
// not an HTTP status (RFC 9110 §15 defines none for it).
const StatusClientGone = reqinfo.StatusClientGone

// Message is the message of every access log record.
const Message = "request"

// Attribute keys of an access log record, in the order they are written.
// The record's own time (slog.TimeKey) is when the request arrived.
const (
	KeyClient    = "client"     // remote IP, without port
	KeyMethod    = "method"     // request method
	KeyHost      = "host"       // Host header (HTTP/2 :authority)
	KeyURI       = "uri"        // path and query as the client sent them
	KeyProto     = "proto"      // "HTTP/1.1", "HTTP/2.0"
	KeyStatus    = "status"     // status sent; 499 when the client went away; 101 for a protocol switch
	KeyBytes     = "bytes"      // response body bytes written (not counting a hijacked connection)
	KeyDuration  = "duration"   // seconds, float
	KeyRoute     = "route"      // matched route; empty when none
	KeyUpstream  = "upstream"   // upstream of the route
	KeyTarget    = "target"     // last target tried
	KeyRetries   = "retries"    // times the request went to another target
	KeyRequestID = "request_id" // X-Request-Id forwarded
	KeyUserAgent = "user_agent" // User-Agent header
	KeyReferer   = "referer"    // Referer header (RFC 9110 §10.1.3 spelling)
	// KeyClientCert is the subject of the client certificate verified on
	// a listener with tls.client_auth (package clientcert); empty without.
	KeyClientCert = "client_cert_subject"
	// KeyTraceID is the W3C trace id the request was forwarded with
	// (traceparent); empty when the server answered before routing.
	KeyTraceID = "trace_id"
)

// Options configures New.
type Options struct {
	// Logger receives the records. Nil means nothing is logged (but the
	// request still gets a reqinfo.Info).
	Logger *slog.Logger
	// Level of the records. Zero means slog.LevelInfo.
	Level slog.Level
	// Now is the clock for the record time and the duration. Nil means
	// time.Now.
	Now func() time.Time
	// Sample is the share (0..1) of successful requests (status below
	// 400) that are logged; error answers and requests whose client went
	// away are always logged. Zero, or 1 and above, means every request.
	Sample float64
	// Rand returns a number in [0, 1) for sampling. Nil means
	// math/rand/v2's Float64.
	Rand func() float64
}

// Keep returns the sampling decision of o: whether a request answered
// with status is logged.
func (o Options) Keep() func(status int) bool {
	if o.Sample <= 0 || o.Sample >= 1 {
		return func(int) bool { return true }
	}
	random := o.Rand
	if random == nil {
		random = rand.Float64
	}
	return func(status int) bool { return status >= 400 || random() < o.Sample }
}

// Middleware logs each request served by next at Info through logger. It
// is New(Options{Logger: logger}, next).
func Middleware(logger *slog.Logger, next http.Handler) http.Handler {
	return New(Options{Logger: logger}, next)
}

// New returns a handler that serves with next and then logs one record
// (message Message, attributes Key*) for the request.
//
// When the request carries no reqinfo.Info yet, New creates one with
// reqinfo.With, so it may sit inside or outside the metrics middleware;
// inner layers must fill the Info they find rather than create another.
// The record is written after next returns: for a WebSocket or other
// upgraded connection that is when the connection closes.
func New(o Options, next http.Handler) http.Handler {
	var h slog.Handler = slog.DiscardHandler
	if o.Logger != nil {
		h = o.Logger.Handler()
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	keep := o.Keep()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in := reqinfo.From(r.Context())
		if in == nil {
			var ctx context.Context
			ctx, in = reqinfo.With(r.Context())
			r = r.WithContext(ctx)
		}
		// Level may change at run time (slog.LevelVar): ask per request.
		if !h.Enabled(r.Context(), o.Level) {
			next.ServeHTTP(w, r)
			return
		}

		start := now()
		// Read the request before next runs: inner layers may rewrite a
		// shared *url.URL.
		method, host, uri, proto := r.Method, r.Host, r.URL.RequestURI(), r.Proto
		ua, referer := r.UserAgent(), r.Referer()
		client := clientIP(r.RemoteAddr)
		certSubject := clientcert.Subject(r.TLS)

		rec := reqinfo.NewRecorder(w)
		returned := false
		defer func() {
			// Log panicking requests too: net/http recovers the panic
			// (http.ErrAbortHandler included) and drops the connection.
			status := rec.FinalStatus(r, in, !returned)
			if !keep(status) {
				return
			}
			Write(h, o.Level, Entry{
				Start: start, End: now(), Client: client, Method: method, Host: host, URI: uri, Proto: proto,
				Status: status, Bytes: rec.Bytes(), Info: in, UserAgent: ua, Referer: referer, ClientCert: certSubject,
			})
		}()
		next.ServeHTTP(rec, r)
		returned = true
	})
}

// Entry is one access log record's content, for servers that serve
// requests without net/http (the HTTP/1.1 fast path).
type Entry struct {
	Start, End               time.Time
	Client                   string // IP without port
	Method, Host, URI, Proto string
	Status                   int
	Bytes                    int64
	Info                     *reqinfo.Info
	UserAgent, Referer       string
	ClientCert               string // verified client certificate subject
}

// Enabled reports whether h logs records at level (it may change at run
// time: ask per request).
func Enabled(h slog.Handler, level slog.Level) bool {
	return h.Enabled(context.Background(), level)
}

// Write logs e through h at level, with the attributes of New's records.
func Write(h slog.Handler, level slog.Level, e Entry) {
	record := slog.NewRecord(e.Start, level, Message, 0)
	record.AddAttrs(
		slog.String(KeyClient, e.Client),
		slog.String(KeyMethod, e.Method),
		slog.String(KeyHost, e.Host),
		slog.String(KeyURI, e.URI),
		slog.String(KeyProto, e.Proto),
		slog.Int(KeyStatus, e.Status),
		slog.Int64(KeyBytes, e.Bytes),
		slog.Float64(KeyDuration, e.End.Sub(e.Start).Seconds()),
		slog.String(KeyRoute, e.Info.Route),
		slog.String(KeyUpstream, e.Info.Upstream),
		slog.String(KeyTarget, e.Info.Target),
		slog.Int(KeyRetries, e.Info.Retries),
		slog.String(KeyRequestID, e.Info.RequestID),
		slog.String(KeyUserAgent, e.UserAgent),
		slog.String(KeyReferer, e.Referer),
		slog.String(KeyClientCert, e.ClientCert),
		slog.String(KeyTraceID, e.Info.TraceID),
	)
	// The request may be over (client gone): the record is written anyway.
	_ = h.Handle(context.Background(), record)
}

// clientIP is the host part of a RemoteAddr ("192.0.2.1:1234",
// "[2001:db8::1]:1234"), or the whole of it when it has no port (a Unix
// socket peer is "@" or empty).
func clientIP(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return remoteAddr
	}
	return host
}

// ServerAnswer logs at Info through logger a response the HTTP server
// wrote itself without a handler (400 for a malformed request, 431 for
// oversized headers, 501, 505): the request was never parsed, so only the
// client, the status and the time are known; the other keys are empty so
// that every record has the same shape.
func ServerAnswer(logger *slog.Logger, remoteAddr string, status int, at time.Time) {
	if logger == nil || !logger.Handler().Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	record := slog.NewRecord(at, slog.LevelInfo, Message, 0)
	record.AddAttrs(
		slog.String(KeyClient, clientIP(remoteAddr)),
		slog.String(KeyMethod, ""),
		slog.String(KeyHost, ""),
		slog.String(KeyURI, ""),
		slog.String(KeyProto, "HTTP/1.1"),
		slog.Int(KeyStatus, status),
		slog.Int64(KeyBytes, 0),
		slog.Float64(KeyDuration, 0),
		slog.String(KeyRoute, ""),
		slog.String(KeyUpstream, ""),
		slog.String(KeyTarget, ""),
		slog.Int(KeyRetries, 0),
		slog.String(KeyRequestID, ""),
		slog.String(KeyUserAgent, ""),
		slog.String(KeyReferer, ""),
		slog.String(KeyClientCert, ""),
		slog.String(KeyTraceID, ""),
	)
	_ = logger.Handler().Handle(context.Background(), record)
}
