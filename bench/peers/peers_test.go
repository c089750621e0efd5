package peers

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/handoff-proxy/handoff/bench/load"
	"github.com/handoff-proxy/handoff/bench/selfcert"
	"github.com/handoff-proxy/handoff/pkg/origin"

	"github.com/handoff-proxy/handoff/pkg/handofftest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startBackend runs the bench backend on port-0 listeners.
func startBackend(t *testing.T, files selfcert.Files) Backend {
	t.Helper()
	h := origin.Handler(origin.Options{})
	plain := httptest.NewUnstartedServer(h)
	plain.Config = origin.NewHTTPServer(h)
	plain.Start()
	t.Cleanup(plain.Close)
	secure := httptest.NewUnstartedServer(h)
	secure.EnableHTTP2 = true
	kp, err := tls.LoadX509KeyPair(files.Cert, files.Key)
	if err != nil {
		t.Fatal(err)
	}
	secure.TLS = &tls.Config{Certificates: []tls.Certificate{kp}}
	secure.StartTLS()
	t.Cleanup(secure.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	src := origin.NewSource(ln)
	t.Cleanup(func() { _ = src.Close() })
	return Backend{
		HTTP:  strings.TrimPrefix(plain.URL, "http://"),
		HTTPS: strings.TrimPrefix(secure.URL, "https://"),
		TCP:   ln.Addr().String(),
	}
}

// TestPeersCarryTraffic starts every installed peer with its rendered
// config and checks each capability it claims: a 1 KiB GET over HTTP/1.1,
// h2c and TLS, a cache hit, a WebSocket echo and TCP bytes.
func TestPeersCarryTraffic(t *testing.T) {
	files, err := selfcert.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	be := startBackend(t, files)
	stream := ""
	if _, err := os.Stat(NginxStreamModule); err == nil {
		stream = NginxStreamModule
	}
	bins := map[string]string{HAProxy: "haproxy", Nginx: "nginx", Caddy: "caddy", Varnish: "varnishd", Handoff: os.Getenv("BENCH_HANDOFF_BIN")}
	for _, spec := range Specs(stream) {
		t.Run(spec.Name, func(t *testing.T) {
			if bin, ok := bins[spec.Name]; ok {
				if bin == "" {
					t.Skip("BENCH_HANDOFF_BIN not set")
				}
				if _, err := exec.LookPath(bin); err != nil {
					t.Skipf("%s not installed", bin)
				}
			}
			dir := t.TempDir()
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()
			h3, has := spec.Caps[CapH3]
			p, err := Start(ctx, spec.Name, StartOptions{HTTP3: has && h3 == "",
				Dir: dir, Backend: be, TLS: files, NginxStream: stream, HandoffBinary: bins[Handoff],
				Logger: slog.New(slog.NewTextHandler(handofftest.Writer(t), nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = p.Stop() })
			for cp, reason := range spec.Caps {
				if reason != "" {
					continue
				}
				t.Run(string(cp), func(t *testing.T) { checkCap(t, ctx, spec.Name, cp, p.Endpoints) })
			}
		})
	}
}

func checkCap(t *testing.T, ctx context.Context, peer string, cp Capability, ep Endpoints) {
	get := func(tr *http.Transport, url string, wantLen int) *http.Response {
		t.Helper()
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || len(b) != wantLen {
			t.Fatalf("GET %s: status %d, %d bytes, want 200 and %d", url, resp.StatusCode, len(b), wantLen)
		}
		return resp
	}
	switch cp {
	case CapHTTP:
		get(&http.Transport{}, "http://"+ep.HTTP+origin.Path1K, 1024)
	case CapH2C:
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		resp := get(&http.Transport{Protocols: &p}, "http://"+ep.H2C+origin.Path1K, 1024)
		if resp.ProtoMajor != 2 {
			t.Fatalf("proto %s, want HTTP/2", resp.Proto)
		}
	case CapTLS:
		tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}
		resp := get(tr, "https://"+ep.HTTPS+origin.Path100K, 100<<10)
		if resp.ProtoMajor != 2 {
			t.Fatalf("proto %s, want HTTP/2 by ALPN", resp.Proto)
		}
	case CapCache:
		// The backend numbers each response it generates: a hit repeats
		// the number. Direct is the uncached baseline.
		url := "http://" + ep.HTTP + origin.PathCache1K
		first := get(&http.Transport{}, url, 1024).Header.Get(origin.HeaderOriginSeq)
		second := get(&http.Transport{}, url, 1024).Header.Get(origin.HeaderOriginSeq)
		if first == "" || (peer != Direct && second != first) {
			t.Fatalf("origin sequence %q then %q: second GET was not a cache hit", first, second)
		}
	case CapWebSocket:
		r, err := load.RunWS(ctx, load.WSOptions{URL: "ws://" + ep.HTTP + origin.PathWebSocket, Connections: 2, Window: load.Window{Duration: time.Second}})
		if err != nil || r.Ops == 0 || r.Errors != 0 {
			t.Fatalf("websocket: %+v, %v", r, err)
		}
	case CapH3:
		r, err := load.RunH3(ctx, load.H3Options{URL: "https://" + ep.HTTPS + origin.Path1K, Clients: 2, Streams: 2, Window: load.Window{Duration: time.Second}})
		if err != nil || r.Ops == 0 || r.Errors != 0 {
			t.Fatalf("h3: %+v, %v", r, err)
		}
	case CapTCP:
		r, err := load.RunTCP(ctx, load.TCPOptions{Addr: ep.TCP, Connections: 2, Window: load.Window{Duration: time.Second}})
		if err != nil || r.Ops <= 0 {
			t.Fatalf("tcp: %+v, %v", r, err)
		}
	case CapGzip, CapZstd:
		// Transport.DisableCompression: see the encoding, do not undo it.
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ep.HTTP+origin.PathText100K, nil)
		req.Header.Set("Accept-Encoding", string(cp))
		tr := &http.Transport{DisableCompression: true}
		defer tr.CloseIdleConnections()
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != string(cp) || len(b) >= 100<<10 {
			t.Fatalf("status %d, Content-Encoding %q, %d bytes; want 200, %s, compressed", resp.StatusCode, resp.Header.Get("Content-Encoding"), len(b), cp)
		}
		t.Logf("%s: 100 KiB text in %d bytes", cp, len(b))
	case CapRateLimit, CapRateLimitRedis:
		// Needs a differently configured peer: TestHandoffRateLimit.
		t.Skip("covered by TestHandoffRateLimit")
	default:
		t.Fatalf("unknown capability %q", cp)
	}
}

func TestStartUnknownPeer(t *testing.T) {
	_, err := Start(t.Context(), "nope", StartOptions{Dir: t.TempDir(), Backend: Backend{HTTP: "127.0.0.1:1"}})
	if err == nil {
		t.Fatal("want error")
	}
}

func TestStartMissingBinary(t *testing.T) {
	_, err := Start(t.Context(), Handoff, StartOptions{Dir: t.TempDir(), Backend: Backend{HTTP: "127.0.0.1:1"}, HandoffBinary: "/nonexistent/handoff"})
	if !errors.Is(err, ErrNoBinary) {
		t.Fatalf("err = %v, want ErrNoBinary", err)
	}
}
