package upstream

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/handoff-proxy/handoff/pkg/hostname"
)

// DefaultResolveEvery is how often targets given by host name or SRV
// record are looked up again when PoolSpec.ResolveEvery is zero.
const DefaultResolveEvery = 30 * time.Second

// maxLookupTimeout bounds one lookup round, so that a silent DNS server
// cannot hold the resolver past a few intervals.
const maxLookupTimeout = 5 * time.Second

// Resolver is what a pool asks DNS; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
}

// NewResolver returns the system resolver when addr is empty, otherwise a
// resolver that sends every query to addr ("ip:port", see ParseResolver)
// over UDP, and over TCP when an answer is truncated (RFC 7766 §5). The
// resolver still reads /etc/hosts first, as the system one does.
func NewResolver(addr string) *net.Resolver {
	if addr == "" {
		return net.DefaultResolver
	}
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// The Go resolver waits for an answer until its own
			// timeout (resolv.conf, 5s) even after the lookup was
			// cancelled; closing the conn then ends the wait, so that
			// a closed generation leaves no lookup behind.
			stop := context.AfterFunc(ctx, func() { _ = c.Close() })
			if uc, ok := c.(*net.UDPConn); ok {
				// The resolver treats a net.PacketConn as UDP.
				return &udpConn{UDPConn: uc, stop: stop}, nil
			}
			return &streamConn{Conn: c, stop: stop}, nil
		},
	}
}

// udpConn and streamConn stop the close-on-cancel when closed.
type udpConn struct {
	*net.UDPConn
	stop func() bool
}

func (c *udpConn) Close() error { c.stop(); return c.UDPConn.Close() }

type streamConn struct {
	net.Conn
	stop func() bool
}

func (c *streamConn) Close() error { c.stop(); return c.Conn.Close() }

// ParseResolver checks a DNS server address: an IP literal with an
// optional port (default 53). It returns "ip:port".
func ParseResolver(s string) (string, error) {
	if ip, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return netip.AddrPortFrom(ip, 53).String(), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 {
		return "", fmt.Errorf("%q is not an IP address with an optional port (like 127.0.0.1:53)", s)
	}
	return ap.String(), nil
}

// ParseSRV checks an SRV target, "[scheme://]_service._proto.name" (RFC
// 2782), and returns its scheme (default http) and the name to look up.
func ParseSRV(s string) (scheme, name string, err error) {
	scheme, name = SchemeHTTP, s
	if sch, rest, ok := strings.Cut(s, "://"); ok {
		scheme, name = sch, rest
	}
	switch scheme {
	case SchemeHTTP, SchemeHTTPS, SchemeH2C:
	default:
		return "", "", fmt.Errorf("%q: scheme %q is not allowed (allowed: %s, %s, %s)", s, scheme, SchemeHTTP, SchemeHTTPS, SchemeH2C)
	}
	if err := hostname.Check(name); err != nil {
		return "", "", fmt.Errorf("%q: %w", s, err)
	}
	if !strings.HasPrefix(name, "_") {
		return "", "", fmt.Errorf("%q: an SRV name starts with _service._proto (like _http._tcp.example.com)", s)
	}
	return scheme, name, nil
}

type entryKind int

const (
	entryStatic entryKind = iota // an IP literal, or a name dialed by name
	entryHost                    // a host name looked up (A and AAAA)
	entrySRV                     // an SRV record looked up
)

// dnsEntry is one configured target and the targets it stands for now.
type dnsEntry struct {
	kind entryKind
	spec TargetSpec
	// bare reports whether the configured address had no scheme, so
	// that resolved addresses are written the same way.
	bare   bool
	scheme string
	host   string // the name looked up: host name or SRV name
	port   string // entryHost: the configured port
	// keepName reports whether SRV targets keep their host name (https
	// without server_name: the name is what the certificate proves).
	keepName bool

	// current and failing are only touched under poolDNS.mu.
	current []*Target
	failing bool
}

