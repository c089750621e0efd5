package server

import (
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/tracecontext"
)

// traceBackend answers with the traceparent and tracestate it got.
func traceBackend(t *testing.T) *httptest.Server {
	t.Helper()
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Join(r.Header.Values("Traceparent"), ",")+"|"+r.Header.Get("Tracestate"))
	}))
	t.Cleanup(b.Close)
	return b
}

const incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestTraceparentPropagation(t *testing.T) {
	tests := []struct {
		name      string
		header    []string // traceparent fields sent
		state     string
		keepTrace bool // the backend sees the incoming trace id
		wantState string
	}{
		{name: "absent: a new trace", state: "", keepTrace: false},
		{name: "valid: same trace, new span, tracestate kept", header: []string{incoming}, state: "congo=t61rcWkgMzE",
			keepTrace: true, wantState: "congo=t61rcWkgMzE"},
		{name: "upper case: a new trace without tracestate", header: []string{strings.ToUpper(incoming)}, state: "congo=x"},
		{name: "all-zero trace id: a new trace", header: []string{"00-00000000000000000000000000000000-00f067aa0ba902b7-01"}},
		{name: "two fields: a new trace", header: []string{incoming, incoming}, state: "a=b"},
	}
	b := traceBackend(t)
	cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, hostOf(b))
	on := true
	cfg.Log.Access = &on
	var logs syncBuffer
	r := serve(t, cfg, nil, func(o *Options) { o.AccessLogger = slog.New(slog.NewJSONHandler(&logs, nil)) })
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "http://"+r.addrs["http"]+"/"+string(rune('a'+i)), nil)
			req.Header["Traceparent"] = tt.header
			if tt.state != "" {
				req.Header.Set("Tracestate", tt.state)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			tp, state, _ := strings.Cut(string(body), "|")
			p, ok := tracecontext.Parse(tp)
			if !ok {
				t.Fatalf("backend got traceparent %q", tp)
			}
			in, _ := tracecontext.Parse(incoming)
			if got := p.TraceID == in.TraceID; got != tt.keepTrace {
				t.Errorf("backend trace %s, incoming kept = %v, want %v", p.TraceID, got, tt.keepTrace)
			}
			if p.SpanID == in.SpanID {
				t.Error("the proxy forwarded the client's span id as its own")
			}
			if tt.keepTrace && !p.Sampled() {
				t.Error("sampled flag of the parent lost")
			}
			if state != tt.wantState {
				t.Errorf("tracestate %q, want %q", state, tt.wantState)
			}
			// The access log names the same trace.
			line := waitLines(&logs, `"uri":"/`+string(rune('a'+i))+`"`)
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("access log line %q: %v", line, err)
			}
			if rec["trace_id"] != p.TraceID.String() {
				t.Errorf("access log trace_id %v, want %s", rec["trace_id"], p.TraceID)
			}
		})
	}
}

// collector is an OTLP/HTTP trace collector stub.
type collector struct {
	mu    sync.Mutex
	spans []*tracepb.Span
	got   chan struct{}
}

func newCollector(t *testing.T) (*collector, *httptest.Server) {
	c := &collector{got: make(chan struct{}, 100)}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			t.Errorf("collector got %s %s (%s)", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
		}
		b, _ := io.ReadAll(r.Body)
		var req coltrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &req); err != nil {
			t.Errorf("collector: %v", err)
			w.WriteHeader(400)
			return
		}
		c.mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				c.spans = append(c.spans, ss.Spans...)
			}
		}
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		w.Write(out)
		c.got <- struct{}{}
	}))
	t.Cleanup(s.Close)
	return c, s
}

func (c *collector) find(traceID string) *tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.spans {
		if hex.EncodeToString(s.TraceId) == traceID {
			return s
		}
	}
	return nil
}

