//go:build integration

package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Scenario 9: HTTP/3 on a UDP socket from systemd. handoff-https-quic.socket
// (ListenDatagram=443, FileDescriptorName=https-quic) starts handoff on the
// first QUIC datagram; handoff serves HTTP/3 on that socket and never
// binds UDP itself; reload and restart keep answering HTTP/3.
func TestHTTP3Activation(t *testing.T) {
	b := newBox(t, boxOptions{})
	backend := b.startBackend("a", 8081)
	cert, key := b.installCert()
	b.writeConfig(cfg{Target: backend, HTTPSCert: cert, HTTPSKey: key, HTTP3: true})
	sockets := []string{"handoff.socket", "handoff-https.socket", "handoff-https-quic.socket", "handoff-admin.socket"}
	b.run("systemctl", append([]string{"start"}, sockets...)...)
	if p := b.show("handoff.service", "ActiveState"); p["ActiveState"] != "inactive" {
		t.Fatalf("handoff.service runs before any datagram: %v", p)
	}
	h3 := func(what string) float64 {
		t.Helper()
		r := b.probe("https://127.0.0.1/", "-insecure", "-h3")
		if !r.OK || r.Backend != "a" || r.Proto != "HTTP/3.0" {
			t.Fatalf("%s: %+v", what, r)
		}
		return r.FirstByteMs
	}
	cold := h3("first request over HTTP/3 (activation by a datagram)")
	b.waitActive("handoff.service", "", 10*time.Second)
	journal := b.run("journalctl", "-u", "handoff.service", "--no-pager", "-o", "cat")
	if !strings.Contains(journal, "using passed datagram socket") || strings.Contains(journal, "bound datagram socket") {
		t.Fatalf("the UDP socket was not the one systemd passed:\n%s", journal)
	}
	sent := 1
	for i := range 3 {
		b.run("systemctl", "reload", "handoff.service")
		h3(fmt.Sprintf("after reload %d", i+1))
		sent++
	}
	pid := b.waitActive("handoff.service", "", 10*time.Second)
	b.run("systemctl", "restart", "handoff.service")
	b.waitActive("handoff.service", pid, 10*time.Second)
	h3("after restart")
	sent++
	if r := b.probe("https://127.0.0.1/", "-insecure"); !r.OK || r.Backend != "a" {
		t.Fatalf("HTTPS over TCP: %+v", r)
	}
	sent++
	note := fmt.Sprintf("HTTP/3 via handoff-https-quic.socket: first request (datagram activation) %.1fms; 3 reloads and a restart", cold)
	t.Log(note)
	the.addRow(row{Scenario: "9 HTTP/3 socket activation", Sent: int64(sent), OK: int64(sent), Note: note})
}
