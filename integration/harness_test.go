//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"go.uber.org/goleak"

	"github.com/handoff-proxy/handoff/integration/loadgen"
	"github.com/handoff-proxy/handoff/integration/nspawn"

	"github.com/handoff-proxy/handoff/pkg/handofftest"
)

// Environment knobs of the harness (see README.md).
const (
	// envBinary: a prebuilt handoff binary to test instead of building
	// ./cmd/handoff.
	envBinary = "HANDOFF_IT_BINARY"
	// envHangBinary: a prebuilt handoff built with -tags debughang.
	envHangBinary = "HANDOFF_IT_DEBUGHANG_BINARY"
	// envImage: a root tree to boot instead of rootfs.sh's cached one.
	envImage = "HANDOFF_IT_IMAGE"
	// envReport: write the scenario table as JSON to this file too.
	envReport = "HANDOFF_IT_REPORT"
	// envFeatures: override the features `handoff version` announces
	// (space-separated), e.g. to see a scenario fail before its feature
	// lands.
	envFeatures = "HANDOFF_IT_FEATURES"
)

// Paths inside the containers.
const (
	binPath      = "/usr/bin/handoff"
	loadgenPath  = "/usr/local/bin/loadgen"
	unitDir      = "/usr/lib/systemd/system"
	sysusersPath = "/usr/lib/sysusers.d/handoff.conf"
	configPath   = "/etc/handoff/handoff.yaml"
	tlsDir       = "/etc/handoff/tls"
	dropIn254    = "50-systemd-254.conf"
)

// suite is what TestMain prepares once for all tests: binaries, the
// image, and the scenario table.
type suite struct {
	skip      string // non-empty: every test skips with this reason
	repo      string
	imageMu   sync.Mutex
	images    map[string]string // by Debian suite, built on first use
	handoff   string            // host path of the handoff binary under test
	hang      string            // host path of the debughang build, "" if it failed
	loadgen   string            // host path of the static loadgen
	features  []string
	hangFeats []string

	mu       sync.Mutex
	rows     []row
	machines map[*nspawn.Machine]struct{}
}

// row is one line of the final table.
type row struct {
	Scenario string  `json:"scenario"`
	Sent     int64   `json:"sent"`
	OK       int64   `json:"ok"`
	Failed   int64   `json:"failed"`
	Reset    int64   `json:"reset"`
	Refused  int64   `json:"refused"`
	Skipped  int64   `json:"skipped"`
	Seconds  float64 `json:"seconds"`
	Note     string  `json:"note,omitempty"`
}

// the is the suite TestMain prepared; tests only read it (rows and
// machines under mu).
var the = &suite{machines: map[*nspawn.Machine]struct{}{}, images: map[string]string{}}

// Debian suites the tests boot.
const (
	// bookworm is Debian 12, systemd 252: the units in systemd/.
	bookworm = "bookworm"
	// trixie is Debian 13, systemd 257: the units plus the drop-in in
	// systemd/systemd-254/.
	trixie = "trixie"
)

func runMain(m *testing.M) int {
	flag.Parse()
	start := time.Now()
	tmp, err := os.MkdirTemp("", "handoff-it-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	if err := the.prepare(tmp); err != nil {
		fmt.Fprintln(os.Stderr, "integration: setup failed:", err)
		return 1
	}
	// Ctrl-C or SIGTERM (make, CI) must not leave containers behind:
	// kill them, then die. A test binary killed by -timeout cannot clean
	// up; the next run's ReapStale does.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	var sigWG sync.WaitGroup
	sigWG.Add(1)
	go func() {
		defer sigWG.Done()
		select {
		case s := <-sigs:
			fmt.Fprintf(os.Stderr, "integration: %v: removing containers\n", s)
			the.closeAll()
			os.Exit(1)
		case <-done:
		}
	}()
	code := m.Run()
	close(done)
	sigWG.Wait()
	signal.Stop(sigs)
	the.closeAll()
	the.printTable(os.Stdout, time.Since(start))
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return code
}

