package health

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/handofftest"
	"github.com/pires/go-proxyproto"
)

func hostport(s string) string {
	_, hp, _ := strings.Cut(s, "://")
	return hp
}

func TestProberCheck(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			io.WriteString(w, "status: green")
		case "/fail":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/redirect":
			w.WriteHeader(http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	defer ok.Close()
	// hang accepts connections and never answers.
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hang.Close()
	go func() {
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	refused, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedAddr := refused.Addr().String()
	refused.Close()

	ca := handofftest.NewCA(t)
	leaf := ca.Issue(t, "", "srv", "127.0.0.1")
	tlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	tlsSrv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLS}}
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	trusting := &tls.Config{RootCAs: ca.Pool()}

	h2c := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			w.WriteHeader(http.StatusHTTPVersionNotSupported)
			return
		}
		io.WriteString(w, "h2")
	}))
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	h2c.Config.Protocols = &p
	h2c.Start()
	defer h2c.Close()

	tests := []struct {
		name    string
		spec    ProbeSpec
		scheme  string
		addr    string
		wantErr string // "" means the check passes
	}{
		{name: "http ok", spec: ProbeSpec{Path: "/healthz"}, scheme: "http", addr: hostport(ok.URL)},
		{name: "http body contains", spec: ProbeSpec{Path: "/healthz", BodyContains: "green"}, scheme: "http", addr: hostport(ok.URL)},
		{name: "http body missing", spec: ProbeSpec{Path: "/healthz", BodyContains: "red"}, scheme: "http", addr: hostport(ok.URL), wantErr: "body does not contain"},
		{name: "http 503", spec: ProbeSpec{Path: "/fail"}, scheme: "http", addr: hostport(ok.URL), wantErr: "status 503"},
		{name: "http 503 expected", spec: ProbeSpec{Path: "/fail", Expect: []StatusRange{{503, 503}}}, scheme: "http", addr: hostport(ok.URL)},
		{name: "redirect in default range", spec: ProbeSpec{Path: "/redirect"}, scheme: "http", addr: hostport(ok.URL)},
		{name: "404", spec: ProbeSpec{Path: "/nope"}, scheme: "http", addr: hostport(ok.URL), wantErr: "status 404"},
		{name: "hung target times out", spec: ProbeSpec{Timeout: 100 * time.Millisecond}, scheme: "http", addr: hang.Addr().String(), wantErr: "timeout"},
		{name: "refused", spec: ProbeSpec{}, scheme: "http", addr: refusedAddr, wantErr: "connect"},
		{name: "tcp ok on hung target", spec: ProbeSpec{Type: ProbeTCP}, scheme: "http", addr: hang.Addr().String()},
		{name: "tcp refused", spec: ProbeSpec{Type: ProbeTCP}, scheme: "http", addr: refusedAddr, wantErr: "connect"},
		{name: "https with upstream CA", spec: ProbeSpec{TLS: trusting}, scheme: "https", addr: hostport(tlsSrv.URL)},
		{name: "https untrusted", spec: ProbeSpec{}, scheme: "https", addr: hostport(tlsSrv.URL), wantErr: "tls handshake"},
		{name: "tls type ok", spec: ProbeSpec{Type: ProbeTLS, TLS: trusting}, scheme: "https", addr: hostport(tlsSrv.URL)},
		{name: "tls type on plain server", spec: ProbeSpec{Type: ProbeTLS, Timeout: 500 * time.Millisecond}, scheme: "http", addr: hostport(ok.URL), wantErr: "tls handshake"},
		{name: "h2c", spec: ProbeSpec{}, scheme: "h2c", addr: hostport(h2c.URL)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := newProber(tt.spec).check(context.Background(), tt.scheme, tt.addr)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("check failed: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("check passed, want an error with %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("error %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseStatusRanges(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want []StatusRange
		err  bool
	}{
		{name: "default", in: nil, want: []StatusRange{{200, 399}}},
		{name: "single", in: []string{"204"}, want: []StatusRange{{204, 204}}},
		{name: "range and single", in: []string{"200-299", "404"}, want: []StatusRange{{200, 299}, {404, 404}}},
		{name: "reversed", in: []string{"399-200"}, err: true},
		{name: "not a status", in: []string{"abc"}, err: true},
		{name: "out of range", in: []string{"99"}, err: true},
		{name: "open end", in: []string{"200-"}, err: true},
	}
	for _, tt := range tests {
		got, err := ParseStatusRanges(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("%s: error %v, want error %v", tt.name, err, tt.err)
			continue
		}
		if !tt.err && (len(got) != len(tt.want) || (len(got) > 0 && got[0] != tt.want[0])) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func FuzzParseStatusRanges(f *testing.F) {
	f.Add("200-399")
	f.Add("404")
	f.Fuzz(func(t *testing.T, s string) {
		rs, err := ParseStatusRanges([]string{s})
		if err != nil {
			return
		}
		for _, r := range rs {
			if r.Lo < 100 || r.Hi > 599 || r.Hi < r.Lo {
				t.Fatalf("%q parsed to invalid %v", s, r)
			}
		}
	})
}

func TestParsePercent(t *testing.T) {
	tests := []struct {
		in   string
		want float64
		err  bool
	}{
		{in: "", want: 0}, {in: "10%", want: 0.1}, {in: "50", want: 0.5}, {in: "0%", want: 0},
		{in: "100%", want: 1}, {in: "101%", err: true}, {in: "-1%", err: true}, {in: "x", err: true},
	}
	for _, tt := range tests {
		got, err := ParsePercent(tt.in)
		if (err != nil) != tt.err || (!tt.err && got != tt.want) {
			t.Errorf("ParsePercent(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

// TestProberSendsProxyHeader: a target that requires the PROXY protocol
// gets a header from the check too, before the HTTP request.
func TestProberSendsProxyHeader(t *testing.T) {
	for _, v := range []int{1, 2} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		pln := &proxyproto.Listener{Listener: ln, Policy: func(net.Addr) (proxyproto.Policy, error) { return proxyproto.REQUIRE, nil }}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasPrefix(r.RemoteAddr, "127.0.0.1:") {
				w.WriteHeader(http.StatusBadRequest)
			}
		})}
		go srv.Serve(pln)
		err = newProber(ProbeSpec{SendProxy: v, Timeout: time.Second}).check(context.Background(), "http", ln.Addr().String())
		if err != nil {
			t.Errorf("v%d: check of a PROXY-only target failed: %v", v, err)
		}
		if err := newProber(ProbeSpec{Timeout: 300 * time.Millisecond}).check(context.Background(), "http", ln.Addr().String()); err == nil {
			t.Errorf("v%d: a check without the header passed against a target that requires it", v)
		}
		srv.Close()
	}
}
