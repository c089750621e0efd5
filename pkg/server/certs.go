package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/handoff-proxy/handoff/pkg/config"
)

// certificates is an immutable set of server certificates indexed by the
// names they are valid for.
type certificates struct {
	first  *tls.Certificate
	exact  map[string]*tls.Certificate
	suffix map[string]*tls.Certificate // "*.example.com" stored as "example.com"
}

// certStore lets a TLS listener pick up new certificates on reload without
// re-binding: GetCertificate reads the current set.
type certStore struct{ cur atomic.Pointer[certificates] }

func loadCerts(t *config.ListenerTLS) (*certStore, error) {
	c, err := parseCerts(t)
	if err != nil {
		return nil, err
	}
	cs := &certStore{}
	cs.set(c)
	return cs, nil
}

func (cs *certStore) set(c *certificates) { cs.cur.Store(c) }

func parseCerts(t *config.ListenerTLS) (*certificates, error) {
	if t == nil || len(t.Certificates) == 0 {
		return nil, errors.New("tls: no certificates")
	}
	c := &certificates{exact: map[string]*tls.Certificate{}, suffix: map[string]*tls.Certificate{}}
	for _, cc := range t.Certificates {
		kp, err := tls.LoadX509KeyPair(cc.Cert, cc.Key)
		if err != nil {
			return nil, fmt.Errorf("load certificate %s: %w", cc.Cert, err)
		}
		leaf, err := x509.ParseCertificate(kp.Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("parse certificate %s: %w", cc.Cert, err)
		}
		kp.Leaf = leaf
		if c.first == nil {
			c.first = &kp
		}
		names := leaf.DNSNames
		if len(names) == 0 && leaf.Subject.CommonName != "" {
			names = []string{leaf.Subject.CommonName}
		}
		for _, n := range names {
			n = strings.ToLower(n)
			if rest, ok := strings.CutPrefix(n, "*."); ok {
				if _, dup := c.suffix[rest]; !dup {
					c.suffix[rest] = &kp
				}
				continue
			}
			if _, dup := c.exact[n]; !dup {
				c.exact[n] = &kp
			}
		}
	}
	return c, nil
}

// get implements tls.Config.GetCertificate: exact SNI match, then a
// wildcard for the parent domain (RFC 6125 §6.4.3: one label only), then the
// first certificate as the default.
func (cs *certStore) get(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := cs.cur.Load()
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if name != "" {
		if kp, ok := c.exact[name]; ok {
			return kp, nil
		}
		if i := strings.IndexByte(name, '.'); i > 0 {
			if kp, ok := c.suffix[name[i+1:]]; ok {
				return kp, nil
			}
		}
	}
	return c.first, nil
}
