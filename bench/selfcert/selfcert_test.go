package selfcert

import (
	"crypto/tls"
	"crypto/x509"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestWrite(t *testing.T) {
	f, err := Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		cert, key string
	}{
		{name: "separate files", cert: f.Cert, key: f.Key},
		{name: "combined file", cert: f.Combined, key: f.Combined},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kp, err := tls.LoadX509KeyPair(tt.cert, tt.key)
			if err != nil {
				t.Fatal(err)
			}
			leaf, err := x509.ParseCertificate(kp.Certificate[0])
			if err != nil {
				t.Fatal(err)
			}
			for _, host := range []string{"127.0.0.1", "localhost", "::1"} {
				if err := leaf.VerifyHostname(host); err != nil {
					t.Errorf("not valid for %s: %v", host, err)
				}
			}
		})
	}
}
