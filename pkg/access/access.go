// Package access owns IP access lists: which client addresses an allow
// and a deny list of CIDRs let through (List), and the parsing of those
// lists (Parse). It decides on a netip.Addr, never on a request or a
// connection, so that HTTP routes, HTTP listeners, the forward proxy and
// L4 listeners share one answer; which address is the client's is package
// clientip's business, not this one's.
package access

import (
	"fmt"
	"net/netip"

	"github.com/handoff-proxy/handoff/pkg/clientip"
)

// List is an allow list and a deny list of prefixes. Deny wins; a
// non-empty allow list denies every address it does not contain; an empty
// List allows everything. The zero List allows everything. It is immutable
// and safe for concurrent use.
type List struct {
	allow, deny []netip.Prefix
}

// Parse parses the allow and deny lists: each entry a CIDR ("10.0.0.0/8",
// "fd00::/8") or a bare IP address (clientip.ParsePrefix). The error names
// the first bad entry.
func Parse(allow, deny []string) (List, error) {
	a, err := ParsePrefixes(allow)
	if err != nil {
		return List{}, fmt.Errorf("allow: %w", err)
	}
	d, err := ParsePrefixes(deny)
	if err != nil {
		return List{}, fmt.Errorf("deny: %w", err)
	}
	return List{allow: a, deny: d}, nil
}

// ParsePrefixes parses a list of CIDRs or bare IPs; the error names the
// index and the value of the first bad entry.
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	if len(list) == 0 {
		return nil, nil
	}
	out := make([]netip.Prefix, 0, len(list))
	for i, s := range list {
		p, err := clientip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// Empty reports whether l allows everything.
func (l List) Empty() bool { return len(l.allow) == 0 && len(l.deny) == 0 }

// Allowed reports whether ip may pass. An IPv4-mapped IPv6 address is
// judged as IPv4 and a zone is ignored. The zero Addr (a Unix socket peer
// with no trusted forwarding header) matches no prefix: it passes only
// lists without an allow list. Allowed does not allocate.
func (l List) Allowed(ip netip.Addr) bool {
	ip = ip.Unmap().WithZone("")
	if Contains(l.deny, ip) {
		return false
	}
	return len(l.allow) == 0 || Contains(l.allow, ip)
}

// Contains reports whether any of ps contains ip (unmapped, without zone).
func Contains(ps []netip.Prefix, ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap().WithZone("")
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
