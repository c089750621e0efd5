package l4

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// The PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2)
// carries the original client and server addresses ahead of the stream.
// go-proxyproto parses and formats headers; reading them off the socket
// is done here so that exactly the header's bytes are consumed: the
// socket stays a bare *net.TCPConn afterwards, which keeps the relay on
// the splice path.

// v2sig is the 12-byte signature of a version 2 header.
var v2sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

// v1max is the longest version 1 header ("PROXY TCP6 ... \r\n").
const v1max = 107

// Errors of the PROXY protocol listener.
var (
	// ErrNoProxyHeader: a trusted peer sent no PROXY header.
	ErrNoProxyHeader = errors.New("proxy protocol: header required from a trusted peer")
	// ErrUntrustedProxyHeader: a peer outside the trusted list sent one.
	ErrUntrustedProxyHeader = errors.New("proxy protocol: header from an untrusted peer")
)

// AcceptOptions configure AcceptProxy.
type AcceptOptions struct {
	// Trusted peers must send a PROXY header; from any other peer a
	// header is refused. Empty means nobody is trusted.
	Trusted []netip.Prefix
	// Timeout bounds reading the header. Zero means 10s.
	Timeout time.Duration
}

// AcceptProxy wraps ln so that its connections read the PROXY protocol
// header of trusted peers: RemoteAddr and LocalAddr then return the
// addresses it carries. The header is read lazily, on the first Read,
// RemoteAddr or Handshake, on the connection's own goroutine, never in
// Accept. A connection whose header is missing, malformed or untrusted
// fails every Read and is closed by its server.
func AcceptProxy(ln net.Listener, o AcceptOptions) net.Listener {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	return &proxyListener{Listener: ln, o: o}
}

type proxyListener struct {
	net.Listener
	o AcceptOptions
}

func (l *proxyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	peer := addrOf(c.RemoteAddr())
	trusted := false
	for _, p := range l.o.Trusted {
		if p.Contains(peer) {
			trusted = true
			break
		}
	}
	return &proxyConn{Conn: c, trusted: trusted, timeout: l.o.Timeout}, nil
}

// proxyConn is a connection whose PROXY header is read on first use.
type proxyConn struct {
	net.Conn
	trusted bool
	timeout time.Duration

	once     sync.Once
	err      error
	src, dst net.Addr
}

// NetConn returns the connection underneath, for the relay's zero-copy
// path; only valid after Handshake.
func (c *proxyConn) NetConn() net.Conn { return c.Conn }

// Handshake reads the header (trusted peers) or checks that none is sent
// (others).
func (c *proxyConn) Handshake() error {
	c.once.Do(func() {
		_ = c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
		if c.trusted {
			c.err = c.readHeader()
		} else {
			c.err = c.refuseHeader()
		}
		_ = c.Conn.SetReadDeadline(time.Time{})
	})
	return c.err
}

