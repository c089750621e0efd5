// Package clientip owns the answer to "which client sent this?": the list
// of trusted proxies (ParsePrefix, ParsePrefixes), the parsing of
// X-Forwarded-For, and the client address derived from the connection's
// peer and, when that peer is a trusted proxy, the chain it forwarded.
//
// It works on a peer address and header values, never on *http.Request or
// net.Conn, so that the HTTP proxy, the hash balancer's client_ip key, and
// later access control, rate limits and L4 connections (whose peer may come
// from a PROXY protocol header) all get the same answer.
//
// It must not know how requests are routed, balanced or forwarded.
package clientip

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ErrMalformed is wrapped by the errors of ParseXForwardedFor for a field
// value that does not follow its grammar.
var ErrMalformed = errors.New("malformed forwarding header")

// ParsePrefix parses one trusted_proxies entry: a CIDR ("10.0.0.0/8",
// "fd00::/8") or a bare IP, which means that one address. The prefix is
// returned masked.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR (10.0.0.0/8, fd00::/8): %w", s, err)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR: %w", s, err)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ParsePrefixes parses a trusted_proxies list with ParsePrefix; the error
// names the first bad entry.
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		p, err := ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("trusted_proxies: %w", err)
		}
		out = append(out, p)
	}
	return out, nil
}

// Trusted is a set of trusted proxy prefixes. The zero value trusts nobody.
// It is immutable and safe for concurrent use.
type Trusted struct {
	prefixes []netip.Prefix
}

// NewTrusted returns the set of prefixes; invalid ones are ignored and the
// others masked.
func NewTrusted(prefixes []netip.Prefix) Trusted {
	out := make([]netip.Prefix, 0, len(prefixes))
	for _, p := range prefixes {
		if p.IsValid() {
			out = append(out, p.Masked())
		}
	}
	return Trusted{prefixes: out}
}

// Contains reports whether ip belongs to a trusted proxy. The zone of an
// IPv6 address is ignored; an IPv4-mapped IPv6 address is compared as
// IPv4. The zero Addr is never trusted.
func (t Trusted) Contains(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap().WithZone("")
	for _, p := range t.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Peer returns the IP of a connection's peer from its address as
// net/http's Request.RemoteAddr spells it ("ip:port"), unmapped, or the
// zero Addr when it is not an IP (a Unix socket peer).
func Peer(remoteAddr string) netip.Addr {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// ClientIP returns the address of the client: peer, or, when peer is a
// trusted proxy, the right-most address in the X-Forwarded-For field lines
// xff that is not itself trusted (the left-most one when all are). A
// malformed X-Forwarded-For is ignored as a whole. The zero Addr means the
// peer is not an IP (a Unix socket) and no trusted header says otherwise.
//
// peer may come from the socket, or later from a PROXY protocol header;
// its port is not used. ClientIP does not allocate.
func (t Trusted) ClientIP(peer netip.Addr, xff []string) netip.Addr {
	peer = peer.Unmap()
	if !t.Contains(peer) || len(xff) == 0 {
		return peer
	}
	var first, lastUntrusted netip.Addr
	for _, v := range xff {
		for len(v) > 0 {
			var elem string
			elem, v, _ = strings.Cut(v, ",")
			elem = strings.Trim(elem, " \t")
			if elem == "" {
				continue
			}
			ip, ok := parseXFFElement(elem)
			if !ok {
				return peer
			}
			ip = ip.Unmap()
			if !first.IsValid() {
				first = ip
			}
			if !t.Contains(ip) {
				lastUntrusted = ip
			}
		}
	}
	switch {
	case lastUntrusted.IsValid():
		return lastUntrusted
	case first.IsValid():
		return first
	}
	return peer
}

// ParseXForwardedFor parses the field values of X-Forwarded-For: a
// comma-separated list of IP addresses, each optionally with a port (an
// IPv6 address with a port, or alone, may be bracketed). Empty list
// elements are skipped. Anything else (host names, "unknown", garbage)
// returns an error wrapping ErrMalformed.
func ParseXForwardedFor(values []string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, v := range values {
		for elem := range strings.SplitSeq(v, ",") {
			elem = strings.Trim(elem, " \t")
			if elem == "" {
				continue
			}
			ip, ok := parseXFFElement(elem)
			if !ok {
				return nil, fmt.Errorf("x-forwarded-for: %w: %q is not an IP address", ErrMalformed, elem)
			}
			out = append(out, ip)
		}
	}
	return out, nil
}

// parseXFFElement parses one non-empty X-Forwarded-For element: an IP,
// "ipv4:port", "[ipv6]:port" or "[ipv6]". It picks the one parser that can
// succeed from the shape of s, so that a valid element never pays for a
// failed parse (netip's errors allocate).
func parseXFFElement(s string) (netip.Addr, bool) {
	switch {
	case s[0] == '[' && s[len(s)-1] == ']':
		ip, err := netip.ParseAddr(s[1 : len(s)-1])
		return ip, err == nil && ip.Is6()
	case s[0] == '[' || strings.Count(s, ":") == 1:
		// An IPv6 address has at least two colons: one colon is
		// ipv4:port.
		ap, err := netip.ParseAddrPort(s)
		return ap.Addr(), err == nil
	default:
		ip, err := netip.ParseAddr(s)
		return ip, err == nil
	}
}
