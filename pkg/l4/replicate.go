package l4

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Peer matches connecting peers by address and, optionally, source port.
type Peer struct {
	Prefix netip.Prefix
	// Port is the peer's source port; zero matches any.
	Port uint16
}

// ParsePeer parses "10.0.0.0/8", "10.0.0.5", "10.0.0.5:9000",
// "2001:db8::/32", "::1" or "[::1]:9000".
func ParsePeer(s string) (Peer, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return Peer{}, fmt.Errorf("parse peer %q: %w", s, err)
		}
		return Peer{Prefix: p.Masked()}, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.Unmap()
		return Peer{Prefix: netip.PrefixFrom(a, a.BitLen())}, nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return Peer{}, fmt.Errorf("parse peer %q: want an address, address:port or CIDR", s)
	}
	a := ap.Addr().Unmap()
	if ap.Port() == 0 {
		return Peer{}, fmt.Errorf("parse peer %q: port 0", s)
	}
	return Peer{Prefix: netip.PrefixFrom(a, a.BitLen()), Port: ap.Port()}, nil
}

// Matches reports whether a peer at ap is p.
func (p Peer) Matches(ap netip.AddrPort) bool {
	return p.Prefix.Contains(ap.Addr().Unmap()) && (p.Port == 0 || p.Port == ap.Port())
}

// ReplicatorOptions configure a Replicator.
type ReplicatorOptions struct {
	// Listener names the listener in metrics and logs.
	Listener string
	// Inputs are the peers whose bytes are replicated; Outputs receive
	// them. A peer in both is an input. Anyone else is refused at once.
	Inputs, Outputs []Peer
	// Buffer bounds what each output may lag behind, in bytes; an
	// output further behind is dropped. Zero means 4 MiB.
	Buffer int
	// Observer receives counts. Nil means nobody.
	Observer ReplicateObserver
	// Logger. Nil discards.
	Logger *slog.Logger
}

// ReplicateObserver receives what a Replicator does.
type ReplicateObserver interface {
	// ReplicaConn counts a connection by role: "input", "output" or
	// "refused".
	ReplicaConn(listener, role string)
	// ReplicaBytes counts bytes read from inputs.
	ReplicaBytes(listener string, n int)
	// ReplicaDropped counts outputs dropped for falling behind.
	ReplicaDropped(listener string)
}

type nopReplicate struct{}

func (nopReplicate) ReplicaConn(string, string) {}
func (nopReplicate) ReplicaBytes(string, int)   {}
func (nopReplicate) ReplicaDropped(string)      {}

// Replicator fans every byte inputs send out to every connected output
// (the bytes of several inputs interleave by read). Outputs may join and
// leave at any time; an output receives what inputs send while it is
// connected. Memory is bounded by Buffer per output.
type Replicator struct {
	o ReplicatorOptions

	mu      sync.Mutex
	outputs map[*queue]struct{}
}

// NewReplicator returns a Replicator; options get their defaults.
func NewReplicator(o ReplicatorOptions) *Replicator {
	if o.Buffer <= 0 {
		o.Buffer = 4 << 20
	}
	if o.Observer == nil {
		o.Observer = nopReplicate{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Replicator{o: o, outputs: make(map[*queue]struct{})}
}

// ErrRefused means the peer is neither an input nor an output.
var ErrRefused = errors.New("replicate: peer is neither an input nor an output")

// Outputs counts the connected outputs.
func (r *Replicator) Outputs() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.outputs)
}

// ServeConn serves c as an input or an output until it ends or ctx ends,
// and closes it.
func (r *Replicator) ServeConn(ctx context.Context, c net.Conn) error {
	defer c.Close()
	if err := Handshake(c); err != nil {
		closeNow(c)
		return err
	}
	ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	switch {
	case matchAny(r.o.Inputs, ap):
		r.o.Observer.ReplicaConn(r.o.Listener, "input")
		return r.input(c)
	case matchAny(r.o.Outputs, ap):
		r.o.Observer.ReplicaConn(r.o.Listener, "output")
		return r.output(ctx, c)
	}
	r.o.Observer.ReplicaConn(r.o.Listener, "refused")
	closeNow(c)
	return fmt.Errorf("%w: %s", ErrRefused, ap)
}

func matchAny(ps []Peer, ap netip.AddrPort) bool {
	for _, p := range ps {
		if p.Matches(ap) {
			return true
		}
	}
	return false
}

// input reads c and queues each read to every output. An input is never
// slowed by outputs: a push never blocks.
func (r *Replicator) input(c net.Conn) error {
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			r.o.Observer.ReplicaBytes(r.o.Listener, n)
			b := append([]byte(nil), buf[:n]...) // shared by every output
			r.mu.Lock()
			for q := range r.outputs {
				if _, over := q.push(b); over {
					delete(r.outputs, q)
					r.o.Observer.ReplicaDropped(r.o.Listener)
				}
			}
			r.mu.Unlock()
		}
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
	}
}

// output writes what inputs send to c until c or ctx ends or the output
// falls behind.
func (r *Replicator) output(ctx context.Context, c net.Conn) error {
	q := newQueue(r.o.Buffer)
	r.mu.Lock()
	r.outputs[q] = struct{}{}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.outputs, q)
		r.mu.Unlock()
		q.drop()
	}()
	// An output sends nothing; reading tells when it leaves.
	go func() {
		_, _ = io.Copy(io.Discard, c)
		q.drop()
	}()
	for {
		b, _, ok := q.next(ctx)
		if !ok {
			return nil
		}
		_ = c.SetWriteDeadline(time.Now().Add(outputWriteTimeout))
		if _, err := c.Write(b); err != nil {
			return err
		}
	}
}

// outputWriteTimeout bounds one write to an output that stopped reading
// while its queue still has room.
const outputWriteTimeout = 30 * time.Second

// String describes the peer for logs.
func (p Peer) String() string {
	if p.Port == 0 {
		return p.Prefix.String()
	}
	return net.JoinHostPort(p.Prefix.Addr().String(), strconv.Itoa(int(p.Port)))
}
