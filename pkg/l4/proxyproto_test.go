package l4

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

func TestAcceptProxy(t *testing.T) {
	client := &net.TCPAddr{IP: net.ParseIP("203.0.113.7"), Port: 5555}
	dst := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 80}
	client6 := &net.TCPAddr{IP: net.ParseIP("2001:db8::7"), Port: 5555}
	dst6 := &net.TCPAddr{IP: net.ParseIP("::1"), Port: 80}
	hdr := func(v string, s, d net.Addr) []byte {
		var b bytes.Buffer
		if err := WriteHeader(&b, v, s, d); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	loop := netip.MustParsePrefix("127.0.0.0/8")
	other := netip.MustParsePrefix("10.0.0.0/8")
	tests := []struct {
		name    string
		trusted []netip.Prefix
		send    []byte
		remote  string // "" means the connection must fail
	}{
		{name: "v1 trusted", trusted: []netip.Prefix{loop}, send: hdr("v1", client, dst), remote: "203.0.113.7"},
		{name: "v2 trusted", trusted: []netip.Prefix{loop}, send: hdr("v2", client, dst), remote: "203.0.113.7"},
		{name: "v2 ipv6", trusted: []netip.Prefix{loop}, send: hdr("v2", client6, dst6), remote: "2001:db8::7"},
		{name: "missing from trusted", trusted: []netip.Prefix{loop}, send: nil},
		{name: "v1 untrusted", trusted: []netip.Prefix{other}, send: hdr("v1", client, dst)},
		{name: "v2 untrusted", trusted: []netip.Prefix{other}, send: hdr("v2", client, dst)},
		{name: "plain untrusted", trusted: []netip.Prefix{other}, send: nil, remote: "127.0.0.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			ln := AcceptProxy(raw, AcceptOptions{Trusted: tc.trusted, Timeout: time.Second})
			c, err := net.Dial("tcp", raw.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write(append(tc.send, "hello\n"...))
			s, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			line, rerr := bufio.NewReader(s).ReadString('\n')
			if tc.remote == "" {
				if rerr == nil {
					t.Fatalf("read %q, want an error", line)
				}
				return
			}
			if rerr != nil || line != "hello\n" {
				t.Fatalf("read %q %v", line, rerr)
			}
			if got := addrOf(s.RemoteAddr()).String(); got != tc.remote {
				t.Fatalf("remote %s, want %s", got, tc.remote)
			}
		})
	}
}

// TestSendProxy: a tcp relay with send: v2 writes a header the target
// parses back to the client's address.
func TestSendProxy(t *testing.T) {
	tgt, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	lp := AcceptProxy(tgt, AcceptOptions{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	got := make(chan string, 1)
	go func() {
		c, err := lp.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- c.RemoteAddr().String() + " " + string(b)
	}()
	for _, v := range []string{"v2"} {
		p := NewProxy(ProxyOptions{SendProxy: v})
		addr := proxyServer(t, p, staticPicker{tgt.Addr().String()})
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("x"))
		c.(*net.TCPConn).CloseWrite()
		r := <-got
		if want := c.LocalAddr().String() + " x"; r != want {
			t.Fatalf("%s: target saw %q, want %q", v, r, want)
		}
		c.Close()
	}
}

func FuzzProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\nrest"))
	f.Add([]byte("PROXY TCP6 ::1 ::1 1 2\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	var b bytes.Buffer
	WriteHeader(&b, "v2", &net.TCPAddr{IP: net.ParseIP("1.2.3.4"), Port: 1}, &net.TCPAddr{IP: net.ParseIP("5.6.7.8"), Port: 2})
	f.Add(b.Bytes())
	f.Add(append(append([]byte(nil), v2sig...), 0x21, 0x11, 0xff, 0xff))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		raw, err := readHeaderBytes(r)
		if err != nil {
			return
		}
		if len(raw) > 16+65535 || !bytes.HasPrefix(in, raw) {
			t.Fatalf("header of %d bytes not a prefix of the input", len(raw))
		}
		_, _ = ParseHeader(raw)
	})
}

