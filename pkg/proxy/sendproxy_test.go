package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/l4"
)

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// newProxyProtocolBackend starts a backend that requires a PROXY header
// from 127.0.0.1 and answers with the client address the header named.
func newProxyProtocolBackend(t *testing.T) (*httptest.Server, *countingListener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.RemoteAddr)
	}))
	srv.Listener = l4.AcceptProxy(cl, l4.AcceptOptions{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	srv.Config.ErrorLog = testStdLogger(t)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, cl
}

func TestSendProxyProtocol(t *testing.T) {
	tests := []struct {
		name    string
		version string
		xff     string // X-Forwarded-For sent by the (trusted) client
		want    string // client address the backend sees; "peer" means the client's own
	}{
		{name: "v1 peer", version: "v1", want: "peer"},
		{name: "v2 peer", version: "v2", want: "peer"},
		{name: "v2 forwarded client", version: "v2", xff: "203.0.113.7", want: "203.0.113.7:0"},
		{name: "v1 forwarded v6 client", version: "v1", xff: "2001:db8::7", want: "[2001:db8::7]:0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			backend, conns := newProxyProtocolBackend(t)
			hr := newHarness(t, harnessOptions{
				targets:  []string{backend.Listener.Addr().String()},
				upstream: config.Upstream{ProxyProtocol: &config.UpstreamProxyProtocol{Send: tt.version}},
				opts:     Options{TrustedProxies: mustPrefixes(t, "127.0.0.1/32")},
			})
			// One client connection, two requests: each goes out on a
			// connection of its own with its own header.
			c, err := net.Dial("tcp", hr.front.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			want := tt.want
			if want == "peer" {
				want = c.LocalAddr().String()
			}
			for i := range 2 {
				req := "GET / HTTP/1.1\r\nHost: x\r\n"
				if tt.xff != "" {
					req += "X-Forwarded-For: " + tt.xff + "\r\n"
				}
				if _, err := io.WriteString(c, req+"\r\n"); err != nil {
					t.Fatal(err)
				}
				res, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				hr.result(t)
				if res.StatusCode != 200 || string(body) != want {
					t.Fatalf("request %d: %d %q, want 200 %q", i, res.StatusCode, body, want)
				}
			}
			if n := conns.n.Load(); n != 2 {
				t.Errorf("backend accepted %d connections, want 2 (one per request)", n)
			}
		})
	}
}

func TestProxyAddrsWithoutRequest(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	src, dst := proxyAddrs(t.Context(), a)
	if src != a.LocalAddr() || dst != a.RemoteAddr() {
		t.Errorf("got %v %v, want the connection's own", src, dst)
	}
	if !strings.Contains(fmt.Sprint(src), "pipe") {
		t.Errorf("src %v", src)
	}
}
