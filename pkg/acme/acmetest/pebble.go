// Package acmetest starts pebble, the ACME test CA (Debian package
// pebble), on loopback for tests, and counts the orders it received.
//
// It knows nothing about handoff: tests point their ACME client at
// Pebble.Directory and trust Pebble.RootsPEM.
package acmetest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/handofftest"
)

// Options configure a pebble.
type Options struct {
	// AlwaysValid skips challenge validation (PEBBLE_VA_ALWAYS_VALID=1).
	AlwaysValid bool
	// HTTPPort and TLSPort are the ports pebble's VA validates HTTP-01
	// and TLS-ALPN-01 on (at the address the name resolves to). Zero
	// means 5002 and 5001.
	HTTPPort, TLSPort int
	// Resolve127 makes pebble resolve every name to 127.0.0.1 (a DNS
	// server on loopback, passed as -dnsserver), for real validation
	// against a local server. False means the system resolver.
	Resolve127 bool
	// Blocklist names pebble refuses to issue for (rejectedIdentifier).
	Blocklist []string
	// Validity of the certificates issued. Zero means pebble's default
	// (5 years).
	Validity time.Duration
}

// Pebble is a running pebble.
type Pebble struct {
	// Directory is the ACME directory URL.
	Directory string
	// DirectoryCAPEM is the CA of the directory's HTTPS certificate; the
	// file DirectoryCAFile holds it too.
	DirectoryCAPEM  []byte
	DirectoryCAFile string
	mgmt            string
	logs            *syncBuffer
	client          *http.Client
}

// Start runs pebble until the test ends; it skips the test when pebble is
// not installed.
func Start(t testing.TB, o Options) *Pebble {
	t.Helper()
	bin, err := exec.LookPath("pebble")
	if err != nil {
		t.Skipf("pebble not installed (apt-get install pebble): %v", err)
	}
	dir := t.TempDir()
	ca := handofftest.NewCA(t)
	caFile := ca.WritePEM(t, dir)
	leaf := ca.Issue(t, dir, "pebble", "localhost", "127.0.0.1")
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	if o.HTTPPort == 0 {
		o.HTTPPort = 5002
	}
	if o.TLSPort == 0 {
		o.TLSPort = 5001
	}
	// freeAddr's ports are free only until someone else binds them:
	// another test process can take one between our close and pebble's
	// bind. Pebble then exits with "address already in use"; try again
	// with fresh ports.
	for attempt := 1; ; attempt++ {
		p, err := launch(t, bin, o, dir, leaf, caFile, caPEM)
		if err == nil {
			return p
		}
		if attempt == 5 || !errors.Is(err, errPortTaken) {
			t.Fatal(err)
		}
		t.Logf("pebble attempt %d: %v", attempt, err)
	}
}

var errPortTaken = errors.New("a port was taken before pebble bound it")

// launch starts one pebble on fresh loopback ports and waits until its
// directory answers.
func launch(t testing.TB, bin string, o Options, dir string, leaf handofftest.Leaf, caFile string, caPEM []byte) (*Pebble, error) {
	listen, mgmt := freeAddr(t), freeAddr(t)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress": listen, "managementListenAddress": mgmt,
		"certificate": leaf.CertPath, "privateKey": leaf.KeyPath,
		"httpPort": o.HTTPPort, "tlsPort": o.TLSPort, "ocspResponderURL": "",
		"externalAccountBindingRequired": false,
		"certificateValidityPeriod":      uint64(o.Validity.Seconds()),
		"domainBlocklist":                o.Blocklist,
	}}
	b, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		return nil, err
	}
	args := []string{"-config", cfgFile}
	if o.Resolve127 {
		args = append(args, "-dnsserver", startDNS(t))
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_VA_NOSLEEP=1", "PEBBLE_AUTHZREUSE=0")
	if o.AlwaysValid {
		cmd.Env = append(cmd.Env, "PEBBLE_VA_ALWAYS_VALID=1")
	}
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start pebble: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-done
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	p := &Pebble{Directory: "https://" + listen + "/dir", DirectoryCAPEM: caPEM, DirectoryCAFile: caFile, mgmt: mgmt, logs: logs,
		client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := p.client.Get(p.Directory)
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case <-done:
			if strings.Contains(logs.String(), "address already in use") {
				return nil, fmt.Errorf("%w: %s", errPortTaken, logs.String())
			}
			return nil, fmt.Errorf("pebble exited: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("pebble not answering: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("pebble log:\n%s", logs.String())
		}
	})
	return p, nil
}

// Roots returns the pool of pebble's issuing root, to verify the
// certificates it issued.
func (p *Pebble) Roots(t testing.TB) *x509.CertPool {
	t.Helper()
	resp, err := p.client.Get("https://" + p.mgmt + "/roots/0")
	if err != nil {
		t.Fatalf("pebble root: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("pebble root: no PEM in %q", b)
	}
	return pool
}

// Orders counts the new orders pebble received (RFC 8555 §7.4).
func (p *Pebble) Orders() int {
	return strings.Count(p.logs.String(), "POST /order-plz")
}

// Log returns what pebble printed so far.
func (p *Pebble) Log() string { return p.logs.String() }

type syncBuffer = handofftest.Buffer

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}
