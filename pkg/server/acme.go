package server

import (
	"cmp"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	goredis "github.com/redis/go-redis/v9"

	"github.com/handoff-proxy/handoff/pkg/acme"
	"github.com/handoff-proxy/handoff/pkg/acmestore"
	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/metrics"
)

// acmeResources is the process's ACME manager: one certificate cache and
// one set of orders for every listener's tls.acme, kept across reloads (a
// reload with the same domains starts nothing; changed domains take
// effect). It lives as long as the process, like the Redis client whose
// storage it uses.
type acmeResources struct {
	m       *acme.Manager
	store   *acmestore.Store // nil without Redis
	started bool
	log     *slog.Logger
}

// defaultStateDir is where certificates are kept without Redis and
// without $STATE_DIRECTORY.
const defaultStateDir = "/var/lib/handoff"

// acmeStorage returns the shared storage: Redis when state.redis is
// configured (every process and machine sees the same certificates and
// locks), files otherwise, under $STATE_DIRECTORY (systemd.exec(5)
// StateDirectory=; the first of a colon-separated list) or
// /var/lib/handoff.
func acmeStorage(cfg *config.Config, client goredis.UniversalClient) (certmagic.Storage, *acmestore.Store) {
	if client != nil {
		prefix := ""
		if o := cfg.State.Redis.RedisOptions(); o != nil {
			prefix = o.Prefix
		}
		s := acmestore.New(client, acmestore.Options{Prefix: prefix})
		return s, s
	}
	dir, _, _ := strings.Cut(os.Getenv("STATE_DIRECTORY"), ":")
	if dir == "" {
		dir = defaultStateDir
	}
	return &certmagic.FileStorage{Path: filepath.Join(dir, "acme")}, nil
}

func newACMEResources(cfg *config.Config, lns map[string]net.Listener, client goredis.UniversalClient,
	log *slog.Logger, obs acme.Observer) *acmeResources {
	storage, store := acmeStorage(cfg, client)
	o := acme.Options{Storage: storage, Logger: log, Observer: obs}
	// The challenge ports are the sockets this process already has:
	// HTTP-01 on the first http listener, TLS-ALPN-01 on the first https
	// listener with tls.acme. Listeners are static config, so these hold
	// for the life of the process.
	var hosts []string
	for _, l := range cfg.Listeners {
		ln := lns[l.Name]
		if ln == nil {
			continue // New reports the missing listener
		}
		a, ok := ln.Addr().(*net.TCPAddr)
		if !ok {
			continue
		}
		switch {
		case l.Protocol == config.ProtocolHTTP && o.HTTPPort == 0:
			o.HTTPPort = a.Port
		case l.Protocol == config.ProtocolHTTPS && l.TLS != nil && l.TLS.ACME != nil && o.TLSALPNPort == 0:
			o.TLSALPNPort = a.Port
		default:
			continue
		}
		h := ""
		if !a.IP.IsUnspecified() {
			h = a.IP.String()
		}
		hosts = append(hosts, h)
	}
	if len(hosts) > 0 && !slices.ContainsFunc(hosts, func(h string) bool { return h != hosts[0] }) {
		o.ListenHost = hosts[0]
	}
	return &acmeResources{m: acme.New(o), store: store, log: log}
}

// specs converts every listener's tls.acme.
func acmeSpecs(cfg *config.Config) ([]acme.Spec, error) {
	var out []acme.Spec
	for _, l := range cfg.Listeners {
		if l.TLS == nil || l.TLS.ACME == nil {
			continue
		}
		a := l.TLS.ACME
		s := acme.Spec{Domains: a.Domains, Email: a.Email, Directory: a.Directory,
			HTTP01:    slices.Contains(a.Challenges, config.ChallengeHTTP01) || len(a.Challenges) == 0,
			TLSALPN01: slices.Contains(a.Challenges, config.ChallengeTLSALPN01) || len(a.Challenges) == 0}
		if a.DirectoryCA != "" {
			b, err := os.ReadFile(a.DirectoryCA)
			if err != nil {
				return nil, fmt.Errorf("listener %q: tls.acme.directory_ca: %w", l.Name, err)
			}
			s.RootsPEM = b
		}
		out = append(out, s)
	}
	return out, nil
}

