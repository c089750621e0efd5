package server

import (
	"crypto/tls"
	"errors"
	"testing"

	"github.com/handoff-proxy/handoff/pkg/acme"
	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/handofftest"
)

// fakeACME answers for the names it has, remembering what it was asked.
type fakeACME struct {
	have  map[string]*tls.Certificate
	asked []string
}

func (f *fakeACME) GetCertificate(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
	f.asked = append(f.asked, h.ServerName)
	if c, ok := f.have[h.ServerName]; ok {
		return c, nil
	}
	return nil, errors.New("not obtained yet")
}

func TestCertStoreGetWithACME(t *testing.T) {
	dir := t.TempDir()
	ca := handofftest.NewCA(t)
	static := ca.Issue(t, dir, "static", "static.test", "*.wild.test")
	acmeCert := &tls.Certificate{}
	tests := []struct {
		name      string
		static    bool
		domains   []string
		sni       string
		protos    []string
		want      string // "static", "acme", "error"
		wantAsked string
	}{
		{name: "acme name", static: true, domains: []string{"a.test"}, sni: "a.test", want: "acme", wantAsked: "a.test"},
		{name: "static wins for its name", static: true, domains: []string{"static.test"}, sni: "static.test", want: "static"},
		{name: "static wildcard wins", static: true, domains: []string{"x.wild.test"}, sni: "x.wild.test", want: "static"},
		{name: "not obtained yet: static default", static: true, domains: []string{"late.test"}, sni: "late.test", want: "static", wantAsked: "late.test"},
		{name: "not obtained, no static", domains: []string{"late.test"}, sni: "late.test", want: "error", wantAsked: "late.test"},
		{name: "no SNI, acme only: first acme name", domains: []string{"a.test", "b.test"}, sni: "", want: "acme", wantAsked: "a.test"},
		{name: "tls-alpn-01 for an acme name", static: true, domains: []string{"a.test"}, sni: "a.test", protos: []string{acme.ALPNProto}, want: "acme", wantAsked: "a.test"},
		{name: "tls-alpn-01 for a static name refused", static: true, domains: []string{"a.test"}, sni: "static.test", protos: []string{acme.ALPNProto}, want: "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lt := &config.ListenerTLS{ACME: &config.ACME{Domains: tt.domains}}
			if tt.static {
				lt.Certificates = []config.Certificate{{Cert: static.CertPath, Key: static.KeyPath}}
			}
			f := &fakeACME{have: map[string]*tls.Certificate{"a.test": acmeCert, "static.test": acmeCert, "x.wild.test": acmeCert}}
			cs, err := loadCerts(lt, f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := cs.get(&tls.ClientHelloInfo{ServerName: tt.sni, SupportedProtos: tt.protos})
			kind := "error"
			switch {
			case err != nil:
			case got == acmeCert:
				kind = "acme"
			case got != nil:
				kind = "static"
			}
			if kind != tt.want {
				t.Errorf("got %s (%v), want %s", kind, err, tt.want)
			}
			asked := ""
			if len(f.asked) > 0 {
				asked = f.asked[0]
			}
			if asked != tt.wantAsked {
				t.Errorf("asked ACME for %q, want %q", asked, tt.wantAsked)
			}
		})
	}
}
