package config

import (
	"net/url"
	"slices"
	"strings"

	"github.com/handoff-proxy/handoff/pkg/hostname"
)

// ACME challenge types (RFC 8555 §8.3, RFC 8737).
const (
	ChallengeHTTP01    = "http-01"
	ChallengeTLSALPN01 = "tls-alpn-01"
)

// DefaultACMEDirectory is Let's Encrypt's production directory.
const DefaultACMEDirectory = "https://acme-v02.api.letsencrypt.org/directory"

var acmeChallenges = []string{ChallengeHTTP01, ChallengeTLSALPN01}

// ACME asks for certificates from an ACME CA (RFC 8555) for the listed
// names, renews them and serves them on the listener. A static
// certificate of the same listener wins for the names it covers.
type ACME struct {
	// Domains to obtain certificates for, one certificate per name. Each
	// must resolve to this listener publicly: HTTP-01 and TLS-ALPN-01
	// cannot prove wildcards (RFC 8555 §7.1.3), so none are allowed.
	Domains []string `koanf:"domains" json:"domains" yaml:"domains"`
	// Email for the ACME account (the CA's expiry and policy notices).
	// Empty means an account without contact.
	Email string `koanf:"email" json:"email,omitempty" yaml:"email,omitempty"`
	// Directory URL of the CA. Empty means Let's Encrypt production
	// (DefaultACMEDirectory).
	Directory string `koanf:"directory" json:"directory,omitempty" yaml:"directory,omitempty"`
	// DirectoryCA is a PEM file of extra CA certificates to trust for
	// the directory's HTTPS (a private CA, pebble in tests). Empty means
	// the system roots only.
	DirectoryCA string `koanf:"directory_ca" json:"directory_ca,omitempty" yaml:"directory_ca,omitempty"`
	// Challenges the CA may use: http-01 (answered by every http
	// listener of this process on /.well-known/acme-challenge/) and
	// tls-alpn-01 (answered by the https listeners). Empty means both.
	Challenges []string `koanf:"challenges" json:"challenges,omitempty" yaml:"challenges,omitempty"`
}

// applyDefaults fills Directory and Challenges.
func (a *ACME) applyDefaults() {
	setDefault(&a.Directory, DefaultACMEDirectory)
	if len(a.Challenges) == 0 {
		a.Challenges = slices.Clone(acmeChallenges)
	}
}

// acme validates a listener's tls.acme section under key.
func (v *validator) acme(key string, a *ACME) {
	if len(a.Domains) == 0 {
		v.errs.add(joinKey(key, "domains"), "required: at least one name")
	}
	seen := make(map[string]int)
	for i, d := range a.Domains {
		k := indexKey(joinKey(key, "domains"), i)
		n := strings.ToLower(strings.TrimSuffix(d, "."))
		switch {
		case strings.HasPrefix(d, "*."):
			v.errs.add(k, "%q: wildcard names need the dns-01 challenge, which handoff does not do; list the names", d)
			continue
		case hostname.Check(d) != nil:
			v.errs.add(k, "%v", hostname.Check(d))
			continue
		}
		if j, dup := seen[n]; dup {
			v.errs.add(k, "%q listed twice (also at [%d])", d, j)
		}
		seen[n] = i
	}
	if a.Email != "" && (!strings.Contains(a.Email, "@") || strings.ContainsAny(a.Email, " \t<>")) {
		v.errs.add(joinKey(key, "email"), "%q is not an email address", a.Email)
	}
	if a.Directory != "" {
		u, err := url.Parse(a.Directory)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			v.errs.add(joinKey(key, "directory"), "%q is not an http(s):// URL", a.Directory)
		}
	}
	if a.DirectoryCA != "" {
		if err := checkCA(a.DirectoryCA); err != nil {
			v.errs.add(joinKey(key, "directory_ca"), "%v", err)
		}
	}
	for i, c := range a.Challenges {
		oneOf(&v.errs, indexKey(joinKey(key, "challenges"), i), c, acmeChallenges)
	}
}