func TestOTLPExport(t *testing.T) {
	col, colSrv := newCollector(t)
	b := traceBackend(t)
	cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, hostOf(b))
	zero := 0.0
	cfg.Tracing = config.Tracing{OTLPEndpoint: colSrv.URL, SampleRatio: &zero, ServiceName: "edge"}
	if err := cfg.Validate([]string{"http"}); err != nil {
		t.Fatal(err)
	}
	r := serve(t, cfg, nil)
	get := func(traceparent string) string {
		req, _ := http.NewRequest("GET", "http://"+r.addrs["http"]+"/x", nil)
		if traceparent != "" {
			req.Header.Set("Traceparent", traceparent)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tp, _, _ := strings.Cut(string(body), "|")
		return tp
	}
	sampled := get(incoming) // parent sampled: recorded whatever the ratio
	unsampled := get("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")
	fresh := get("") // ratio 0: not recorded
	// Stopping the server closes the generation, which flushes.
	r.cancel()
	err := <-r.done
	r.done <- err
	select {
	case <-col.got:
	case <-time.After(10 * time.Second):
		t.Fatal("no export reached the collector")
	}
	sp, _ := tracecontext.Parse(sampled)
	span := col.find(sp.TraceID.String())
	if span == nil {
		t.Fatalf("no span of trace %s exported", sp.TraceID)
	}
	if hex.EncodeToString(span.SpanId) != sp.SpanID.String() {
		t.Errorf("span id %x, but the backend was told %s", span.SpanId, sp.SpanID)
	}
	if hex.EncodeToString(span.ParentSpanId) != "00f067aa0ba902b7" || span.Kind != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("span parent %x kind %v", span.ParentSpanId, span.Kind)
	}
	if span.Name != "GET default" {
		t.Errorf("span name %q", span.Name)
	}
	for _, tp := range []string{unsampled, fresh} {
		p, _ := tracecontext.Parse(tp)
		if col.find(p.TraceID.String()) != nil {
			t.Errorf("trace %s exported though not sampled", p.TraceID)
		}
	}
}

func TestOTLPDeadCollectorFailsNoRequest(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close() // nothing listens there now
	b := traceBackend(t)
	cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, hostOf(b))
	cfg.Tracing = config.Tracing{OTLPEndpoint: deadURL}
	r := serve(t, cfg, nil)
	for range 20 {
		resp, err := http.Get("http://" + r.addrs["http"] + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d with a dead collector", resp.StatusCode)
		}
	}
}

func TestTracingConfigErrors(t *testing.T) {
	two := 2.0
	tests := []struct {
		name string
		tc   config.Tracing
		key  string
	}{
		{name: "ratio above 1", tc: config.Tracing{SampleRatio: &two}, key: "tracing.sample_ratio"},
		{name: "no scheme", tc: config.Tracing{OTLPEndpoint: "127.0.0.1:4318"}, key: "tracing.otlp_endpoint"},
		{name: "grpc scheme", tc: config.Tracing{OTLPEndpoint: "grpc://127.0.0.1:4317"}, key: "tracing.otlp_endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, "127.0.0.1:1")
			cfg.Tracing = tt.tc
			err := cfg.Validate([]string{"http"})
			if err == nil || !strings.Contains(err.Error(), tt.key+":") {
				t.Fatalf("err = %v, want one naming %s", err, tt.key)
			}
		})
	}
}

func TestOTLPTracesURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:4318":               "http://127.0.0.1:4318/v1/traces",
		"http://127.0.0.1:4318/":              "http://127.0.0.1:4318/v1/traces",
		"https://collector.example/otlp/v1/t": "https://collector.example/otlp/v1/t",
	} {
		if got, err := otlpTracesURL(in); err != nil || got != want {
			t.Errorf("otlpTracesURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestForwardProxyAddsNoTraceparent: a forward proxy's requests go to any
// origin; the proxy must not tag them with a trace of its own.
func TestForwardProxyAddsNoTraceparent(t *testing.T) {
	b := traceBackend(t)
	fwd := config.Listener{Name: "fwd", Protocol: config.ProtocolForwardProxy, Destinations: &config.Destinations{Allow: []string{"127.0.0.0/8"}}}
	cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}, fwd}, hostOf(b))
	r := serve(t, cfg, nil)
	proxyURL, _ := url.Parse("http://" + r.addrs["fwd"])
	tr := &http.Transport{Proxy: http.ProxyURL(proxyURL)}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(b.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "|" {
		t.Errorf("origin got %d %q, want no traceparent", resp.StatusCode, body)
	}
}
