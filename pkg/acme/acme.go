// Package acme obtains and renews TLS certificates from an ACME CA (RFC
// 8555) for the names listeners ask for, answers the CA's HTTP-01 and
// TLS-ALPN-01 challenges (RFC 8737) from whatever storage the processes
// share, and hands the certificates to TLS handshakes. It is a thin owner
// of github.com/caddyserver/certmagic, which does the protocol, renewal
// (at 1/3 of the lifetime left, with jitter), OCSP stapling, retries with
// backoff and the locking around orders.
//
// It owns the certificate cache and its background work (Start/Close). It
// does not know about config files, listeners or Redis: the caller passes
// Specs, the ports it answers challenges on and a certmagic.Storage
// (package acmestore on Redis, or certmagic's FileStorage).
package acme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// Spec is what one listener asks for.
type Spec struct {
	// Domains to keep a certificate for, one certificate per name.
	Domains []string
	// Email of the ACME account; empty means none.
	Email string
	// Directory URL of the CA. Empty means Let's Encrypt production.
	Directory string
	// RootsPEM are extra CA certificates to trust for the directory's
	// HTTPS, added to the system roots. Nil means the system roots.
	RootsPEM []byte
	// HTTP01 and TLSALPN01 report whether the CA may use that challenge.
	HTTP01, TLSALPN01 bool
}

// key identifies a Spec: equal keys mean nothing to change on reload.
func (s Spec) key() string {
	d := slices.Clone(s.Domains)
	for i := range d {
		d[i] = normalize(d[i])
	}
	slices.Sort(d)
	return strings.Join([]string{strings.Join(d, ","), s.Email, s.Directory, string(s.RootsPEM),
		strconv.FormatBool(s.HTTP01), strconv.FormatBool(s.TLSALPN01)}, "\x00")
}

func normalize(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) }

// Observer learns the outcome of every order (obtain or renewal); nil
// means nobody listens. Metrics implement it.
type Observer interface {
	ACMEOutcome(name string, renewal bool, err error)
}

// Options configure a Manager.
type Options struct {
	// Storage shared by the processes that serve the same names. Required.
	Storage certmagic.Storage
	// Logger; nil discards.
	Logger *slog.Logger
	// HTTPPort is the port of this process's HTTP listener, which
	// answers HTTP-01 (the CA always asks on port 80, RFC 8555 §8.3, so
	// it must be 80 from outside). Zero means no HTTP listener: HTTP-01
	// is not offered.
	HTTPPort int
	// TLSALPNPort is the port of the HTTPS listener answering
	// TLS-ALPN-01 (443 from outside, RFC 8737 §3). Zero means
	// TLS-ALPN-01 is not offered.
	TLSALPNPort int
	// ListenHost is the host the listeners above are bound to; certmagic
	// tries to bind ListenHost:port itself, finds it taken and leaves the
	// answering to us. Empty means all addresses.
	ListenHost string
	// RenewalWindowRatio is the share of a certificate's lifetime left
	// when it is renewed. Zero means 1/3 (certmagic's default).
	RenewalWindowRatio float64
	// RenewCheckInterval is how often certificates are checked for
	// renewal. Zero means 10 minutes (certmagic's default).
	RenewCheckInterval time.Duration
	// Observer of order outcomes; nil means none.
	Observer Observer
}

// Manager keeps the certificates of every Spec it was given. Create with
// New, then Start, Update on every (re)load, Close.
type Manager struct {
	o   Options
	log *slog.Logger
	zl  *zap.Logger

	cache  *certmagic.Cache
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.RWMutex
	sites map[string]*site // by Spec.key
	names map[string]*site // by normalized domain
}

// site is the certmagic config of one Spec and the work managing it.
type site struct {
	spec   Spec
	cfg    *certmagic.Config
	issuer *certmagic.ACMEIssuer
	cancel context.CancelFunc
}

// errNotManaged is returned for a name no Spec lists.
var errNotManaged = errors.New("acme: name not managed")

// New returns a Manager that has started nothing.
func New(o Options) *Manager {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Manager{o: o, log: o.Logger, zl: newZapLogger(o.Logger),
		sites: make(map[string]*site), names: make(map[string]*site)}
}

