package forwardproxy

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestAllowed(t *testing.T) {
	own := netip.MustParseAddr("192.0.2.10")
	h := New(Options{Own: []netip.Addr{own}, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")},
		Deny: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}})
	tests := []struct {
		name string
		ip   string
		want bool
	}{
		{"public", "203.0.113.5", true},
		{"loopback", "127.0.0.1", false},
		{"loopback v6", "::1", false},
		{"loopback v4-mapped", "::ffff:127.0.0.1", false},
		{"metadata service", "169.254.169.254", false},
		{"link-local v6", "fe80::1", false},
		{"unspecified", "0.0.0.0", false},
		{"unspecified v6", "::", false},
		{"multicast", "224.0.0.1", false},
		{"own address", "192.0.2.10", false},
		{"allowed loopback", "127.0.0.2", true},
		{"denied", "198.51.100.7", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := h.Allowed(netip.MustParseAddr(tt.ip)); got != tt.want {
				t.Fatalf("Allowed(%s) = %v", tt.ip, got)
			}
		})
	}
}

// connect sends a raw CONNECT and returns the status line.
func connect(t *testing.T, proxy, target string) string {
	t.Helper()
	c, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(line)
}

func TestConnectStatus(t *testing.T) {
	// A port nobody listens on: the dial fails, so no 200 (the seed
	// answered 200 before dialling).
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	_, closedPort, _ := net.SplitHostPort(closed)
	var port int
	fmt.Sscan(closedPort, &port)
	h := New(Options{ConnectPorts: []int{port, 443}, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	srv := httptest.NewServer(h)
	defer srv.Close()
	proxy := strings.TrimPrefix(srv.URL, "http://")
	tests := []struct{ name, target, want string }{
		{"refused dial is 502", closed, "HTTP/1.1 502 Bad Gateway"},
		{"port outside connect_ports", "127.0.0.1:22", "HTTP/1.1 403 Forbidden"},
		{"loopback not allowed", "127.0.0.2:443", "HTTP/1.1 403 Forbidden"},
		{"no port", "example.com", "HTTP/1.1 400 Bad Request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := connect(t, proxy, tt.target); got != tt.want {
				t.Fatalf("CONNECT %s: %q, want %q", tt.target, got, tt.want)
			}
		})
	}
}

func TestTunnelCarriesBytes(t *testing.T) {
	echo, _ := net.Listen("tcp", "127.0.0.1:0")
	defer echo.Close()
	go func() {
		c, err := echo.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b := make([]byte, 5)
		n, _ := c.Read(b)
		c.Write(b[:n])
	}()
	var port int
	fmt.Sscan(strings.Split(echo.Addr().String(), ":")[1], &port)
	obs := &rec{}
	h := New(Options{ConnectPorts: []int{port}, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, Observer: obs})
	srv := httptest.NewServer(h)
	defer srv.Close()
	c, _ := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	defer c.Close()
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: x\r\n\r\nhello", echo.Addr())
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	b := make([]byte, 5)
	if _, err := br.Read(b); err != nil || string(b) != "hello" {
		t.Fatalf("echo: %q %v", b, err)
	}
}

type rec struct{}

func (*rec) Tunnel(string, int64, int64) {}