func TestParsePeer(t *testing.T) {
	tests := []struct {
		name, in, match string
		ok              bool
	}{
		{name: "cidr", in: "10.1.0.0/24", match: "10.1.0.9:1", ok: true},
		{name: "addr", in: "10.3.0.5", match: "10.3.0.5:7", ok: true},
		{name: "addr port", in: "10.3.0.5:9000", match: "10.3.0.5:9000", ok: true},
		{name: "addr port other port", in: "10.3.0.5:9000", match: "10.3.0.5:9001", ok: false},
		{name: "v6 cidr", in: "2001:db8::/32", match: "[2001:db8::1]:5", ok: true},
		{name: "v6 port", in: "[::1]:9000", match: "[::1]:9000", ok: true},
		{name: "mapped", in: "127.0.0.1", match: "[::ffff:127.0.0.1]:5", ok: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePeer(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Matches(netip.MustParseAddrPort(tc.match)); got != tc.ok {
				t.Fatalf("match %s: %v", tc.match, got)
			}
		})
	}
	for _, bad := range []string{"", "x", "10.0.0.0/33", "1.2.3.4:0"} {
		if _, err := ParsePeer(bad); err == nil {
			t.Errorf("ParsePeer(%q) accepted", bad)
		}
	}
}

func replServer(t *testing.T, r *Replicator) string {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); cancel(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go r.ServeConn(ctx, c)
		}
	}()
	return ln.Addr().String()
}

// TestReplicateJoinLeave: outputs join and leave 1,000 times while an
// input streams; goroutines stay flat and a steady output gets it all.
func TestReplicateJoinLeave(t *testing.T) {
	one := netip.MustParsePrefix("::1/128")
	// Inputs match first: the input is told apart by its source port.
	inPort := freePort(t)
	r := NewReplicator(ReplicatorOptions{Inputs: []Peer{{Prefix: one, Port: inPort}}, Outputs: []Peer{{Prefix: one}}, Buffer: 1 << 20})
	addr := replServer(t, r)
	steady := dialFrom(t, addr, 0)
	defer steady.Close()
	waitOutputs(t, r, 1)
	in := dialFrom(t, addr, inPort)
	defer in.Close()
	base := runtime.NumGoroutine()
	for i := range 1000 {
		o := dialFrom(t, addr, 0)
		if i%100 == 0 {
			in.Write([]byte("0123456789"))
		}
		o.Close()
	}
	in.Write([]byte("end\n"))
	steady.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 0, 200)
	for !bytes.HasSuffix(b, []byte("end\n")) {
		buf := make([]byte, 64)
		n, err := steady.Read(buf)
		if err != nil {
			t.Fatalf("steady output: %v after %q", err, b)
		}
		b = append(b, buf[:n]...)
	}
	if want := bytes.Repeat([]byte("0123456789"), 10); !bytes.Equal(b[:100], want) {
		t.Fatalf("steady output got %q", b)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base+5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > base+5 {
		t.Fatalf("goroutines %d after 1000 joins, %d before", g, base)
	}
}

func TestReplicateRefusesStrangers(t *testing.T) {
	r := NewReplicator(ReplicatorOptions{Inputs: []Peer{{Prefix: netip.MustParsePrefix("10.0.0.0/8")}}})
	addr := replServer(t, r)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return // reset before connect returned: refused
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("stranger kept: %v", err)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func waitOutputs(t *testing.T, r *Replicator, n int) {
	deadline := time.Now().Add(5 * time.Second)
	for r.Outputs() != n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if r.Outputs() != n {
		t.Fatalf("outputs %d, want %d", r.Outputs(), n)
	}
}

func freePort(t *testing.T) uint16 {
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

func dialFrom(t *testing.T, addr string, port uint16) net.Conn {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv6loopback, Port: int(port)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