// update makes cfg's tls.acme sections the managed ones, starting the
// manager on first use. It runs on the main loop only.
func (a *acmeResources) update(s *Server, cfg *config.Config) error {
	specs, err := acmeSpecs(cfg)
	if err != nil {
		return err
	}
	if !a.started {
		if len(specs) == 0 {
			return nil
		}
		a.m.Start(s.baseCtx)
		a.started = true
	}
	return a.m.Update(specs)
}

// Close stops the orders and the cache, then the storage's lock refresh.
func (a *acmeResources) Close() {
	if a.started {
		a.m.Close()
	}
	if a.store != nil {
		a.store.Close()
	}
}

// servedCert is one certificate a listener serves, for the admin API and
// the expiry metric.
type servedCert struct {
	Name     string    `json:"name"`
	Listener string    `json:"listener"`
	Source   string    `json:"source"` // "static" or "acme"
	Issuer   string    `json:"issuer"`
	NotAfter time.Time `json:"not_after"`
	Serial   string    `json:"serial"`
}

// servedCerts lists, per https listener and name, the certificate served:
// static ones for their names, ACME ones for the names no static
// certificate covers (a static certificate wins).
func (s *Server) servedCerts() []servedCert {
	var acmeCerts map[string]acme.Cert
	if s.acme != nil {
		acmeCerts = make(map[string]acme.Cert)
		for _, c := range s.acme.m.Certificates() {
			acmeCerts[c.Name] = c
		}
	}
	var out []servedCert
	for lname, cs := range s.certs {
		c := cs.cur.Load()
		static := make(map[string]bool)
		for _, kp := range c.all {
			names := kp.Leaf.DNSNames
			if len(names) == 0 && kp.Leaf.Subject.CommonName != "" {
				names = []string{kp.Leaf.Subject.CommonName}
			}
			for _, n := range names {
				static[strings.ToLower(n)] = true
				out = append(out, servedCert{Name: n, Listener: lname, Source: "static", Issuer: kp.Leaf.Issuer.CommonName,
					NotAfter: kp.Leaf.NotAfter, Serial: kp.Leaf.SerialNumber.Text(16)})
			}
		}
		for n := range c.acme {
			ac, ok := acmeCerts[n]
			if !ok || static[n] {
				continue
			}
			out = append(out, servedCert{Name: n, Listener: lname, Source: "acme", Issuer: ac.Issuer, NotAfter: ac.NotAfter, Serial: ac.Serial})
		}
	}
	slices.SortFunc(out, func(a, b servedCert) int {
		return cmp.Or(cmp.Compare(a.Listener, b.Listener), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Source, b.Source))
	})
	return out
}

// certExpiries feeds handoff_tls_certificate_expiry_seconds: one value per
// name (the earliest expiry when listeners serve it differently).
func (s *Server) certExpiries() []metrics.CertExpiry {
	seen := make(map[string]int)
	var out []metrics.CertExpiry
	for _, c := range s.servedCerts() {
		if i, ok := seen[c.Name]; ok {
			if c.NotAfter.Before(out[i].NotAfter) {
				out[i].NotAfter = c.NotAfter
			}
			continue
		}
		seen[c.Name] = len(out)
		out = append(out, metrics.CertExpiry{Name: c.Name, NotAfter: c.NotAfter})
	}
	return out
}

// serveCertificates is GET /api/v1/certificates.
func (s *Server) serveCertificates(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	certs := s.servedCerts()
	if certs == nil {
		certs = []servedCert{}
	}
	_ = json.NewEncoder(w).Encode(struct {
		Certificates []servedCert `json:"certificates"`
	}{Certificates: certs})
}

// acmeChallenge answers an HTTP-01 validation (RFC 8555 §8.3) before any
// routing, and reports whether it did.
func (s *Server) acmeChallenge(w http.ResponseWriter, r *http.Request) bool {
	if s.acme == nil || !strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
		return false
	}
	answered := true
	s.acme.m.HTTPHandler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { answered = false })).ServeHTTP(w, r)
	return answered
}
