package clientcert

import (
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"

	"github.com/handoff-proxy/handoff/pkg/handofftest"
)

func TestDescribe(t *testing.T) {
	leaf := handofftest.NewCA(t).Issue(t, "", "c", "client.example", "192.0.2.7")
	cert, err := x509.ParseCertificate(leaf.TLS.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		cs    *tls.ConnectionState
		empty bool
	}{
		{name: "no TLS", cs: nil, empty: true},
		{name: "unverified", cs: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}, empty: true},
		{name: "verified", cs: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert},
			VerifiedChains: [][]*x509.Certificate{{cert}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, n, f := Subject(tt.cs), SANs(tt.cs), Fingerprint(tt.cs)
			if tt.empty {
				if s+n+f != "" {
					t.Errorf("got %q %q %q, want nothing", s, n, f)
				}
				return
			}
			if s != "CN=client.example" || n != "client.example,192.0.2.7" || len(f) != 64 || strings.ToLower(f) != f {
				t.Errorf("got subject %q, SANs %q, fingerprint %q", s, n, f)
			}
		})
	}
}