func (c *proxyConn) Read(b []byte) (int, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

// RemoteAddr is the client the PROXY header names, or the peer.
func (c *proxyConn) RemoteAddr() net.Addr {
	if c.Handshake() == nil && c.src != nil {
		return c.src
	}
	return c.Conn.RemoteAddr()
}

// LocalAddr is the address the client connected to per the header, or
// the socket's own.
func (c *proxyConn) LocalAddr() net.Addr {
	if c.Handshake() == nil && c.dst != nil {
		return c.dst
	}
	return c.Conn.LocalAddr()
}

func (c *proxyConn) readHeader() error {
	raw, err := readHeaderBytes(c.Conn)
	if err != nil {
		return err
	}
	h, err := ParseHeader(raw)
	if err != nil {
		return err
	}
	if h.Command.IsProxy() {
		c.src, c.dst = h.SourceAddr, h.DestinationAddr
	}
	return nil
}

// ParseHeader parses exactly one PROXY header (v1 or v2).
func ParseHeader(raw []byte) (*proxyproto.Header, error) {
	h, err := proxyproto.Read(bufio.NewReaderSize(bytes.NewReader(raw), len(raw)+16))
	if err != nil {
		return nil, fmt.Errorf("proxy protocol: %w", err)
	}
	return h, nil
}

// readHeaderBytes reads one header from r without reading past it: a
// version 1 line byte by byte up to CRLF, a version 2 header by its
// length field.
func readHeaderBytes(r io.Reader) ([]byte, error) {
	first := make([]byte, 1, 16)
	if _, err := io.ReadFull(r, first); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoProxyHeader, err)
	}
	switch first[0] {
	case 'P':
		b := first
		one := make([]byte, 1)
		for len(b) < v1max {
			if _, err := io.ReadFull(r, one); err != nil {
				return nil, fmt.Errorf("proxy protocol: read v1 header: %w", err)
			}
			b = append(b, one[0])
			if len(b) <= 6 && !bytes.HasPrefix([]byte("PROXY "), b) {
				return nil, ErrNoProxyHeader
			}
			if one[0] == '\n' {
				return b, nil
			}
		}
		return nil, errors.New("proxy protocol: v1 header longer than 107 bytes")
	case '\r':
		b := first[:16]
		if _, err := io.ReadFull(r, b[1:]); err != nil {
			return nil, fmt.Errorf("proxy protocol: read v2 header: %w", err)
		}
		if !bytes.Equal(b[:12], v2sig) {
			return nil, ErrNoProxyHeader
		}
		n := int(b[14])<<8 | int(b[15])
		b = append(b, make([]byte, n)...)
		if _, err := io.ReadFull(r, b[16:]); err != nil {
			return nil, fmt.Errorf("proxy protocol: read v2 header: %w", err)
		}
		return b, nil
	}
	return nil, ErrNoProxyHeader
}

// refuseHeader fails if an untrusted peer starts with a PROXY header. It
// peeks (MSG_PEEK) so that nothing is consumed: the stream goes on
// untouched for peers that send none. A peer that sends nothing within
// the timeout is let through: the protocol server's own timeouts apply.
func (c *proxyConn) refuseHeader() error {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	buf := make([]byte, 12)
	for {
		var n int
		var perr error
		err := rc.Read(func(fd uintptr) bool {
			n, _, perr = syscall.Recvfrom(int(fd), buf, syscall.MSG_PEEK)
			return perr != syscall.EAGAIN
		})
		if err != nil || perr != nil || n == 0 {
			return nil // timeout, error or EOF: the reader sees it
		}
		b := buf[:n]
		v1 := bytes.HasPrefix([]byte("PROXY "), b[:min(n, 6)]) || bytes.HasPrefix(b, []byte("PROXY "))
		v2 := bytes.HasPrefix(v2sig, b)
		switch {
		case n >= 6 && bytes.HasPrefix(b, []byte("PROXY ")), n == 12 && v2:
			return ErrUntrustedProxyHeader
		case !v1 && !v2:
			return nil
		}
		// A prefix of a signature: wait for more bytes.
		time.Sleep(time.Millisecond)
	}
}

// Handshake reads the PROXY header of c if its listener accepts them
// (AcceptProxy), looking through wrappers that expose NetConn. It returns
// nil for other connections.
func Handshake(c net.Conn) error {
	for {
		if pc, ok := c.(*proxyConn); ok {
			return pc.Handshake()
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		c = u.NetConn()
	}
}

// WriteHeader writes a PROXY header of version ("v1" or "v2") for a
// connection from src to dst.
func WriteHeader(w io.Writer, version string, src, dst net.Addr) error {
	v := byte(2)
	if version == "v1" {
		v = 1
	}
	h := proxyproto.HeaderProxyFromAddrs(v, src, dst)
	if _, err := h.WriteTo(w); err != nil {
		return fmt.Errorf("write proxy header: %w", err)
	}
	return nil
}

// ParseVersion checks a PROXY protocol version to send: "v1" or "v2".
func ParseVersion(s string) error {
	if s != "v1" && s != "v2" {
		return fmt.Errorf("%q is not a PROXY protocol version (use v1 or v2)", s)
	}
	return nil
}
