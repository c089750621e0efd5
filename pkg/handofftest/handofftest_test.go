package handofftest

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestCAIssuesCertificatesClientsTrust(t *testing.T) {
	ca := NewCA(t)
	leaf := ca.Issue(t, "", "srv", "127.0.0.1", "localhost")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLS}}
	srv.StartTLS()
	defer srv.Close()
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	res, err := c.Get(srv.URL)
	if err != nil {
		t.Fatalf("client trusting the CA: %v", err)
	}
	res.Body.Close()
	c.CloseIdleConnections()
	if _, err := (&http.Client{}).Get(srv.URL); err == nil {
		t.Fatal("a client with system roots trusted the test CA")
	}
}

func TestSelfSigned(t *testing.T) {
	leaf := SelfSigned(t, t.TempDir(), "x", "example.test")
	cert, err := x509.ParseCertificate(leaf.TLS.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.VerifyHostname("example.test"); err != nil {
		t.Fatal(err)
	}
	if cert.Issuer.CommonName != cert.Subject.CommonName {
		t.Fatalf("not self-signed: issuer %q", cert.Issuer)
	}
}

func TestLoggerAfterTestEnds(t *testing.T) {
	var w io.Writer
	t.Run("inner", func(t *testing.T) {
		w = Writer(t)
		Logger(t).Info("inside")
	})
	// Must not panic: the inner test is over.
	if _, err := w.Write([]byte("late\n")); err != nil {
		t.Fatal(err)
	}
}