// buildEntry parses one configured target into an entry with its
// targets before any lookup.
func (r *Registry) buildEntry(tc TargetSpec, serverName string) (*dnsEntry, error) {
	if tc.SRV != "" {
		scheme, name, err := ParseSRV(tc.SRV)
		if err != nil {
			return nil, err
		}
		return &dnsEntry{kind: entrySRV, spec: tc, bare: !strings.Contains(tc.SRV, "://"), scheme: scheme, host: name,
			keepName: scheme == SchemeHTTPS && serverName == ""}, nil
	}
	u, err := ParseAddress(tc.Address)
	if err != nil {
		return nil, err
	}
	e := &dnsEntry{kind: entryStatic, spec: tc, bare: !strings.Contains(tc.Address, "://"), scheme: u.Scheme, host: u.Hostname(), port: u.Port()}
	if _, err := netip.ParseAddr(e.host); err != nil && (u.Scheme != SchemeHTTPS || serverName != "") {
		e.kind = entryHost
	}
	e.current = []*Target{r.newTarget(tc.Address, u, tc.Weight, tc.MaxConns)}
	return e, nil
}

// poolDNS is the DNS side of a pool whose targets are looked up.
type poolDNS struct {
	mu      sync.Mutex // serialises Resolve
	reg     *Registry
	every   time.Duration
	res     Resolver
	server  string // the resolver's address for logs; "system" when default
	entries []*dnsEntry
}

func (d *poolDNS) init(r *Registry, spec PoolSpec, entries []*dnsEntry) {
	d.reg, d.entries = r, entries
	d.every = cmp.Or(spec.ResolveEvery, DefaultResolveEvery)
	d.res = NewResolver(spec.Resolver)
	d.server = cmp.Or(spec.Resolver, "system")
	for _, e := range entries {
		if e.kind == entrySRV {
			e.current = nil // no port before the first answer
		}
	}
}

// Resolving reports whether some target of p is looked up in DNS, so that
// its Targets change over time.
func (p *Pool) Resolving() bool { return p.dns != nil }

// Resolve looks up every target given by host name or SRV record once and
// publishes the new target list when it changed. An entry whose lookup
// fails keeps its last good targets; the failure is logged when it starts
// and when it ends, not on every round. The error joins the failures.
func (p *Pool) Resolve(ctx context.Context, log *slog.Logger) error {
	d := p.dns
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, min(d.every, maxLookupTimeout))
	defer cancel()
	var errs []error
	changed := false
	for _, e := range d.entries {
		if e.kind == entryStatic {
			continue
		}
		next, err := d.lookup(ctx, e)
		if err != nil {
			if ctx.Err() != nil && errors.Is(context.Cause(ctx), context.Canceled) {
				return err // shutting down: not DNS's fault
			}
			errs = append(errs, err)
			if !e.failing {
				e.failing = true
				log.Warn("upstream DNS lookup failed; keeping the last good targets", "upstream", p.Name, "name", e.host, "resolver", d.server, "targets", len(e.current), "error", err)
			}
			continue
		}
		if e.failing {
			e.failing = false
			log.Info("upstream DNS lookup recovered", "upstream", p.Name, "name", e.host, "targets", len(next))
		}
		if !sameTargets(e.current, next) {
			changed = true
			e.current = next
		}
	}
	if changed {
		ts := d.targetsLocked()
		log.Info("upstream targets changed", "upstream", p.Name, "targets", addresses(ts))
		p.setTargets(ts)
	}
	return errors.Join(errs...)
}

// RunResolver calls Resolve every PoolSpec.ResolveEvery until ctx ends.
// The first round is one interval away: the caller resolves once before
// serving.
func (p *Pool) RunResolver(ctx context.Context, log *slog.Logger) {
	if p.dns == nil {
		return
	}
	t := time.NewTicker(p.dns.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = p.Resolve(ctx, log) // logged inside, once per outage
		}
	}
}

