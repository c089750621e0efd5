package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
	"golang.org/x/sys/unix"

	"github.com/handoff-proxy/handoff/pkg/activation"
	"github.com/handoff-proxy/handoff/pkg/handofftest"
)

// h3Clients returns an HTTP/3 client and an HTTPS (TCP) client trusting
// ca.
func h3Clients(t *testing.T, ca *handofftest.CA) (h3, tcp *http.Client) {
	t.Helper()
	tlsConf := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}
	tr := &http3.Transport{TLSClientConfig: tlsConf.Clone()}
	t.Cleanup(func() { tr.Close() })
	ttr := &http.Transport{TLSClientConfig: tlsConf.Clone()}
	t.Cleanup(ttr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, &http.Client{Transport: ttr, Timeout: 10 * time.Second}
}

// h3File writes a config with an https listener serving HTTP/3 (address
// addr; empty means passed by systemd) in front of upstream.
func h3File(t *testing.T, ca *handofftest.CA, addr, upstream, extra string) string {
	t.Helper()
	dir := t.TempDir()
	leaf := ca.Issue(t, dir, "h3", "127.0.0.1")
	file := filepath.Join(dir, "h.yaml")
	a := ""
	if addr != "" {
		a = fmt.Sprintf("address: %q,", addr)
	}
	writeFile(t, file, fmt.Sprintf(`
listeners:
  - {name: https, %s protocol: https, http3: true, tls: {certificates: [{cert: %q, key: %q}]}}
upstreams: {web: {targets: [{address: %q}]}}
routes: [{match: {}, upstream: web}]
log: {access: false}
%s
`, a, leaf.CertPath, leaf.KeyPath, upstream, extra))
	return file
}

