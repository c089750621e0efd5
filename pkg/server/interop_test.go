package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/l4"
)

// freePort returns a loopback address that was free a moment ago, for
// peers (HAProxy) that bind from a config file.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startHAProxy runs haproxy -db with conf until the end of the test and
// waits until it accepts on addr.
func startHAProxy(t *testing.T, conf, addr string) {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Skip("haproxy not installed (apt-get install -y haproxy)")
	}
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-db", "-f", path)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		t.Logf("haproxy output:\n%s", out.String())
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy does not accept on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dialFrom connects to addr from the loopback address src, so that the
// client differs from the proxies (all on 127.0.0.1).
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// TestPROXYInterop: real peers speak the PROXY protocol to handoff.
// HAProxy (send-proxy-v2) in front of an http listener and a tcp
// listener, and curl --haproxy-protocol (v1) against the http listener:
// the client address handoff forwards (X-Forwarded-For; the header it
// sends on to a tcp target) is the PROXY source, not the proxy's.
func TestPROXYInterop(t *testing.T) {
	xff := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Forwarded-For"))
	}))
	defer xff.Close()
	// The tcp target reads handoff's own PROXY header and answers with
	// the client it names.
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pln := l4.AcceptProxy(tln, l4.AcceptOptions{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	defer pln.Close()
	go func() {
		for {
			c, err := pln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s\n", c.RemoteAddr())
			c.Close()
		}
	}()
	trusted := []string{"127.0.0.1/32", "127.0.0.3/32"}
	cfg := baseConfig([]config.Listener{
		{Name: "http", Protocol: config.ProtocolHTTP, ProxyProtocol: &config.ProxyProtocol{Accept: true, Trusted: trusted}},
		{Name: "pg", Protocol: config.ProtocolTCP, Upstream: "db",
			ProxyProtocol: &config.ProxyProtocol{Accept: true, Trusted: trusted, Send: "v1"}},
	}, hostOf(xff))
	cfg.Upstreams["db"] = config.Upstream{Targets: []config.Target{{Address: tln.Addr().String(), Weight: 1}}}
	r := serve(t, cfg, nil)

	fhttp, ftcp := freePort(t), freePort(t)
	startHAProxy(t, fmt.Sprintf(`defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fhttp
  bind %s
  default_backend bhttp
backend bhttp
  server handoff %s send-proxy-v2
frontend ftcp
  bind %s
  default_backend btcp
backend btcp
  server handoff %s send-proxy-v2
`, fhttp, r.addrs["http"], ftcp, r.addrs["pg"]), ftcp)

	t.Run("haproxy send-proxy-v2 to an http listener", func(t *testing.T) {
		c := dialFrom(t, "127.0.0.2", fhttp)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		if string(body) != "127.0.0.2" {
			t.Errorf("X-Forwarded-For %q, want the PROXY source 127.0.0.2", body)
		}
	})
	t.Run("haproxy send-proxy-v2 to a tcp listener", func(t *testing.T) {
		c := dialFrom(t, "127.0.0.2", ftcp)
		got, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if want := c.LocalAddr().String() + "\n"; got != want {
			t.Errorf("target saw client %q, want %q", got, want)
		}
	})
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	tests := []struct {
		name    string
		args    []string
		want    string
		wantErr bool
	}{
		{name: "curl --haproxy-protocol", args: []string{"--haproxy-protocol"}, want: "127.0.0.3"},
		{name: "trusted peer without a header is closed", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			args := append([]string{"-sS", "--max-time", "5", "--interface", "127.0.0.3"}, tt.args...)
			out, err := exec.CommandContext(ctx, curl, append(args, "http://"+r.addrs["http"]+"/")...).CombinedOutput()
			if tt.wantErr {
				if err == nil {
					t.Errorf("curl succeeded: %q", out)
				}
				return
			}
			if err != nil || strings.TrimSpace(string(out)) != tt.want {
				t.Errorf("curl: %q %v, want X-Forwarded-For %q", out, err, tt.want)
			}
		})
	}
}
