package server

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/config"
)

// TestL4ShutdownKeepsEstablished: shutdown stops accepting but an
// established tcp connection keeps relaying until it ends.
func TestL4ShutdownKeepsEstablished(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	cfg := baseConfig([]config.Listener{
		{Name: "web", Protocol: config.ProtocolHTTP},
		{Name: "pg", Protocol: config.ProtocolTCP, Upstream: "db"},
	}, echo.Addr().String())
	cfg.Upstreams["db"] = config.Upstream{Targets: []config.Target{{Address: echo.Addr().String(), Weight: 1}}}
	cfg.ShutdownTimeout = 10 * time.Second
	r := serve(t, cfg, nil)
	c, err := net.Dial("tcp", r.addrs["pg"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	say := func(s string) {
		t.Helper()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
		if got, err := br.ReadString('\n'); err != nil || got != s {
			t.Fatalf("echo %q: %q %v", s, got, err)
		}
	}
	say("before\n")
	r.cancel() // SIGTERM
	time.Sleep(300 * time.Millisecond)
	if _, err := net.DialTimeout("tcp", r.addrs["pg"], time.Second); err == nil {
		t.Error("new connection accepted while draining")
	}
	say("during shutdown\n")
	select {
	case <-r.done:
		t.Fatal("Run returned with an L4 connection open")
	default:
	}
	c.Close()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatal(err)
		}
		r.done <- nil // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the connection ended")
	}
}