func (s *suite) prepare(tmp string) error {
	if os.Geteuid() != 0 {
		s.skip = "needs root (systemd-nspawn, mounts)"
		return nil
	}
	for _, tool := range []string{"systemd-nspawn", "nsenter", "systemd-analyze"} {
		if _, err := exec.LookPath(tool); err != nil {
			// rootfs.sh installs systemd-container when missing.
			if tool != "systemd-nspawn" {
				return fmt.Errorf("%s not found: %w", tool, err)
			}
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	s.repo = filepath.Dir(wd)
	if n, err := nspawn.ReapStale(nspawn.DefaultWorkDir, nil); err != nil {
		return fmt.Errorf("reap stale machines: %w", err)
	} else if n > 0 {
		fmt.Fprintf(os.Stderr, "integration: removed %d stale machine(s)\n", n)
	}

	if img := os.Getenv(envImage); img != "" {
		s.images[bookworm] = img
	}
	if _, err := s.image(bookworm); err != nil {
		return err
	}

	build := func(out string, tags string, pkg string) error {
		args := []string{"build", "-trimpath", "-o", out}
		if tags != "" {
			args = append(args, "-tags", tags)
		}
		cmd := exec.Command("go", append(args, pkg)...)
		cmd.Dir = s.repo
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s %s: %w\n%s", tags, pkg, err, b)
		}
		return nil
	}
	s.loadgen = filepath.Join(tmp, "loadgen")
	if err := build(s.loadgen, "", "./integration/cmd/loadgen"); err != nil {
		return err
	}
	s.handoff = os.Getenv(envBinary)
	if s.handoff == "" {
		s.handoff = filepath.Join(tmp, "handoff")
		if err := build(s.handoff, "", "./cmd/handoff"); err != nil {
			return err
		}
	}
	s.hang = os.Getenv(envHangBinary)
	if s.hang == "" && os.Getenv(envBinary) == "" {
		s.hang = filepath.Join(tmp, "handoff-debughang")
		if err := build(s.hang, "debughang", "./cmd/handoff"); err != nil {
			fmt.Fprintln(os.Stderr, "integration: no debughang build, the watchdog scenario will skip:", err)
			s.hang = ""
		}
	}
	s.features, err = binaryFeatures(s.handoff)
	if err != nil {
		return err
	}
	if s.hang != "" {
		if s.hangFeats, err = binaryFeatures(s.hang); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "integration: features %q, debughang build %q\n", s.features, s.hangFeats)
	return nil
}

// image returns the cached root tree for a Debian suite, building it
// with rootfs.sh on first use (about 70s; cached across runs).
func (s *suite) image(suite string) (string, error) {
	s.imageMu.Lock()
	defer s.imageMu.Unlock()
	if img, ok := s.images[suite]; ok {
		return img, nil
	}
	t0 := time.Now()
	out, err := exec.Command(filepath.Join(s.repo, "integration", "rootfs.sh"), suite).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("rootfs.sh %s: %w: %s", suite, err, ee.Stderr)
		}
		return "", fmt.Errorf("rootfs.sh %s: %w", suite, err)
	}
	img := strings.TrimSpace(string(out))
	fmt.Fprintf(os.Stderr, "integration: %s image %s (%.1fs)\n", suite, img, time.Since(t0).Seconds())
	s.images[suite] = img
	return img, nil
}

func binaryFeatures(bin string) ([]string, error) {
	if v, ok := os.LookupEnv(envFeatures); ok {
		return parseFeatures("features: " + v), nil
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s version: %w: %s", bin, err, out)
	}
	return parseFeatures(string(out)), nil
}

func (s *suite) addRow(r row) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rows = append(s.rows, r)
}

func (s *suite) closeAll() {
	s.mu.Lock()
	ms := make([]*nspawn.Machine, 0, len(s.machines))
	for m := range s.machines {
		ms = append(ms, m)
	}
	s.mu.Unlock()
	for _, m := range ms {
		m.Close()
	}
}

func (s *suite) printTable(w *os.File, total time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.rows) == 0 {
		fmt.Fprintf(w, "\nintegration: no scenario ran (%.0fs)\n", total.Seconds())
		return
	}
	fmt.Fprintf(w, "\n== integration scenarios (total %.0fs) ==\n", total.Seconds())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tsent\tok\tfailed\treset\trefused\tskipped\tsecs\t\tnote")
	for _, r := range s.rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%.1f\t\t%s\n", r.Scenario, r.Sent, r.OK, r.Failed, r.Reset, r.Refused, r.Skipped, r.Seconds, r.Note)
	}
	tw.Flush()
	if p := os.Getenv(envReport); p != "" {
		b, _ := json.MarshalIndent(map[string]any{"total_seconds": total.Seconds(), "scenarios": s.rows}, "", "  ")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "integration: write report:", err)
		}
	}
}

