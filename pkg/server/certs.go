package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"

	"github.com/handoff-proxy/handoff/pkg/acme"
	"github.com/handoff-proxy/handoff/pkg/config"
)

// certificates is an immutable set of server certificates indexed by the
// names they are valid for, and the client certificate settings that were
// loaded with them.
type certificates struct {
	first  *tls.Certificate
	exact  map[string]*tls.Certificate
	suffix map[string]*tls.Certificate // "*.example.com" stored as "example.com"
	// clientAuth is the whole TLS config of a listener that asks for
	// client certificates (tls.client_auth), nil when it asks for none.
	clientAuth *tls.Config
	all        []*tls.Certificate // in config order, Leaf set
	// acme lists the names this listener gets from ACME (tls.acme.domains,
	// lower case, no trailing dot); empty without tls.acme.
	acme map[string]bool
	// acmeDefault is the first ACME name, served to clients without SNI
	// (or with an unknown name) when there is no static certificate.
	acmeDefault string
	// store is the store c was published in (set), for the client_auth
	// config's GetCertificate.
	store *certStore
}

// certStore lets a TLS listener pick up new certificates on reload without
// re-binding: GetCertificate reads the current set. ACME certificates come
// from the process's manager (acme.go), which the HTTPS and HTTP/3
// listeners share.
type certStore struct {
	cur  atomic.Pointer[certificates]
	acme certSource // nil: static certificates only
}

// certSource is where ACME certificates come from (acme.Manager).
type certSource interface {
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
}

func loadCerts(t *config.ListenerTLS, acme certSource) (*certStore, error) {
	c, err := parseCerts(t)
	if err != nil {
		return nil, err
	}
	cs := &certStore{acme: acme}
	cs.set(c)
	return cs, nil
}

func (cs *certStore) set(c *certificates) {
	c.store = cs
	cs.cur.Store(c)
}

func parseCerts(t *config.ListenerTLS) (*certificates, error) {
	if t == nil || len(t.Certificates) == 0 && t.ACME == nil {
		return nil, errors.New("tls: no certificates")
	}
	c := &certificates{exact: map[string]*tls.Certificate{}, suffix: map[string]*tls.Certificate{}, acme: map[string]bool{}}
	if t.ACME != nil {
		for _, d := range t.ACME.Domains {
			c.acme[strings.ToLower(strings.TrimSuffix(d, "."))] = true
		}
		if len(t.ACME.Domains) > 0 {
			c.acmeDefault = strings.ToLower(strings.TrimSuffix(t.ACME.Domains[0], "."))
		}
	}
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
		c.all = append(c.all, &kp)
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
	if ca := t.ClientAuth; ca != nil {
		conf, err := clientAuthConfig(t, ca, c)
		if err != nil {
			return nil, err
		}
		c.clientAuth = conf
	}
	return c, nil
}

// clientAuthConfig is the TLS config of a listener with client
// certificates: the listener's own settings plus the CA pool and mode.
func clientAuthConfig(t *config.ListenerTLS, ca *config.ClientAuth, c *certificates) (*tls.Config, error) {
	pem, err := os.ReadFile(ca.CA)
	if err != nil {
		return nil, fmt.Errorf("tls.client_auth.ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls.client_auth.ca: %s holds no PEM certificates", ca.CA)
	}
	mode := tls.RequireAndVerifyClientCert
	if ca.Mode == config.ClientAuthVerifyIfGiven {
		mode = tls.VerifyClientCertIfGiven
	}
	return &tls.Config{
		MinVersion:     tlsVersion(t),
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) { return c.store.pick(c, hello) },
		NextProtos:     serverNextProtos,
		ClientAuth:     mode,
		ClientCAs:      pool,
	}, nil
}

// serverNextProtos are the ALPN protocols of a TLS listener (RFC 9113
// §3.2: HTTP/2 over TLS is negotiated with "h2"), and "acme-tls/1" for
// TLS-ALPN-01 (RFC 8737 §6.2; certStore.get refuses it for names not
// from ACME).
var serverNextProtos = []string{"h2", "http/1.1", acme.ALPNProto}

// forClient implements tls.Config.GetConfigForClient: the client_auth
// config loaded last, or nil (the listener's base config) when the
// listener asks for no client certificate. Going through the store lets
// a reload change the CA without re-binding.
func (cs *certStore) forClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	return cs.cur.Load().clientAuth, nil
}

// get implements tls.Config.GetCertificate: exact SNI match, then a
// wildcard for the parent domain (RFC 6125 §6.4.3: one label only), then
// an ACME certificate for the name, then the first static certificate as
// the default. A static certificate wins over ACME for its names. A
// TLS-ALPN-01 validation (RFC 8737 §3: ALPN "acme-tls/1" only) is answered
// for ACME names and refused for every other name.
func (cs *certStore) get(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return cs.pick(cs.cur.Load(), hello)
}

func (cs *certStore) pick(c *certificates, hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	isACME := cs.acme != nil && c.acme[name]
	if acme.IsChallenge(hello) {
		if !isACME {
			return nil, fmt.Errorf("tls-alpn-01 validation for %q, which this listener does not get from ACME", name)
		}
		return cs.acme.GetCertificate(hello)
	}
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
	if isACME {
		kp, err := cs.acme.GetCertificate(hello)
		if err == nil || c.first == nil {
			return kp, err
		}
		// Not obtained yet: the default certificate rather than no
		// handshake at all.
	}
	if c.first == nil {
		if cs.acme != nil && c.acmeDefault != "" && !isACME {
			h := *hello
			h.ServerName = c.acmeDefault
			return cs.acme.GetCertificate(&h)
		}
		return nil, fmt.Errorf("no certificate for %q", name)
	}
	return c.first, nil
}
