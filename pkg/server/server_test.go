package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/handoff-proxy/handoff/pkg/acme/acmetest"
	"github.com/handoff-proxy/handoff/pkg/config"

	"github.com/handoff-proxy/handoff/pkg/handofftest"
)

// acme_test.go: certmagic keeps a few process-wide goroutines.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, acmetest.IgnoreGoroutines()...) }

// echoBackend answers with its name and what protocol and headers it saw.
func echoBackend(t *testing.T, name string) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		w.Header().Set("X-Saw-Upgrade", r.Header.Get("Upgrade"))
		w.Header().Set("X-Saw-HTTP2-Settings", r.Header.Get("HTTP2-Settings"))
		io.WriteString(w, name)
	}))
	t.Cleanup(s.Close)
	return s
}

type running struct {
	srv    *Server
	addrs  map[string]string
	cancel context.CancelFunc
	done   chan error
}

// serve starts a Server for cfg on port-0 listeners and stops it at the
// end of the test.
func serve(t testing.TB, cfg *config.Config, load func() (*config.Config, error), with ...func(*Options)) *running {
	t.Helper()
	lns := map[string]net.Listener{}
	addrs := map[string]string{}
	for _, l := range cfg.Listeners {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[l.Name] = ln
		addrs[l.Name] = ln.Addr().String()
	}
	opts := Options{Config: cfg, Load: load, Listeners: lns, Logger: handofftest.Logger(t)}
	for _, f := range with {
		f(&opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{srv: srv, addrs: addrs, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-r.done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return r
}

func baseConfig(listeners []config.Listener, targets ...string) *config.Config {
	cfg := config.Default()
	cfg.Listeners = listeners
	up := config.Upstream{Strategy: config.StrategyRoundRobin}
	for _, a := range targets {
		up.Targets = append(up.Targets, config.Target{Address: a, Weight: 1})
	}
	cfg.Upstreams = map[string]config.Upstream{"web": up}
	cfg.Routes = []config.Route{{Name: "default", Upstream: "web"}}
	off := false
	cfg.Log.Access = &off
	return cfg
}

func hostOf(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

func TestH2CPriorKnowledgeFromClients(t *testing.T) {
	b := echoBackend(t, "b")
	r := serve(t, baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, hostOf(b)), nil)
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://" + r.addrs["http"] + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.ProtoMajor != 2 || string(body) != "b" {
		t.Errorf("got %s %q, want HTTP/2 from b", resp.Proto, body)
	}
}

// TestUpgradeH2CNeverForwarded pins the h2c smuggling defence: an
// HTTP/1.1 "Upgrade: h2c" is served as a plain request and the upgrade
// headers never reach the backend.
func TestUpgradeH2CNeverForwarded(t *testing.T) {
	b := echoBackend(t, "b")
	r := serve(t, baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, hostOf(b)), nil)
	conn, err := net.Dial("tcp", r.addrs["http"])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d, want 200 (no 101)", resp.StatusCode)
	}
	if up, hs := resp.Header.Get("X-Saw-Upgrade"), resp.Header.Get("X-Saw-HTTP2-Settings"); up != "" || hs != "" {
		t.Errorf("backend saw Upgrade=%q HTTP2-Settings=%q", up, hs)
	}
}

func TestTLSListenerSNIAndH2(t *testing.T) {
	dir := t.TempDir()
	ca := handofftest.NewCA(t)
	leafA := ca.Issue(t, dir, "a", "a.example.com")
	certA, keyA := leafA.CertPath, leafA.KeyPath
	leafB := ca.Issue(t, dir, "b", "*.b.example.com")
	certB, keyB := leafB.CertPath, leafB.KeyPath
	b := echoBackend(t, "b")
	cfg := baseConfig([]config.Listener{{
		Name: "https", Protocol: config.ProtocolHTTPS,
		TLS: &config.ListenerTLS{Certificates: []config.Certificate{{Cert: certA, Key: keyA}, {Cert: certB, Key: keyB}}},
	}}, hostOf(b))
	r := serve(t, cfg, nil)
	tests := []struct {
		name, sni, wantCN string
	}{
		{"exact", "a.example.com", "a.example.com"},
		{"wildcard", "x.b.example.com", "*.b.example.com"},
		{"default when no match", "other.example.org", "a.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: tt.sni, RootCAs: ca.Pool(), InsecureSkipVerify: tt.name == "default when no match"}, ForceAttemptHTTP2: true}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr}).Get("https://" + r.addrs["https"] + "/")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			io.Copy(io.Discard, resp.Body)
			if resp.ProtoMajor != 2 {
				t.Errorf("proto %s, want HTTP/2 via ALPN", resp.Proto)
			}
			if cn := resp.TLS.PeerCertificates[0].Subject.CommonName; cn != tt.wantCN {
				t.Errorf("served certificate %q, want %q", cn, tt.wantCN)
			}
		})
	}
}

