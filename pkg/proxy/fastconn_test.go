package proxy

import (
	"bufio"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/handofftest"
	"github.com/handoff-proxy/handoff/pkg/rawsock"
)

// TestInterruptOutlastsDeadlineChanges: once the client of a request went
// away (interrupt), arming or clearing the response header timeout does
// not undo the past deadline, so a read from the target ends at once
// instead of waiting for a response nobody will read.
func TestInterruptOutlastsDeadlineChanges(t *testing.T) {
	for _, change := range []struct {
		name string
		do   func(*h1Conn)
	}{
		{"disarm", func(c *h1Conn) { c.disarm() }},
		{"arm", func(c *h1Conn) { c.armed = time.Time{}; c.armResponse(time.Now(), time.Minute) }},
	} {
		t.Run(change.name, func(t *testing.T) {
			conn, _ := handofftest.TCPPair(t)
			s := rawsock.New(conn)
			uc := &h1Conn{c: conn, s: s, br: bufio.NewReader(s)}
			uc.armResponse(time.Now(), time.Minute)
			uc.interrupt()
			change.do(uc)
			read := make(chan error, 1)
			go func() {
				_, err := uc.s.Read(make([]byte, 1))
				read <- err
			}()
			select {
			case err := <-read:
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("read after interrupt and %s: %v; want the past deadline", change.name, err)
				}
			case <-time.After(5 * time.Second):
				conn.Close()
				t.Fatalf("read after interrupt and %s still waits: the deadline change undid the interrupt", change.name)
			}
		})
	}
}