// Start creates the certificate cache, whose maintenance goroutine checks
// for renewals and OCSP staples until Close.
func (m *Manager) Start(ctx context.Context) {
	m.ctx, m.cancel = context.WithCancel(ctx)
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   m.configFor,
		RenewCheckInterval: m.o.RenewCheckInterval,
		OCSPCheckInterval:  m.o.RenewCheckInterval,
		Logger:             m.zl,
	})
}

// configFor tells the cache which config maintains cert.
func (m *Manager) configFor(cert certmagic.Certificate) (*certmagic.Config, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, n := range cert.Names {
		if s := m.names[normalize(n)]; s != nil {
			return s.cfg, nil
		}
	}
	for _, s := range m.sites {
		return s.cfg, nil // no longer listed: any config can still read its storage
	}
	return nil, fmt.Errorf("%w: %v", errNotManaged, cert.Names)
}

// Update makes specs the set of managed Specs: a Spec already managed
// keeps its work (a reload with the same domains starts nothing), a new
// one starts obtaining in the background, a dropped one stops and its
// names leave the cache. It never waits for the CA or the storage. Only
// valid after Start.
func (m *Manager) Update(specs []Spec) error {
	want := make(map[string]Spec, len(specs))
	for _, s := range specs {
		want[s.key()] = s
	}
	dropped, err := m.updateLocked(want)
	if len(dropped) > 0 {
		// Outside m.mu: the cache's maintenance holds its own lock while
		// it asks configFor (m.mu), so taking them in the other order
		// here could deadlock.
		m.cache.RemoveManaged(dropped)
	}
	return err
}

// updateLocked applies want to the sites under m.mu and returns the
// names to drop from the cache. On error nothing changed.
func (m *Manager) updateLocked(want map[string]Spec) ([]certmagic.SubjectIssuer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fresh := make(map[string]*site)
	for k, spec := range want {
		if m.sites[k] != nil {
			continue
		}
		s, err := m.newSite(spec) // starts nothing
		if err != nil {
			return nil, err
		}
		fresh[k] = s
	}
	var dropped []certmagic.SubjectIssuer
	for k, s := range m.sites {
		if _, ok := want[k]; ok {
			continue
		}
		s.cancel()
		delete(m.sites, k)
		for _, d := range s.spec.Domains {
			dropped = append(dropped, certmagic.SubjectIssuer{Subject: normalize(d)})
		}
	}
	for k, s := range fresh {
		m.sites[k] = s
		ctx, cancel := context.WithCancel(m.ctx)
		s.cancel = cancel
		m.wg.Add(1)
		go m.manage(ctx, s)
	}
	m.names = make(map[string]*site)
	for _, s := range m.sites {
		for _, d := range s.spec.Domains {
			m.names[normalize(d)] = s
		}
	}
	// Names still listed by another Spec stay in the cache.
	return slices.DeleteFunc(dropped, func(si certmagic.SubjectIssuer) bool { return m.names[si.Subject] != nil }), nil
}

func (m *Manager) newSite(spec Spec) (*site, error) {
	cfg := certmagic.New(m.cache, certmagic.Config{
		Storage:            m.o.Storage,
		Logger:             m.zl,
		OnEvent:            m.onEvent,
		RenewalWindowRatio: m.o.RenewalWindowRatio,
	})
	var roots *x509.CertPool
	if len(spec.RootsPEM) > 0 {
		var err error
		if roots, err = x509.SystemCertPool(); err != nil || roots == nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(spec.RootsPEM) {
			return nil, errors.New("acme: directory CA holds no PEM certificates")
		}
	}
	dir := spec.Directory
	if dir == "" {
		dir = certmagic.LetsEncryptProductionCA
	}
	iss := certmagic.NewACMEIssuer(cfg, certmagic.ACMEIssuer{
		CA:                      dir,
		TestCA:                  dir, // never fall back to another CA
		Email:                   spec.Email,
		Agreed:                  true,
		DisableHTTPChallenge:    !spec.HTTP01 || m.o.HTTPPort == 0,
		DisableTLSALPNChallenge: !spec.TLSALPN01 || m.o.TLSALPNPort == 0,
		ListenHost:              m.o.ListenHost,
		AltHTTPPort:             m.o.HTTPPort,
		AltTLSALPNPort:          m.o.TLSALPNPort,
		TrustedRoots:            roots,
		Logger:                  m.zl,
	})
	if iss.DisableHTTPChallenge && iss.DisableTLSALPNChallenge {
		return nil, fmt.Errorf("acme %v: no challenge can be answered (http-01 needs an http listener, tls-alpn-01 an https one)", spec.Domains)
	}
	cfg.Issuers = []certmagic.Issuer{iss}
	return &site{spec: spec, cfg: cfg, issuer: iss}, nil
}