func TestReloadSwapsAndFailedReloadKeepsOld(t *testing.T) {
	b1, b2 := echoBackend(t, "one"), echoBackend(t, "two")
	listeners := []config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}
	var mu sync.Mutex
	next := baseConfig(listeners, hostOf(b2))
	var nextErr error
	load := func() (*config.Config, error) {
		mu.Lock()
		defer mu.Unlock()
		return next, nextErr
	}
	r := serve(t, baseConfig(listeners, hostOf(b1)), load)
	url := "http://" + r.addrs["http"] + "/"
	body := func() string {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := body(); got != "one" {
		t.Fatalf("before reload: %q", got)
	}
	res, err := r.srv.Reload(context.Background())
	if err != nil || res.Error != "" {
		t.Fatalf("reload: %v %+v", err, res)
	}
	if got := body(); got != "two" {
		t.Fatalf("after reload: %q", got)
	}
	mu.Lock()
	nextErr = fmt.Errorf("handoff.yaml: routes[0].upstream: no such upstream")
	mu.Unlock()
	res, err = r.srv.Reload(context.Background())
	if err != nil || !strings.Contains(res.Error, "no such upstream") {
		t.Fatalf("failed reload: %v %+v", err, res)
	}
	if got := body(); got != "two" {
		t.Fatalf("after failed reload: %q", got)
	}
	if last, ok := r.srv.LastReload(); !ok || last.Generation != 2 {
		t.Errorf("LastReload = %+v", last)
	}
}

// TestWedgedMainLoopIsUnhealthy is the regression test for execCh never
// being made: the debughang endpoint then blocked on a nil channel instead
// of wedging the main loop, Healthy kept passing and systemd's watchdog
// never fired. Work sent on execCh must run on the main loop, and Healthy
// must fail while it blocks and pass again afterwards.
func TestWedgedMainLoopIsUnhealthy(t *testing.T) {
	b := echoBackend(t, "one")
	r := serve(t, baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, hostOf(b)), nil)
	healthy := func(d time.Duration) bool {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		return r.srv.Healthy(ctx)
	}
	if !healthy(5 * time.Second) {
		t.Fatal("not healthy before the wedge")
	}
	release := make(chan struct{})
	select {
	case r.srv.execCh <- func() { <-release }:
	case <-time.After(5 * time.Second):
		t.Fatal("the main loop does not take work from execCh")
	}
	if healthy(200 * time.Millisecond) {
		t.Error("healthy while the main loop is wedged")
	}
	close(release)
	if !healthy(5 * time.Second) {
		t.Error("not healthy after the wedge ended")
	}
}

