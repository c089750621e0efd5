package handofftest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"testing"
)

// StrictBackend starts an HTTP/1.1 origin on port 0 that answers 400, as
// nginx and Node do, to a request with more than one Content-Length
// field or with Content-Length and Transfer-Encoding together (Go's
// server folds identical values and would not notice); to anything else
// 200 with the number of body bytes it read as the body. It returns the
// address; the listener closes with the test.
func StrictBackend(t testing.TB) string { return TCPServer(t, serveStrict) }

// TCPServer listens on a loopback port chosen by the kernel and runs
// serve on its own goroutine for every connection, closing the connection
// when serve returns. It returns the address; the listener closes with
// the test.
func TCPServer(t testing.TB, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// TCPPair returns both ends of a loopback TCP connection, closed when the
// test ends.
func TCPPair(t testing.TB) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	if peer == nil {
		c.Close()
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); peer.Close() })
	return c.(*net.TCPConn), peer.(*net.TCPConn)
}

func serveStrict(c net.Conn) {
	tp := textproto.NewReader(bufio.NewReader(c))
	for {
		if _, err := tp.ReadLine(); err != nil {
			return
		}
		h, err := tp.ReadMIMEHeader()
		if err != nil {
			return
		}
		cl := h.Values("Content-Length")
		if len(cl) > 1 || (len(cl) == 1 && h.Get("Transfer-Encoding") != "") {
			fmt.Fprintf(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			return
		}
		n := 0
		if len(cl) == 1 {
			n, _ = strconv.Atoi(cl[0])
		}
		if _, err := io.CopyN(io.Discard, tp.R, int64(n)); err != nil {
			return
		}
		body := strconv.Itoa(n)
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	}
}
