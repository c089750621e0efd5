// Package clientcert describes the verified client certificate of a TLS
// connection (mutual TLS, listeners[].tls.client_auth) in the words that
// header templates and the access log use: its subject, its subject
// alternative names and its fingerprint.
//
// It owns only the reading of a crypto/tls connection state; it does not
// know how certificates are asked for or checked (package server and
// crypto/tls do that), nor where the values go.
package clientcert

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"strings"
)

// Verified returns the client's leaf certificate when crypto/tls verified
// it against the listener's CA, nil otherwise (no TLS, no certificate, or
// one that was not verified). Only a verified certificate may stand for
// the client: an unverified one says whatever the client wants.
func Verified(cs *tls.ConnectionState) *x509.Certificate {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return nil
	}
	return cs.VerifiedChains[0][0]
}

// Subject is the verified certificate's subject as an RFC 2253
// distinguished name ("CN=client,O=Example"), or "" without one.
func Subject(cs *tls.ConnectionState) string {
	if c := Verified(cs); c != nil {
		return c.Subject.String()
	}
	return ""
}

// SANs lists the verified certificate's subject alternative names (RFC
// 5280 §4.2.1.6), DNS names, then e-mail addresses, IP addresses and
// URIs, separated by commas; "" without a certificate.
func SANs(cs *tls.ConnectionState) string {
	c := Verified(cs)
	if c == nil {
		return ""
	}
	names := make([]string, 0, len(c.DNSNames)+len(c.EmailAddresses)+len(c.IPAddresses)+len(c.URIs))
	names = append(names, c.DNSNames...)
	names = append(names, c.EmailAddresses...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	for _, u := range c.URIs {
		names = append(names, u.String())
	}
	return strings.Join(names, ",")
}

// Fingerprint is the SHA-256 of the verified certificate's DER encoding
// in lower-case hex (what `openssl x509 -fingerprint -sha256` prints,
// without colons), or "" without one.
func Fingerprint(cs *tls.ConnectionState) string {
	c := Verified(cs)
	if c == nil {
		return ""
	}
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}
