package server

// Tracing (config tracing, W3C Trace Context): every request leaves with
// a traceparent naming the proxy's span, the incoming trace's when the
// client sent a valid one, a new trace otherwise; the trace id is in the
// access log (trace_id). With tracing.otlp_endpoint the proxy's span is
// also recorded (parent-based ratio sampling) and exported over OTLP/HTTP
// by the generation's exporter, which a reload replaces and Close
// flushes. The middleware sits inside the access log (generation.chain),
// so that every protocol server that serves the generation's handler gets
// it.

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/handoff-proxy/handoff/pkg/clientip"
	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/reqinfo"
	"github.com/handoff-proxy/handoff/pkg/tracecontext"
)

// Export limits: a collector that is down or slow costs a bounded
// queue of spans (dropped when full), never a request.
const (
	otlpTimeout      = 5 * time.Second // one export request
	otlpFlushTimeout = 5 * time.Second // Close: the last batch
	otlpQueue        = 4096            // spans waiting for export
)

// genTracing is one generation's tracing: always the traceparent
// propagation, and with an endpoint the span exporter it owns.
type genTracing struct {
	provider *sdktrace.TracerProvider // nil without export
	tracer   trace.Tracer
	log      *slog.Logger
}

func newGenTracing(tc config.Tracing, log *slog.Logger) (*genTracing, error) {
	t := &genTracing{log: log}
	if tc.OTLPEndpoint == "" {
		return t, nil
	}
	endpoint, err := otlpTracesURL(tc.OTLPEndpoint)
	if err != nil {
		return nil, err
	}
	exp, err := otlptracehttp.New(context.Background(),
		otlptracehttp.WithEndpointURL(endpoint),
		otlptracehttp.WithTimeout(otlpTimeout),
		// The batch processor sends the next batch anyway; retrying
		// one only piles up behind a dead collector.
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}))
	if err != nil {
		return nil, fmt.Errorf("tracing: otlp exporter: %w", err)
	}
	ratio := 1.0
	if tc.SampleRatio != nil {
		ratio = *tc.SampleRatio
	}
	name := tc.ServiceName
	if name == "" {
		name = "handoff"
	}
	t.provider = sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(&loggedExporter{SpanExporter: exp, log: log}, sdktrace.WithMaxQueueSize(otlpQueue)),
		// W3C Trace Context §3.2.2.5.1: a caller that sampled wants the
		// whole trace; new traces are sampled at the ratio.
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", name))),
	)
	t.tracer = t.provider.Tracer("github.com/handoff-proxy/handoff")
	return t, nil
}

// otlpTracesURL is the OTLP/HTTP traces URL of an endpoint: its
// /v1/traces when the URL has no path (OTLP specification, "OTLP/HTTP
// Request"), the URL as given otherwise.
func otlpTracesURL(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", fmt.Errorf("tracing.otlp_endpoint: %w", err)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	return u.String(), nil
}

// Close flushes the spans still queued, within a bound, and stops the
// exporter. Safe on a nil or export-less genTracing.
func (t *genTracing) Close() {
	if t == nil || t.provider == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), otlpFlushTimeout)
	defer cancel()
	if err := t.provider.Shutdown(ctx); err != nil {
		t.log.Warn("tracing: flush spans on close", "error", err)
	}
}

// handler propagates the trace and, when exporting, records the span.
func (t *genTracing) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if forwardProxied(r) {
			next.ServeHTTP(w, r)
			return
		}
		parent, ok := tracecontext.FromHeader(r.Header)
		if !ok {
			// §3.3.1: tracestate is only meaningful with the traceparent
			// it came with; a new trace starts without it.
			delete(r.Header, tracecontext.StateHeader)
		}
		in := reqinfo.From(r.Context())
		if in == nil { // no access log: the inner layers fill this one
			var ctx context.Context
			ctx, in = reqinfo.With(r.Context())
			r = r.WithContext(ctx)
		}
		if t.tracer == nil {
			setTraceparent(r.Header, in, tracecontext.Child(parent, ok, false))
			next.ServeHTTP(w, r)
			return
		}
		t.serveRecorded(w, r, parent, ok, in, next)
	})
}

func (t *genTracing) serveRecorded(w http.ResponseWriter, r *http.Request, parent tracecontext.Parent, ok bool, in *reqinfo.Info, next http.Handler) {
	ctx := r.Context()
	if ok {
		ctx = trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: trace.TraceID(parent.TraceID), SpanID: trace.SpanID(parent.SpanID),
			TraceFlags: trace.TraceFlags(parent.Flags), Remote: true,
		}))
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	// OpenTelemetry HTTP semantic conventions (server span).
	_, span := t.tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		attribute.String("http.request.method", r.Method),
		attribute.String("url.path", r.URL.Path),
		attribute.String("url.scheme", scheme),
		attribute.String("server.address", r.Host),
		attribute.String("client.address", clientip.Peer(r.RemoteAddr).String()),
		attribute.String("user_agent.original", r.UserAgent()),
		attribute.String("network.protocol.version", strconv.Itoa(r.ProtoMajor)+"."+strconv.Itoa(r.ProtoMinor)),
	))
	sc := span.SpanContext()
	child := tracecontext.Parent{TraceID: tracecontext.TraceID(sc.TraceID()), SpanID: tracecontext.SpanID(sc.SpanID()),
		Flags: byte(sc.TraceFlags()) & tracecontext.FlagSampled}
	setTraceparent(r.Header, in, child)
	if !span.IsRecording() {
		span.End()
		next.ServeHTTP(w, r)
		return
	}
	rec := reqinfo.NewRecorder(w)
	returned := false
	defer func() {
		status := rec.FinalStatus(r, in, !returned)
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if in.Route != "" {
			span.SetName(r.Method + " " + in.Route)
		}
		span.SetAttributes(attribute.String("handoff.route", in.Route), attribute.String("handoff.upstream", in.Upstream),
			attribute.String("handoff.target", in.Target), attribute.Int("handoff.retries", in.Retries))
		if status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
		span.End()
	}()
	next.ServeHTTP(rec, r)
	returned = true
}

// forwardProxied reports whether r came in on a forward proxy listener
// (policy.go stamps those with their tunnels): its requests go to any
// origin, which gets no trace header of ours.
func forwardProxied(r *http.Request) bool {
	st, ok := r.Context().Value(listenerKey{}).(*listenerStamp)
	return ok && st.tunnels != nil
}

// setTraceparent forwards p and names its trace in in; the trace id is
// a slice of the header value, so the two cost one string.
func setTraceparent(h http.Header, in *reqinfo.Info, p tracecontext.Parent) {
	v := p.String()
	h[tracecontext.Header] = []string{v}
	in.TraceID = v[3:35] // "00-" trace-id "-" ...
}

// loggedExporter logs failed exports through the injected logger, at
// most once a minute, instead of the OpenTelemetry global error handler.
type loggedExporter struct {
	sdktrace.SpanExporter
	log  *slog.Logger
	mu   sync.Mutex
	last time.Time
	held int
}

func (e *loggedExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	if err == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if now := time.Now(); now.Sub(e.last) >= time.Minute {
		e.log.Warn("tracing: span export failed; spans dropped", "error", err, "spans", len(spans), "failures_not_logged", e.held)
		e.last, e.held = now, 0
	} else {
		e.held++
	}
	return nil
}
