package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/handofftest"
)

// subjectBackend answers with the client certificate headers it got.
func subjectBackend(t *testing.T) *httptest.Server {
	t.Helper()
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Client-Subject")+"|"+r.Header.Get("X-Client-San")+"|"+r.Header.Get("X-Client-Fp"))
	}))
	t.Cleanup(b.Close)
	return b
}

func TestClientCertificates(t *testing.T) {
	dir := t.TempDir()
	serverCA, clientCA, otherCA := handofftest.NewCA(t), handofftest.NewCA(t), handofftest.NewCA(t)
	srvLeaf := serverCA.Issue(t, dir, "server", "127.0.0.1")
	good := clientCA.Issue(t, dir, "client", "client.example")
	wrong := otherCA.Issue(t, dir, "intruder", "intruder.example")
	caDir := t.TempDir()
	caPath := clientCA.WritePEM(t, caDir)
	b := subjectBackend(t)

	tests := []struct {
		name    string
		mode    string
		cert    *tls.Certificate
		wantErr bool
		want    string // body: subject|san|fingerprint-present
	}{
		{name: "require, valid", mode: config.ClientAuthRequire, cert: &good.TLS, want: "CN=client.example|client.example|fp"},
		{name: "require, none", mode: config.ClientAuthRequire, wantErr: true},
		{name: "require, wrong CA", mode: config.ClientAuthRequire, cert: &wrong.TLS, wantErr: true},
		{name: "verify_if_given, none", mode: config.ClientAuthVerifyIfGiven, want: "||"},
		{name: "verify_if_given, valid", mode: config.ClientAuthVerifyIfGiven, cert: &good.TLS, want: "CN=client.example|client.example|fp"},
		{name: "verify_if_given, wrong CA", mode: config.ClientAuthVerifyIfGiven, cert: &wrong.TLS, wantErr: true},
		{name: "default mode is require", cert: nil, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig([]config.Listener{{
				Name: "https", Protocol: config.ProtocolHTTPS,
				TLS: &config.ListenerTLS{
					Certificates: []config.Certificate{{Cert: srvLeaf.CertPath, Key: srvLeaf.KeyPath}},
					ClientAuth:   &config.ClientAuth{CA: caPath, Mode: tt.mode},
				},
			}}, hostOf(b))
			cfg.Routes[0].Headers = &config.RouteHeaders{Request: &config.HeaderOps{Set: map[string]string{
				"X-Client-Subject": "{client_cert_subject}", "X-Client-San": "{client_cert_san}", "X-Client-Fp": "{client_cert_fingerprint}",
			}}}
			if err := cfg.Validate([]string{"https"}); err != nil {
				t.Fatal(err)
			}
			r := serve(t, cfg, nil)
			body, err := getWithCert(r.addrs["https"], serverCA, tt.cert)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("served %q, want a failed handshake", body)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p := strings.Split(body, "|"); len(p) == 3 && len(p[2]) == 64 {
				body = p[0] + "|" + p[1] + "|fp"
			}
			if body != tt.want {
				t.Errorf("backend saw %q, want %q", body, tt.want)
			}
		})
	}

	t.Run("reload picks up a new CA and logs the subject", func(t *testing.T) {
		cfg := baseConfig([]config.Listener{{
			Name: "https", Protocol: config.ProtocolHTTPS,
			TLS: &config.ListenerTLS{
				Certificates: []config.Certificate{{Cert: srvLeaf.CertPath, Key: srvLeaf.KeyPath}},
				ClientAuth:   &config.ClientAuth{CA: caPath},
			},
		}}, hostOf(b))
		on := true
		cfg.Log.Access = &on
		var logs syncBuffer
		r := serve(t, cfg, func() (*config.Config, error) { return cfg, nil }, func(o *Options) {
			o.AccessLogger = slog.New(slog.NewJSONHandler(&logs, nil))
		})
		if _, err := getWithCert(r.addrs["https"], serverCA, &good.TLS); err != nil {
			t.Fatal(err)
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(grepLines(logs.String(), `"request"`)), &rec); err != nil {
			t.Fatalf("access log %q: %v", logs.String(), err)
		}
		if got := rec["client_cert_subject"]; got != "CN=client.example" {
			t.Errorf("access log client_cert_subject = %v", got)
		}
		// The same path now holds the other CA: a reload reads it.
		other := filepath.Join(t.TempDir(), "x")
		if err := os.Rename(otherCA.WritePEM(t, t.TempDir()), other); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(other, caPath); err != nil {
			t.Fatal(err)
		}
		if res, err := r.srv.Reload(context.Background()); err != nil || res.Error != "" {
			t.Fatalf("reload: %v %s", err, res.Error)
		}
		if _, err := getWithCert(r.addrs["https"], serverCA, &good.TLS); err == nil {
			t.Error("the old CA's client is still accepted after the reload")
		}
		if _, err := getWithCert(r.addrs["https"], serverCA, &wrong.TLS); err != nil {
			t.Errorf("the new CA's client is refused: %v", err)
		}
	})
}

// getWithCert GETs / over a new TLS connection, presenting cert (none
// when nil), and returns the body.
func getWithCert(addr string, ca *handofftest.CA, cert *tls.Certificate) (string, error) {
	tc := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("https://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestClientAuthConfigErrors(t *testing.T) {
	dir := t.TempDir()
	leaf := handofftest.NewCA(t).Issue(t, dir, "server", "127.0.0.1")
	notPEM := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		ca   config.ClientAuth
		key  string
		msg  string
	}{
		{name: "missing file", ca: config.ClientAuth{CA: filepath.Join(dir, "nope.pem")},
			key: "listeners[0].tls.client_auth.ca", msg: "nope.pem"},
		{name: "not PEM", ca: config.ClientAuth{CA: notPEM}, key: "listeners[0].tls.client_auth.ca", msg: "garbage.pem"},
		{name: "no CA", ca: config.ClientAuth{}, key: "listeners[0].tls.client_auth.ca", msg: "required"},
		{name: "bad mode", ca: config.ClientAuth{CA: notPEM, Mode: "optional"}, key: "listeners[0].tls.client_auth.mode", msg: "optional"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig([]config.Listener{{Name: "https", Protocol: config.ProtocolHTTPS, TLS: &config.ListenerTLS{
				Certificates: []config.Certificate{{Cert: leaf.CertPath, Key: leaf.KeyPath}}, ClientAuth: &tt.ca}}}, "127.0.0.1:1")
			err := cfg.Validate([]string{"https"})
			if err == nil || !strings.Contains(err.Error(), tt.key+":") || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v, want one naming %s and %q", err, tt.key, tt.msg)
			}
		})
	}
}
