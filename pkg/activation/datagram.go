package activation

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Datagram sockets (UDP, for QUIC) come the same ways as stream ones: by
// name from systemd (ListenDatagram= with FileDescriptorName=,
// systemd.socket(5)), from the fd store or an upgrading parent, or bound
// here. A UDP socket has no accept queue: whoever holds it reads its
// datagrams, so handing it on keeps the port without a gap, but the reader
// must tell a datagram of its own connections from one of another
// process's (that is QUIC's business, not this package's).

// PacketConns returns the datagram sockets of name (one per passed fd, or
// the one bound), or nil if no Datagram Want had that name. Closing them
// is fine; Set.Close closes them too.
func (s *Set) PacketConns(name string) []net.PacketConn {
	m := s.byName[name]
	if m == nil || !m.datagram {
		return nil
	}
	return append([]net.PacketConn(nil), m.pcs...)
}

// checkDatagramWant checks the datagram-only fields of w against the
// other wants.
func checkDatagramWant(w Want, wants []Want) error {
	if w.AddressOf == "" {
		return nil
	}
	if !w.Datagram {
		return fmt.Errorf("listener %q: address_of is for datagram sockets: %w", w.Name, ErrInvalidName)
	}
	for _, o := range wants {
		if o.Name == w.AddressOf && !o.Datagram {
			return nil
		}
	}
	return fmt.Errorf("listener %q: address_of names no stream listener %q: %w", w.Name, w.AddressOf, ErrInvalidName)
}

// bindDatagrams binds the Datagram Wants that no passed fd served, on
// their Address or on the address of the stream listener AddressOf
// names. It runs after the stream listeners are bound.
func (s *Set) bindDatagrams(ctx context.Context, wants []Want, addrs []Address, log *slog.Logger) error {
	for i, w := range wants {
		m := s.byName[w.Name]
		if !w.Datagram || m.passed {
			continue
		}
		addr := addrs[i].Address
		if w.Address == "" && w.AddressOf != "" {
			a, err := s.streamAddr(w.AddressOf)
			if err != nil {
				return fmt.Errorf("listen %q beside %q: %w", w.Name, w.AddressOf, err)
			}
			addr = a
		}
		if addr == "" {
			return fmt.Errorf("datagram socket %q has no address and no fd of that name was passed: %w", w.Name, ErrNoAddress)
		}
		var lc net.ListenConfig
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return fmt.Errorf("listen %q on udp %s: %w", w.Name, addr, err)
		}
		m.pcs = append(m.pcs, pc)
		log.Info("bound datagram socket", "name", w.Name, "addr", pc.LocalAddr().String())
	}
	return nil
}

// streamAddr is the "host:port" the first socket of the stream listener
// name is on.
func (s *Set) streamAddr(name string) (string, error) {
	m := s.byName[name]
	if m == nil || len(m.lns) == 0 {
		return "", fmt.Errorf("no stream listener %q: %w", name, ErrNoAddress)
	}
	a, ok := m.lns[0].Addr().(*net.TCPAddr)
	if !ok {
		return "", fmt.Errorf("stream listener %q is on %s, not TCP: %w", name, m.lns[0].Addr(), ErrInvalidAddress)
	}
	return a.String(), nil
}

// fdPacketConn turns a passed fd into a net.PacketConn after checking
// that it is a UDP socket (SOCK_DGRAM of AF_INET or AF_INET6). It closes
// p.fd in every case: the conn holds a duplicate.
func fdPacketConn(p passedFD) (net.PacketConn, error) {
	f := os.NewFile(uintptr(p.fd), "LISTEN_FD_"+strconv.Itoa(p.fd))
	defer f.Close()
	what := fmt.Sprintf("fd %d named %s", p.fd, p.name)
	domain, err := unix.GetsockoptInt(p.fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", what, ErrNotDatagram, err)
	}
	if domain != unix.AF_INET && domain != unix.AF_INET6 {
		return nil, fmt.Errorf("%s: address family %d: %w", what, domain, ErrNotDatagram)
	}
	typ, err := unix.GetsockoptInt(p.fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", what, ErrNotDatagram, err)
	}
	if typ != unix.SOCK_DGRAM {
		return nil, fmt.Errorf("%s: socket type %s: %w", what, sockType(typ), ErrNotDatagram)
	}
	pc, err := net.FilePacketConn(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return pc, nil
}

// socketLabel names a duplicated descriptor after its socket.
func socketLabel(s any) string {
	switch s := s.(type) {
	case net.Listener:
		return s.Addr().Network() + ":" + s.Addr().String()
	case net.PacketConn:
		return s.LocalAddr().Network() + ":" + s.LocalAddr().String()
	}
	return "socket"
}
