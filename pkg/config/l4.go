package config

import (
	"fmt"

	"github.com/handoff-proxy/handoff/pkg/clientip"
	"github.com/handoff-proxy/handoff/pkg/l4"
	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// L4 listener protocols (package l4).
const (
	// ProtocolTCP relays raw TCP to the targets of Listener.Upstream.
	ProtocolTCP = "tcp"
	// ProtocolReplicate copies what Listener.Inputs send to every
	// connected Listener.Outputs peer.
	ProtocolReplicate = "replicate"
)

// Mirror sends a copy of a tcp listener's client bytes to more targets;
// what they answer is discarded, and they never slow the client.
type Mirror struct {
	// Targets ("host:port") receive every byte clients send.
	Targets []MirrorTarget `koanf:"targets" json:"targets" yaml:"targets"`
	// Buffer bounds how far one mirror may fall behind before its
	// connection is dropped (units as cache.max_memory). Empty means 4MiB.
	Buffer string `koanf:"buffer" json:"buffer,omitempty" yaml:"buffer,omitempty"`
}

// MirrorTarget is one mirror.
type MirrorTarget struct {
	Address string `koanf:"address" json:"address" yaml:"address"`
}

// ProxyProtocol configures the PROXY protocol (HAProxy's
// proxy-protocol.txt) on a listener.
type ProxyProtocol struct {
	// Accept reports whether peers in Trusted must start with a v1 or
	// v2 header, whose client address then counts as the peer's (logs,
	// X-Forwarded-For, hashing). A header from any other peer is
	// refused; their connections are served as they are.
	Accept bool `koanf:"accept" json:"accept,omitempty" yaml:"accept,omitempty"`
	// Trusted CIDRs (or bare addresses) of the proxies in front.
	// Required with accept.
	Trusted []string `koanf:"trusted" json:"trusted,omitempty" yaml:"trusted,omitempty"`
	// Send is "v1" or "v2": a tcp listener writes that header to each
	// target (and mirror) before the client's bytes. Empty sends none.
	Send string `koanf:"send" json:"send,omitempty" yaml:"send,omitempty"`
}

// UpstreamProxyProtocol makes HTTP connections to an upstream's targets
// start with a PROXY header naming the client (HAProxy's send-proxy).
// A header names one client, so such connections carry one request
// each and are never reused for another (HAProxy keeps them private).
type UpstreamProxyProtocol struct {
	// Send is "v1" or "v2". Required.
	Send string `koanf:"send" json:"send" yaml:"send"`
}

// upstreamsProxy checks upstreams.*.proxy_protocol.
func (v *validator) upstreamsProxy(c *Config) {
	for name, u := range c.Upstreams {
		if u.ProxyProtocol == nil {
			continue
		}
		if err := l4.ParseVersion(u.ProxyProtocol.Send); err != nil {
			v.errs.add(joinKey(joinKey("upstreams", name), "proxy_protocol.send"), "%v", err)
		}
	}
}

// l4 checks the L4 keys of every listener.
func (v *validator) l4(c *Config) {
	for i, l := range c.Listeners {
		key := indexKey("listeners", i)
		tcp, rep := l.Protocol == ProtocolTCP, l.Protocol == ProtocolReplicate
		switch {
		case tcp && l.Upstream == "":
			v.errs.add(joinKey(key, "upstream"), "required for protocol tcp")
		case tcp:
			if _, ok := c.Upstreams[l.Upstream]; !ok {
				v.errs.add(joinKey(key, "upstream"), "no upstream named %q", l.Upstream)
			} else {
				for j, t := range c.Upstreams[l.Upstream].Targets {
					if u, err := upstream.ParseAddress(t.Address); err == nil && u.Scheme != "http" {
						v.errs.add(indexKey(joinKey(joinKey("upstreams", l.Upstream), "targets"), j),
							"listener %q relays TCP to this upstream: give host:port, not %s://", l.Name, u.Scheme)
					}
				}
			}
		case l.Upstream != "":
			v.errs.add(joinKey(key, "upstream"), "only for protocol tcp (http listeners use routes)")
		}
		if l.Mirror != nil {
			mk := joinKey(key, "mirror")
			if !tcp {
				v.errs.add(mk, "only for protocol tcp")
			}
			if len(l.Mirror.Targets) == 0 {
				v.errs.add(joinKey(mk, "targets"), "required")
			}
			for j, t := range l.Mirror.Targets {
				if _, err := checkHostPort(t.Address); err != nil {
					v.errs.add(indexKey(joinKey(mk, "targets"), j)+".address", "%v", err)
				}
			}
			v.size(joinKey(mk, "buffer"), l.Mirror.Buffer)
		}
		v.peers(joinKey(key, "inputs"), l.Inputs, rep)
		v.peers(joinKey(key, "outputs"), l.Outputs, rep)
		if rep && len(l.Inputs) == 0 {
			v.errs.add(joinKey(key, "inputs"), "required for protocol replicate")
		}
		if l.Buffer != "" && !rep {
			v.errs.add(joinKey(key, "buffer"), "only for protocol replicate")
		}
		v.size(joinKey(key, "buffer"), l.Buffer)
		if pp := l.ProxyProtocol; pp != nil {
			pk := joinKey(key, "proxy_protocol")
			if pp.Accept && len(pp.Trusted) == 0 {
				v.errs.add(joinKey(pk, "trusted"), "required with accept: true (the CIDRs of the proxies in front)")
			}
			if _, err := clientip.ParsePrefixes(pp.Trusted); err != nil {
				v.errs.add(joinKey(pk, "trusted"), "%v", err)
			}
			if pp.Send != "" {
				if err := l4.ParseVersion(pp.Send); err != nil {
					v.errs.add(joinKey(pk, "send"), "%v", err)
				} else if !tcp {
					v.errs.add(joinKey(pk, "send"), "only for protocol tcp")
				}
			}
		}
	}
	v.routeMirrors(c)   // mirror.go
	v.upstreamsProxy(c) // proxy_protocol.send of upstreams
}

func (v *validator) peers(key string, list []string, allowed bool) {
	if len(list) > 0 && !allowed {
		v.errs.add(key, "only for protocol replicate")
	}
	for j, p := range list {
		if _, err := l4.ParsePeer(p); err != nil {
			v.errs.add(indexKey(key, j), "%v", err)
		}
	}
}

func (v *validator) size(key, s string) {
	if _, err := ParseBytes(s); err != nil {
		v.errs.add(key, "%v", err)
	}
}

// checkHostPort checks a "host:port" dial address.
func checkHostPort(a string) (string, error) {
	u, err := upstream.ParseAddress(a)
	if err != nil {
		return "", err
	}
	if u.Scheme != "http" {
		return "", fmt.Errorf("%q: give host:port", a)
	}
	return u.Host, nil
}