// targetsLocked is the pool's list: every entry's targets in configured
// order, the first of two targets with the same URL kept.
func (d *poolDNS) targetsLocked() []*Target {
	var ts []*Target
	seen := make(map[string]bool)
	for _, e := range d.entries {
		for _, t := range e.current {
			if k := t.Key(); !seen[k] {
				seen[k] = true
				ts = append(ts, t)
			}
		}
	}
	return ts
}

// lookup returns e's targets as DNS says now, reusing the current Target
// of an unchanged address so that selectors and checkers keep theirs.
func (d *poolDNS) lookup(ctx context.Context, e *dnsEntry) ([]*Target, error) {
	type found struct {
		host, port string
		weight     int
	}
	var fs []found
	switch e.kind {
	case entryHost:
		ips, err := d.lookupIPs(ctx, e.host)
		if err != nil {
			return nil, err
		}
		for _, ip := range ips {
			fs = append(fs, found{ip.String(), e.port, e.spec.Weight})
		}
	case entrySRV:
		_, srvs, err := d.res.LookupSRV(ctx, "", "", e.host)
		if err != nil {
			return nil, fmt.Errorf("look up SRV %s: %w", e.host, err)
		}
		for _, s := range lowestPriority(srvs) {
			name := strings.TrimSuffix(s.Target, ".")
			port := fmt.Sprint(s.Port)
			// RFC 2782: weight 0 is "very small chance"; the
			// strategies need at least 1.
			w := max(int(s.Weight), 1)
			if e.keepName {
				fs = append(fs, found{name, port, w})
				continue
			}
			ips, err := d.lookupIPs(ctx, name)
			if err != nil {
				return nil, err
			}
			for _, ip := range ips {
				fs = append(fs, found{ip.String(), port, w})
			}
		}
	}
	old := make(map[string]*Target, len(e.current))
	for _, t := range e.current {
		old[t.Address] = t
	}
	out := make([]*Target, 0, len(fs))
	for _, f := range fs {
		hostport := net.JoinHostPort(f.host, f.port)
		addr := hostport
		if !e.bare {
			addr = e.scheme + "://" + hostport
		}
		w := max(f.weight, 1)
		if t := old[addr]; t != nil && t.Weight == w {
			out = append(out, t)
			continue
		}
		out = append(out, d.reg.newTarget(addr, &url.URL{Scheme: e.scheme, Host: hostport}, w, e.spec.MaxConns))
	}
	slices.SortFunc(out, func(a, b *Target) int { return strings.Compare(a.Address, b.Address) })
	out = slices.CompactFunc(out, func(a, b *Target) bool { return a.Address == b.Address })
	return out, nil
}

// lookupIPs returns the addresses of name, IPv4-mapped ones unmapped.
func (d *poolDNS) lookupIPs(ctx context.Context, name string) ([]netip.Addr, error) {
	ips, err := d.res.LookupNetIP(ctx, "ip", name)
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", name, err)
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("look up %s: no addresses", name)
	}
	out := make([]netip.Addr, len(ips))
	for i, ip := range ips {
		out[i] = ip.Unmap()
	}
	return out, nil
}

// lowestPriority keeps the SRV records of the lowest priority value: RFC
// 2782 has clients try those first. handoff spreads load over them by
// weight and relies on its health checks, not on the backup priorities.
func lowestPriority(srvs []*net.SRV) []*net.SRV {
	if len(srvs) == 0 {
		return nil
	}
	low := srvs[0].Priority
	for _, s := range srvs {
		low = min(low, s.Priority)
	}
	var out []*net.SRV
	for _, s := range srvs {
		if s.Priority == low {
			out = append(out, s)
		}
	}
	return out
}

// sameTargets reports whether a and b are the same targets in order.
func sameTargets(a, b []*Target) bool {
	return slices.Equal(a, b)
}

func addresses(ts []*Target) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Address
	}
	return out
}