// TestUpgradeState: GET /api/v1/upgrade tells `handoff reload` whether the
// running binary was replaced on disk.
func TestUpgradeState(t *testing.T) {
	tests := []struct {
		name     string
		upgrade  bool
		replaced func() (bool, error)
		want     UpgradeState
	}{
		{name: "no upgrade support", want: UpgradeState{}},
		{name: "binary unchanged", upgrade: true, replaced: func() (bool, error) { return false, nil }, want: UpgradeState{Supported: true}},
		{name: "binary replaced", upgrade: true, replaced: func() (bool, error) { return true, nil }, want: UpgradeState{Supported: true, BinaryReplaced: true}},
		{name: "cannot tell", upgrade: true, replaced: func() (bool, error) { return false, os.ErrPermission }, want: UpgradeState{Supported: true, Error: os.ErrPermission.Error()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := Options{Config: baseConfig(nil, "127.0.0.1:1"), Logger: handofftest.Logger(t), BinaryReplaced: tt.replaced}
			if tt.upgrade {
				opts.Upgrade = func(context.Context) (int, error) { return 0, errors.New("not in this test") }
			}
			srv, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			srv.adminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/upgrade", nil))
			var got UpgradeState
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != http.StatusOK {
				t.Fatalf("GET /api/v1/upgrade: %d %q: %v", rec.Code, rec.Body.String(), err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			srv.tports.Close()
		})
	}
}

// recNotifier records sd_notify datagrams.
type recNotifier struct {
	mu   sync.Mutex
	msgs []string
}

func (n *recNotifier) Send(lines ...string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.msgs = append(n.msgs, strings.Join(lines, "\n"))
	return nil
}

func (n *recNotifier) Reloading() error { return n.Send("RELOADING=1") }

func (n *recNotifier) take() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	m := n.msgs
	n.msgs = nil
	return m
}

// TestReloadOrUpgrade: SIGHUP (Type=notify-reload's `systemctl reload`)
// upgrades when the binary was replaced, framed as a reload for systemd:
// RELOADING=1, then READY=1 from the new process on success or from this
// one on failure; otherwise it reloads the config.
func TestReloadOrUpgrade(t *testing.T) {
	tests := []struct {
		name       string
		replaced   bool
		upgradeErr error
		wantPID    int
		wantErr    bool
		// wantMsgs are prefixes of the datagrams sent, in order.
		wantMsgs []string
		handOver bool
	}{
		{name: "binary unchanged reloads", wantMsgs: []string{"RELOADING=1", "READY=1\nSTATUS=reloaded"}},
		{name: "binary replaced upgrades", replaced: true, wantPID: 4242, wantMsgs: []string{"RELOADING=1"}, handOver: true},
		{name: "failed upgrade still ends the reload", replaced: true, upgradeErr: errors.New("exec format error"), wantErr: true,
			wantMsgs: []string{"RELOADING=1", "READY=1\nSTATUS=upgrade failed, old process serving: exec format error"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := echoBackend(t, "one")
			cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, hostOf(b))
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			n := &recNotifier{}
			srv, err := New(Options{
				Config:         cfg,
				Load:           func() (*config.Config, error) { return cfg, nil },
				Listeners:      map[string]net.Listener{"http": ln},
				Notifier:       n,
				Logger:         handofftest.Logger(t),
				Upgrade:        func(context.Context) (int, error) { return tt.wantPID, tt.upgradeErr },
				BinaryReplaced: func() (bool, error) { return tt.replaced, nil },
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- srv.Run(ctx) }()
			// Wait for the first READY=1 of Run.
			deadline := time.Now().Add(5 * time.Second)
			for len(n.take()) == 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			pid, err := srv.ReloadOrUpgrade(context.Background())
			if pid != tt.wantPID || (err != nil) != tt.wantErr {
				t.Errorf("ReloadOrUpgrade = %d, %v; want pid %d, error %v", pid, err, tt.wantPID, tt.wantErr)
			}
			if tt.handOver {
				select {
				case err := <-done:
					if err != nil {
						t.Errorf("Run after the hand-over: %v", err)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("Run did not return after the hand-over")
				}
			} else {
				cancel()
				<-done
			}
			msgs := n.take()
			if !tt.handOver {
				if len(msgs) == 0 || !strings.HasPrefix(msgs[len(msgs)-1], "STOPPING=1") {
					t.Fatalf("sent %q, want STOPPING=1 last after cancel", msgs)
				}
				msgs = msgs[:len(msgs)-1]
			}
			if len(msgs) != len(tt.wantMsgs) {
				t.Fatalf("sent %q, want %q", msgs, tt.wantMsgs)
			}
			for i, m := range msgs {
				if !strings.HasPrefix(m, tt.wantMsgs[i]) {
					t.Errorf("datagram %d = %q, want prefix %q", i, m, tt.wantMsgs[i])
				}
				if strings.Contains(m, "STOPPING=1") {
					t.Errorf("datagram %d = %q: STOPPING=1 after a hand-over stops the service", i, m)
				}
			}
		})
	}
}

// runServer runs srv until the test ends, and reports an error Run
// returns then.
func runServer(t *testing.T, srv *Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}
