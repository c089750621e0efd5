package proxy

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// Fixed transport settings; the configurable ones default in
// config.ApplyDefaults (see withDefaults).
const (
	tcpKeepAlive             = 30 * time.Second
	expectContinueTimeout    = 1 * time.Second
	maxResponseHeaderBytesUp = 1 << 20
)

// Transports builds and caches the connection pools towards upstreams: one
// pair of *http.Transport per upstream name and settings (one for http://
// and https:// targets, one for h2c:// targets), so that keep-alive
// connections are shared by every request and survive a reload that does
// not change the upstream's settings.
//
// The zero value is not usable; call NewTransports. It is safe for
// concurrent use.
type Transports struct {
	log *slog.Logger

	mu sync.Mutex
	m  map[string]*upstreamTransport
}

// NewTransports returns an empty cache. A nil logger discards.
func NewTransports(logger *slog.Logger) *Transports {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Transports{log: logger, m: make(map[string]*upstreamTransport)}
}

// Update makes the cache match upstreams, as on a config reload: it builds
// a transport for every new upstream and for every upstream whose settings
// (timeouts, idle limit, TLS settings or the contents of the TLS files)
// changed, keeps the others with their idle connections, and closes the
// idle connections of those that were replaced or removed. Requests in
// flight on a replaced transport finish normally; its remaining
// connections close when idle.
//
// On error (an unreadable TLS file, for example) the upstreams that could
// be built are updated, the failing ones keep their previous transport,
// and the error names every failing upstream.
func (t *Transports) Update(upstreams map[string]config.Upstream) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(upstreams)) {
		if _, err := t.getLocked(name, upstreams[name]); err != nil {
			errs = append(errs, err)
		}
	}
	for name, ut := range t.m {
		if _, ok := upstreams[name]; !ok {
			ut.closeIdle()
			delete(t.m, name)
		}
	}
	return errors.Join(errs...)
}

// Close closes the idle connections of every transport and empties the
// cache. Connections in use close when their requests end.
func (t *Transports) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for name, ut := range t.m {
		ut.closeIdle()
		delete(t.m, name)
	}
}

// get returns the transports for upstream name with cfg, building them
// when missing or when the settings changed.
func (t *Transports) get(name string, cfg config.Upstream) (*upstreamTransport, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.getLocked(name, cfg)
}

func (t *Transports) getLocked(name string, cfg config.Upstream) (*upstreamTransport, error) {
	cfg = withDefaults(cfg)
	files, err := readTLSFiles(cfg.TLS)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", name, err)
	}
	key := newTransportKey(cfg, files)
	if ut, ok := t.m[name]; ok && ut.key == key {
		return ut, nil
	}
	ut, err := newUpstreamTransport(cfg, files)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", name, err)
	}
	ut.key = key
	if old, ok := t.m[name]; ok {
		old.closeIdle()
		t.log.Info("upstream transport rebuilt", "upstream", name)
	}
	t.m[name] = ut
	return ut, nil
}

// tlsFiles holds the contents of the TLS files of an upstream.
type tlsFiles struct {
	ca, cert, key []byte
}

func readTLSFiles(c config.UpstreamTLS) (tlsFiles, error) {
	var f tlsFiles
	var err error
	if (c.Cert == "") != (c.Key == "") {
		return f, errors.New("tls cert and key must be set together")
	}
	if c.CA != "" {
		if f.ca, err = os.ReadFile(c.CA); err != nil {
			return f, fmt.Errorf("read tls ca: %w", err)
		}
	}
	if c.Cert != "" {
		if f.cert, err = os.ReadFile(c.Cert); err != nil {
			return f, fmt.Errorf("read tls cert: %w", err)
		}
		if f.key, err = os.ReadFile(c.Key); err != nil {
			return f, fmt.Errorf("read tls key: %w", err)
		}
	}
	return f, nil
}

// transportKey is everything a transport is built from. Two equal keys
// build equivalent transports, so a reload that yields the same key keeps
// the transport and its idle connections.
type transportKey struct {
	tls                    config.UpstreamTLS
	caSum, certSum, keySum [sha256.Size]byte
	timeouts               config.UpstreamTimeouts
	maxIdle                int
	sendProxy              string // proxy_protocol.send (sendproxy.go)
}