// box is one booted container with handoff installed.
type box struct {
	t     *testing.T
	ctx   context.Context
	m     *nspawn.Machine
	log   *slog.Logger
	suite string
}

// boxOptions configures newBox.
type boxOptions struct {
	// Binary to install as /usr/bin/handoff. Empty means the suite's.
	Binary string
	// Features the scenario needs; it skips when the binary lacks one.
	Features []string
	// Suite is the Debian release to boot. Empty means bookworm.
	Suite string
	// NoInstall boots without handoff: only the load generator is
	// copied in (the package test installs the .deb itself).
	NoInstall bool
}

// newBox skips when the suite cannot run or the binary lacks a feature,
// then boots a fresh container, installs handoff as a package would
// (binary, units, sysusers.d, daemon-reload) and registers the cleanup,
// which dumps the journal when the test failed. ctx ends with the test.
func newBox(t *testing.T, opts boxOptions) *box {
	t.Helper()
	if the.skip != "" {
		t.Skip(the.skip)
	}
	bin := opts.Binary
	if bin == "" {
		bin = the.handoff
	}
	have := the.features
	if bin == the.hang {
		have = the.hangFeats
	}
	for _, f := range opts.Features {
		if !slices.Contains(have, f) {
			t.Skipf("%s does not announce feature %q in `handoff version` (has %q)", filepath.Base(bin), f, have)
		}
	}
	deadline, ok := t.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Minute)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline.Add(-5*time.Second))
	t.Cleanup(cancel)
	log := slog.New(slog.NewTextHandler(handofftest.Writer(t), nil))
	suite := opts.Suite
	if suite == "" {
		suite = bookworm
	}
	img, err := the.image(suite)
	if err != nil {
		t.Fatal(err)
	}
	m, err := nspawn.Boot(ctx, nspawn.Options{Image: img, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	the.mu.Lock()
	the.machines[m] = struct{}{}
	the.mu.Unlock()
	b := &box{t: t, ctx: ctx, m: m, log: log, suite: suite}
	t.Cleanup(func() {
		if t.Failed() {
			b.dumpJournal()
		}
		if err := m.Close(); err != nil {
			t.Errorf("remove container: %v", err)
		}
		the.mu.Lock()
		delete(the.machines, m)
		the.mu.Unlock()
	})
	if opts.NoInstall {
		must(t, m.CopyFile(the.loadgen, loadgenPath, 0o755))
		return b
	}
	b.install(bin)
	return b
}

func (b *box) install(bin string) {
	b.t.Helper()
	must(b.t, b.m.CopyFile(bin, binPath, 0o755))
	must(b.t, b.m.CopyFile(the.loadgen, loadgenPath, 0o755))
	units, err := filepath.Glob(filepath.Join(the.repo, "systemd", "*.*"))
	must(b.t, err)
	for _, u := range units {
		switch filepath.Ext(u) {
		case ".service", ".socket", ".target":
			must(b.t, b.m.CopyFile(u, filepath.Join(unitDir, filepath.Base(u)), 0o644))
		}
	}
	must(b.t, b.m.CopyFile(filepath.Join(the.repo, "systemd", "sysusers.d", "handoff.conf"), sysusersPath, 0o644))
	if b.suite != bookworm {
		// systemd >= 254: the package adds the drop-in to both services.
		for _, svc := range []string{"handoff.service.d", "handoff@.service.d"} {
			must(b.t, b.m.CopyFile(filepath.Join(the.repo, "systemd", "systemd-254", dropIn254),
				filepath.Join(unitDir, svc, dropIn254), 0o644))
		}
	}
	b.run("systemd-sysusers")
	b.run("systemctl", "daemon-reload")
}

// run runs a command in the container and fails the test on error.
func (b *box) run(name string, args ...string) string {
	b.t.Helper()
	out, err := b.m.Run(b.ctx, name, args...)
	if err != nil {
		b.t.Fatal(err)
	}
	return out
}

// try runs a command in the container and returns its output and error.
func (b *box) try(name string, args ...string) (string, error) {
	return b.m.Run(b.ctx, name, args...)
}

func (b *box) show(unit string, props ...string) map[string]string {
	b.t.Helper()
	p, err := b.m.Show(b.ctx, unit, props...)
	if err != nil {
		b.t.Fatal(err)
	}
	return p
}

// eventually polls cond every 100ms until it reports true or timeout
// passes; the last message explains the failure. Polling is the only way
// to observe an external systemd.
func (b *box) eventually(timeout time.Duration, what string, cond func() (bool, string)) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	var msg string
	for {
		var ok bool
		ok, msg = cond()
		if ok {
			return
		}
		if time.Now().After(deadline) || b.ctx.Err() != nil {
			b.t.Fatalf("%s: not within %v: %s", what, timeout, msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitActive waits until unit is active/running with a main pid other than
// notPID ("" accepts any), and returns the main pid.
func (b *box) waitActive(unit string, notPID string, timeout time.Duration) string {
	b.t.Helper()
	var pid string
	b.eventually(timeout, unit+" active", func() (bool, string) {
		p, err := b.m.Show(b.ctx, unit, "ActiveState", "SubState", "MainPID")
		if err != nil {
			return false, err.Error()
		}
		pid = p["MainPID"]
		return p["ActiveState"] == "active" && p["SubState"] == "running" && pid != "0" && pid != notPID, fmt.Sprint(p)
	})
	return pid
}

func (b *box) writeFile(path string, data []byte, perm os.FileMode) {
	b.t.Helper()
	must(b.t, b.m.WriteFile(path, data, perm))
}

func (b *box) writeConfig(c cfg) {
	b.t.Helper()
	b.writeFile(configPath, []byte(c.yaml()), 0o644)
}

// startBackend runs `loadgen serve` (with serveArgs) as a transient unit
// and waits until it answers.
func (b *box) startBackend(name string, port int, serveArgs ...string) string {
	b.t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	b.run("systemd-run", append([]string{"--unit=backend-" + name, "--property=Restart=always",
		loadgenPath, "serve", "-listen", addr, "-name", name}, serveArgs...)...)
	b.eventually(10*time.Second, "backend "+name, func() (bool, string) {
		r := b.probe("http://" + addr + "/")
		return r.OK && r.Backend == name, fmt.Sprintf("%+v", r)
	})
	return addr
}

// probe sends one request from inside the container's network namespace.
func (b *box) probe(url string, extra ...string) loadgen.ProbeResult {
	b.t.Helper()
	args := append([]string{"probe", "-url", url, "-timeout", "10s"}, extra...)
	out, err := b.m.NetCommand(b.ctx, the.loadgen, args...).Output()
	if err != nil {
		b.t.Fatalf("loadgen probe %s: %v", url, err)
	}
	var r loadgen.ProbeResult
	if err := json.Unmarshal(out, &r); err != nil {
		b.t.Fatalf("loadgen probe output %q: %v", out, err)
	}
	return r
}

// holdWebSocket opens a WebSocket from inside the container for hold and
// returns a function that waits for the result.
func (b *box) holdWebSocket(url string, hold time.Duration) func() loadgen.WSResult {
	b.t.Helper()
	cmd := b.m.NetCommand(b.ctx, the.loadgen, "ws", "-url", url, "-hold", hold.String(), "-interval", "250ms")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = handofftest.Writer(b.t)
	must(b.t, cmd.Start())
	return func() loadgen.WSResult {
		b.t.Helper()
		if err := cmd.Wait(); err != nil {
			b.t.Fatalf("loadgen ws: %v", err)
		}
		var r loadgen.WSResult
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			b.t.Fatalf("loadgen ws output %q: %v", out.Bytes(), err)
		}
		return r
	}
}

// load is a running load generator.
type load struct {
	b    *box
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan error
	name string
}

// loadOptions configures startLoad.
type loadOptions struct {
	// URL to load. Empty means http://127.0.0.1/.
	URL string
	// Rate per second. Zero means 400.
	Rate int
	// KeepAlive fraction. Zero means 0.5; negative means 0.
	KeepAlive float64
}

// startLoad starts the load generator inside the container's network
// namespace; stop ends it and records the scenario's row.
func (b *box) startLoad(scenario string, o loadOptions) *load {
	b.t.Helper()
	if o.URL == "" {
		o.URL = "http://127.0.0.1/"
	}
	if o.Rate == 0 {
		o.Rate = 400
	}
	switch {
	case o.KeepAlive == 0:
		o.KeepAlive = 0.5
	case o.KeepAlive < 0:
		o.KeepAlive = 0
	}
	l := &load{b: b, done: make(chan error, 1), name: scenario}
	// stop ends it with SIGTERM; -duration only caps a run whose test
	// never got there.
	l.cmd = b.m.NetCommand(b.ctx, the.loadgen, "run", "-url", o.URL, "-duration", "10m",
		"-rate", fmt.Sprint(o.Rate), "-keepalive", fmt.Sprint(o.KeepAlive), "-timeout", "10s")
	l.cmd.Stdout = &l.out
	l.cmd.Stderr = handofftest.Writer(b.t)
	l.cmd.Cancel = func() error { return l.cmd.Process.Signal(syscall.SIGTERM) }
	l.cmd.WaitDelay = 30 * time.Second
	must(b.t, l.cmd.Start())
	go func() { l.done <- l.cmd.Wait() }()
	b.t.Cleanup(func() {
		if l.cmd.ProcessState == nil {
			l.cmd.Process.Kill()
			<-l.done
		}
	})
	return l
}

// stop ends the load (SIGTERM: loadgen waits for requests in flight),
// records a table row and returns the result.
func (l *load) stop(note string) loadgen.Result {
	l.b.t.Helper()
	if err := l.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		l.b.t.Fatalf("stop loadgen: %v", err)
	}
	if err := <-l.done; err != nil {
		l.b.t.Fatalf("loadgen: %v", err)
	}
	var r loadgen.Result
	if err := json.Unmarshal(l.out.Bytes(), &r); err != nil {
		l.b.t.Fatalf("loadgen output %q: %v", l.out.Bytes(), err)
	}
	l.b.t.Logf("load %s: sent %d ok %d failed %d reset %d refused %d skipped %d outcomes %v backends %v p50 %.1fms p99 %.1fms max %.1fms samples %q",
		l.name, r.Sent, r.OK, r.Failed, r.Reset, r.Refused, r.Skipped, r.Outcomes, r.Backends, r.P50ms, r.P99ms, r.MaxMs, r.Samples)
	the.addRow(row{Scenario: l.name, Sent: r.Sent, OK: r.OK, Failed: r.Failed, Reset: r.Reset, Refused: r.Refused, Skipped: r.Skipped, Seconds: r.Seconds, Note: note})
	return r
}

// expectClean fails the test unless every request succeeded.
func expectClean(t *testing.T, r loadgen.Result, minSent int64) {
	t.Helper()
	if r.Sent < minSent {
		t.Errorf("only %d requests sent, want at least %d", r.Sent, minSent)
	}
	if r.Failed != 0 || r.Reset != 0 || r.Refused != 0 || r.Skipped != 0 {
		t.Errorf("failed %d reset %d refused %d skipped %d, want all 0; outcomes %v; samples %q",
			r.Failed, r.Reset, r.Refused, r.Skipped, r.Outcomes, r.Samples)
	}
}

func (b *box) dumpJournal() {
	out, _ := b.m.Run(context.Background(), "journalctl", "--no-pager", "-o", "short-monotonic", "-n", "300",
		"-u", "handoff*", "-u", "backend-*", "-u", "init.scope")
	b.t.Logf("journal:\n%s", out)
	out, _ = b.m.Run(context.Background(), "systemctl", "status", "--no-pager", "-l", "handoff*")
	b.t.Logf("status:\n%s", out)
}

// installCert writes a self-signed certificate for localhost and
// 127.0.0.1, readable by the handoff group.
func (b *box) installCert() (cert, key string) {
	b.t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(b.t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	must(b.t, err)
	kb, err := x509.MarshalPKCS8PrivateKey(priv)
	must(b.t, err)
	cert, key = tlsDir+"/cert.pem", tlsDir+"/key.pem"
	b.writeFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	b.writeFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o640)
	b.run("chgrp", "handoff", key)
	return cert, key
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