// manage hands s's names to certmagic, which loads them from the storage
// or orders them and keeps them renewed. ManageAsync reads the storage
// before it returns, so it is retried here while the storage is down.
func (m *Manager) manage(ctx context.Context, s *site) {
	defer m.wg.Done()
	wait := time.Second
	for {
		err := s.cfg.ManageAsync(ctx, s.spec.Domains)
		if err == nil || ctx.Err() != nil {
			return
		}
		m.log.Error("acme: cannot manage certificates, retrying", "domains", s.spec.Domains, "error", err, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, 5*time.Minute)
	}
}

// onEvent turns certmagic's events into Observer calls.
func (m *Manager) onEvent(_ context.Context, event string, data map[string]any) error {
	if m.o.Observer == nil || (event != "cert_obtained" && event != "cert_failed") {
		return nil
	}
	name, _ := data["identifier"].(string)
	renewal, _ := data["renewal"].(bool)
	var err error
	if event == "cert_failed" {
		err, _ = data["error"].(error)
		if err == nil {
			err = errors.New("failed")
		}
	}
	m.o.Observer.ACMEOutcome(name, renewal, err)
	return nil
}

// Close stops every order and the cache maintenance and waits for them.
// Orders certmagic queued on its own workers see their context cancelled
// and end at their next step.
func (m *Manager) Close() {
	if m.cancel == nil {
		return
	}
	m.cancel()
	m.wg.Wait()
	m.cache.Stop()
}

// Manages reports whether name is one of the managed domains.
func (m *Manager) Manages(name string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.names[normalize(name)] != nil
}

func (m *Manager) siteFor(name string) *site {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.names[normalize(name)]
}

// GetCertificate returns the certificate for a managed name, or the
// TLS-ALPN-01 challenge certificate (RFC 8737 §3) when the client offers
// only "acme-tls/1". A name whose certificate is in memory never waits;
// one not yet obtained is looked up in the storage once.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	s := m.siteFor(hello.ServerName)
	if s == nil {
		return nil, fmt.Errorf("%w: %q", errNotManaged, hello.ServerName)
	}
	return s.cfg.GetCertificate(hello)
}

// IsChallenge reports whether hello is a TLS-ALPN-01 validation.
func IsChallenge(hello *tls.ClientHelloInfo) bool {
	return len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == ALPNProto
}

// ALPNProto is the protocol of TLS-ALPN-01 validations (RFC 8737 §6.2);
// a listener answering them lists it in its NextProtos.
const ALPNProto = "acme-tls/1"

// HTTPHandler answers HTTP-01 validations (RFC 8555 §8.3:
// GET /.well-known/acme-challenge/<token>) for managed names before next
// sees the request; the token comes from the shared storage, so any
// process answers for an order another one placed.
func (m *Manager) HTTPHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if certmagic.LooksLikeHTTPChallenge(r) {
			if s := m.siteFor(hostOnly(r.Host)); s != nil && s.issuer.HandleHTTPChallenge(w, r) {
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func hostOnly(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	return strings.Trim(h, "[]")
}

// Cert describes a managed certificate in memory.
type Cert struct {
	Name     string
	Issuer   string
	NotAfter time.Time
	Serial   string
}

// Certificates lists, by name, the certificate each managed name is
// served with now; names without one yet are left out.
func (m *Manager) Certificates() []Cert {
	m.mu.RLock()
	names := make([]string, 0, len(m.names))
	for n := range m.names {
		names = append(names, n)
	}
	m.mu.RUnlock()
	slices.Sort(names)
	var out []Cert
	for _, n := range names {
		var best *x509.Certificate
		for _, c := range m.cache.AllMatchingCertificates(n) {
			if c.Leaf != nil && (best == nil || c.Leaf.NotAfter.After(best.NotAfter)) {
				best = c.Leaf
			}
		}
		if best != nil {
			out = append(out, Cert{Name: n, Issuer: best.Issuer.CommonName, NotAfter: best.NotAfter, Serial: best.SerialNumber.Text(16)})
		}
	}
	return out
}