// TestHTTP3SocketActivation passes the TCP socket ("https") and the UDP
// socket ("https-quic") by name, as two socket units with
// FileDescriptorName= would (ListenStream= and ListenDatagram=):
// systemd-socket-activate takes one socket type per call, so two calls are
// chained; the inner one passes the outer one's fd on and names both.
func TestHTTP3SocketActivation(t *testing.T) {
	if _, err := exec.LookPath("systemd-socket-activate"); err != nil {
		t.Skip("systemd-socket-activate not installed (make deps)")
	}
	ca := handofftest.NewCA(t)
	b := backend(t, "activated")
	file := h3File(t, ca, "", hostPort(b), `admin: {listen: "off"}`)
	addr := freeAddr(t)
	cmd := exec.Command("systemd-socket-activate", "-l", addr, "--fdname=https",
		"systemd-socket-activate", "--datagram", "-l", addr, "--fdname=https:https-quic",
		binary, "-c", file, "--log-format", "json")
	p := startCmd(t, cmd)
	// The first TCP connection makes both activators exec.
	waitDial(t, addr)
	select {
	case <-p.ready:
	case <-time.After(15 * time.Second):
		t.Fatalf("not serving\n%s", p.output())
	}
	if out := p.output(); !strings.Contains(out, "using passed datagram socket") || strings.Contains(out, "bound datagram socket") {
		t.Fatalf("the UDP socket was not the passed one:\n%s", out)
	}
	h3, tcp := h3Clients(t, ca)
	resp, err := h3.Get("https://" + addr + "/")
	if err != nil {
		t.Fatalf("HTTP/3 via the passed UDP socket: %v\n%s", err, p.output())
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 3 || string(body) != "activated" {
		t.Fatalf("HTTP/3: %d %s %q", resp.StatusCode, resp.Proto, body)
	}
	_, port, _ := strings.Cut(addr, ":")
	if code, _, h := get(t, tcp, "https://"+addr+"/"); code != 200 || h.Get("Alt-Svc") != `h3=":`+port+`"; ma=86400` {
		t.Fatalf("HTTPS: %d, Alt-Svc %q", code, h.Get("Alt-Svc"))
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(10 * time.Second); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// TestHTTP3Upgrade upgrades (SIGUSR2) while clients send HTTP/3
// requests: the new process takes over the UDP socket with the TCP one,
// the old one sends GOAWAY and exits once its requests are answered, and
// no request fails.
func TestHTTP3Upgrade(t *testing.T) {
	ca := handofftest.NewCA(t)
	b := backend(t, "one")
	file := h3File(t, ca, "127.0.0.1:0", hostPort(b), fmt.Sprintf(`admin: {listen: %q}`, freeAddr(t)))
	p := start(t, []string{"-c", file, "--log-format", "json"})
	addrs := <-readyAgain(p)
	if addrs["https-quic"] != addrs["https"] {
		t.Fatalf("UDP on %q, TCP on %q: want the same address", addrs["https-quic"], addrs["https"])
	}
	url := "https://" + addrs["https"] + "/"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var load loadCount
	var wg sync.WaitGroup
	for range 3 {
		h3, _ := h3Clients(t, ca)
		wg.Go(func() { load.getUntil(ctx, h3, url) })
	}
	time.Sleep(300 * time.Millisecond)
	p.signal(syscall.SIGUSR2)
	if code := p.wait(20 * time.Second); code != 0 {
		t.Errorf("old process exit code %d", code)
	}
	before := load.sent.Load()
	time.Sleep(500 * time.Millisecond) // load against the new process alone
	cancel()
	wg.Wait()
	t.Logf("sent %d HTTP/3 requests across an upgrade (%d after the old process exited), failed %d",
		load.sent.Load(), load.sent.Load()-before, load.failed.Load())
	if load.failed.Load() != 0 || load.sent.Load()-before < 10 {
		t.Errorf("sent %d (%d after), failed %d (first error: %v)", load.sent.Load(), load.sent.Load()-before, load.failed.Load(), load.firstErr.Load())
	}
	killNewProcess(t, p)
}

// killNewProcess ends the process that took over from p on upgrade, found
// by the pid p logged when it handed over.
func killNewProcess(t *testing.T, p *proc) {
	t.Helper()
	const marker = `"msg":"upgrade: new process is serving, draining","pid":`
	out := p.output()
	i := strings.Index(out, marker)
	if i < 0 {
		return
	}
	var pid int
	fmt.Sscanf(out[i+len(marker):], "%d", &pid)
	if pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
}

// TestHTTP3FDStore checks that a UDP socket handoff bound itself goes to
// the fd store (FDSTORE=1, FDNAME=https-quic) with the TCP one, and that a
// process given both back, as systemd does on the next start, serves
// HTTP/3 on the stored socket without binding another.
func TestHTTP3FDStore(t *testing.T) {
	ca := handofftest.NewCA(t)
	b := backend(t, "stored")
	file := h3File(t, ca, "127.0.0.1:0", hostPort(b), `admin: {listen: "off"}`)
	sock, stored := fdStoreSocket(t)
	p := start(t, []string{"-c", file, "--log-format", "json"}, "NOTIFY_SOCKET="+sock)
	addr := (<-readyAgain(p))["https"]
	files := map[string]*os.File{}
	deadline := time.After(10 * time.Second)
	for len(files) < 2 {
		select {
		case nf := <-stored:
			files[nf.Name] = nf.File
			t.Cleanup(func() { nf.File.Close() })
		case <-deadline:
			t.Fatalf("fd store got %v, want https and https-quic\n%s", files, p.output())
		}
	}
	if typ := sockType(t, files["https-quic"]); typ != syscall.SOCK_DGRAM {
		t.Fatalf("stored https-quic is socket type %d, want SOCK_DGRAM", typ)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	// The next start, with the stored fds (HANDOFF_LISTEN_PPID stands in
	// for LISTEN_PID, as on upgrade: the child's pid is not known yet).
	env, err := activation.ChildEnviron(nil, os.Getpid(), []activation.NamedFile{
		{Name: "https", File: files["https"]}, {Name: "https-quic", File: files["https-quic"]},
	})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "-c", file, "--log-format", "json")
	cmd.ExtraFiles = []*os.File{files["https"], files["https-quic"]}
	p2 := startCmd(t, cmd, env...)
	select {
	case <-p2.ready:
	case <-time.After(15 * time.Second):
		t.Fatalf("not serving\n%s", p2.output())
	}
	if out := p2.output(); !strings.Contains(out, "using passed datagram socket") || strings.Contains(out, "bound datagram socket") {
		t.Fatalf("the stored UDP socket was not used:\n%s", out)
	}
	h3, _ := h3Clients(t, ca)
	resp, err := h3.Get("https://" + addr + "/")
	if err != nil {
		t.Fatalf("HTTP/3 on the stored socket: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "stored" {
		t.Fatalf("HTTP/3: %d %q", resp.StatusCode, body)
	}
	p2.signal(syscall.SIGTERM)
	p2.wait(10 * time.Second)
}

// fdStoreSocket is a NOTIFY_SOCKET that delivers the fds of FDSTORE=1
// messages with their FDNAME=.
func fdStoreSocket(t *testing.T) (string, <-chan activation.NamedFile) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan activation.NamedFile, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf, oob := make([]byte, 4096), make([]byte, 1024)
		for {
			n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
			if err != nil {
				return
			}
			msg := string(buf[:n])
			name := ""
			for l := range strings.SplitSeq(msg, "\n") {
				if v, ok := strings.CutPrefix(l, "FDNAME="); ok {
					name = v
				}
			}
			cmsgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
			for _, c := range cmsgs {
				fds, _ := unix.ParseUnixRights(&c)
				for _, fd := range fds {
					f := os.NewFile(uintptr(fd), name)
					select {
					case ch <- activation.NamedFile{Name: name, File: f}:
					default:
						f.Close()
					}
				}
			}
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return path, ch
}

func sockType(t *testing.T, f *os.File) int {
	t.Helper()
	typ, err := unix.GetsockoptInt(int(f.Fd()), unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		t.Fatal(err)
	}
	return typ
}