func newTransportKey(cfg config.Upstream, f tlsFiles) transportKey {
	k := transportKey{tls: cfg.TLS, timeouts: cfg.Timeouts, maxIdle: cfg.MaxIdlePerTarget}
	if cfg.ProxyProtocol != nil {
		k.sendProxy = cfg.ProxyProtocol.Send
	}
	if f.ca != nil {
		k.caSum = sha256.Sum256(f.ca)
	}
	if f.cert != nil {
		k.certSum = sha256.Sum256(f.cert)
		k.keySum = sha256.Sum256(f.key)
	}
	return k
}

// upstreamTransport is the pair of transports of one upstream.
type upstreamTransport struct {
	key transportKey
	// std serves http:// (HTTP/1.1) and https:// (HTTP/2 or HTTP/1.1 by
	// ALPN) targets.
	std *http.Transport
	// h2c serves h2c:// targets: HTTP/2 with prior knowledge (RFC 9113
	// §3.3), addressed as http:// URLs.
	h2c *http.Transport
	// h1 holds the fast path's idle connections (fast.go); respTimeout
	// is its response header timeout.
	h1          *h1Conns
	respTimeout time.Duration
}

// forScheme returns the transport for a target scheme and the URL scheme
// to use with it.
func (u *upstreamTransport) forScheme(scheme string) (*http.Transport, string) {
	switch scheme {
	case upstream.SchemeH2C:
		return u.h2c, "http"
	case upstream.SchemeHTTPS:
		return u.std, "https"
	default:
		return u.std, "http"
	}
}

func (u *upstreamTransport) closeIdle() {
	u.std.CloseIdleConnections()
	u.h2c.CloseIdleConnections()
	u.h1.close()
}

func newUpstreamTransport(cfg config.Upstream, f tlsFiles) (*upstreamTransport, error) {
	tlsConf, err := buildTLSConfig(cfg.TLS, f)
	if err != nil {
		return nil, err
	}
	var std, h2c http.Protocols
	std.SetHTTP1(true)
	std.SetHTTP2(true)
	h2c.SetUnencryptedHTTP2(true)
	return &upstreamTransport{
		std:         buildTransport(cfg, tlsConf, &std),
		h2c:         buildTransport(cfg, nil, &h2c),
		h1:          newH1Conns(cfg.Timeouts.Dial, cfg.Timeouts.IdleConn, cfg.MaxIdlePerTarget),
		respTimeout: cfg.Timeouts.ResponseHeader,
	}, nil
}

func buildTransport(cfg config.Upstream, tlsConf *tls.Config, protocols *http.Protocols) *http.Transport {
	to := cfg.Timeouts
	dialer := &net.Dialer{
		Timeout:   to.Dial,
		KeepAlive: tcpKeepAlive,
	}
	dial, single := dialFunc(dialer.DialContext), false
	if pp := cfg.ProxyProtocol; pp != nil {
		dial, single = sendProxyDialer(dial, pp.Send), true
	}
	return &http.Transport{
		// Never use HTTP_PROXY from the environment: targets are
		// reached directly.
		Proxy:       nil,
		DialContext: dial,
		// A connection that starts with a PROXY header belongs to
		// that one client: it carries one request.
		DisableKeepAlives:      single,
		TLSClientConfig:        tlsConf,
		TLSHandshakeTimeout:    to.TLSHandshake,
		ResponseHeaderTimeout:  to.ResponseHeader,
		IdleConnTimeout:        to.IdleConn,
		MaxIdleConnsPerHost:    cfg.MaxIdlePerTarget,
		ExpectContinueTimeout:  expectContinueTimeout,
		MaxResponseHeaderBytes: maxResponseHeaderBytesUp,
		// A proxy forwards Accept-Encoding and bodies untouched; the
		// transport must not add gzip and decompress behind its back.
		DisableCompression: true,
		Protocols:          protocols,
	}
}

// buildTLSConfig returns the client TLS config for https:// targets. SNI
// and the verified name are ServerName when set; otherwise the transport
// uses the target's host (never the client's Host header).
func buildTLSConfig(c config.UpstreamTLS, f tlsFiles) (*tls.Config, error) {
	conf := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, //nolint:gosec // only when configured.
	}
	if f.ca != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(f.ca) {
			return nil, fmt.Errorf("tls ca %q: no PEM certificate found", c.CA)
		}
		conf.RootCAs = pool
	}
	if f.cert != nil {
		pair, err := tls.X509KeyPair(f.cert, f.key)
		if err != nil {
			return nil, fmt.Errorf("tls client certificate %q: %w", c.Cert, err)
		}
		conf.Certificates = []tls.Certificate{pair}
	}
	return conf, nil
}
