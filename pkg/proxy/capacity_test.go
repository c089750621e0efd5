package proxy

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/config"
)

// waitFor polls cond until it holds or 10s passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestMaxConnsQueue(t *testing.T) {
	tests := []struct {
		name      string
		queue     config.UpstreamQueue
		twoTarget bool
		// second is the status of a request sent while the first
		// holds the only slot; third of one sent while the second
		// waits (0: not sent).
		second, third int
	}{
		{name: "queued until a slot frees", queue: config.UpstreamQueue{Size: 1, Timeout: 10 * time.Second}, second: 200, third: 503},
		{name: "no queue: 503 at once", second: 503},
		{name: "queue timeout", queue: config.UpstreamQueue{Size: 1, Timeout: 50 * time.Millisecond}, second: 503},
		{name: "another target before queueing", twoTarget: true, second: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			var once sync.Once
			free := func() { once.Do(func() { close(release) }) }
			t.Cleanup(free)
			held := newBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("X-Hold") != "" {
					<-release
				}
				io.WriteString(w, "ok")
			}))
			targets := []string{held.Listener.Addr().String()}
			if tt.twoTarget {
				targets = append(targets, newBackend(t, http.HandlerFunc(echoHandler)).Listener.Addr().String())
			}
			h, _ := newProxy(t, config.Upstream{MaxConns: 1, Queue: tt.queue}, targets, nil)
			send := func(hold bool) <-chan int {
				ch := make(chan int, 1)
				go func() {
					r := httptest.NewRequest("GET", "/", nil).WithContext(ctxTimeout(t))
					if hold {
						r.Header.Set("X-Hold", "1")
					}
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, r)
					ch <- rec.Code
				}()
				return ch
			}
			first := send(true)
			waitFor(t, "the first request to hold the slot", func() bool { return h.pool.Targets()[0].InFlight() == 1 })
			second := send(false)
			var third <-chan int
			if tt.third != 0 {
				waitFor(t, "the second request to queue", func() bool { return h.queue.waiting.Load() == 1 })
				third = send(false)
				if got := <-third; got != tt.third {
					t.Errorf("third request: %d, want %d", got, tt.third)
				}
			}
			if tt.second == 503 || tt.twoTarget {
				if got := <-second; got != tt.second {
					t.Errorf("second request: %d, want %d", got, tt.second)
				}
				free()
			} else {
				free()
				if got := <-second; got != tt.second {
					t.Errorf("second request: %d, want %d", got, tt.second)
				}
			}
			if got := <-first; got != 200 {
				t.Errorf("first request: %d, want 200", got)
			}
			waitFor(t, "slots to be released", func() bool { return h.pool.Targets()[0].InFlight() == 0 })
		})
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(es)
}

// TestHungRequestsBounded pins the measured fault where 1,000 requests to
// a target that accepts and never answers held 4,020 goroutines and 2,019
// fds: with max_conns 10 and a queue of 50, 940 get 503 at once and what
// the rest hold is bounded by the cap and the queue, not by the load.
func TestHungRequestsBounded(t *testing.T) {
	const (
		requests = 1000
		maxConns = 10
		queue    = 50
	)
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		accepted []net.Conn
		acceptWG sync.WaitGroup
	)
	acceptWG.Go(func() {
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted = append(accepted, c)
			mu.Unlock()
		}
	})
	h, _ := newProxy(t, config.Upstream{MaxConns: maxConns, Queue: config.UpstreamQueue{Size: queue, Timeout: time.Minute}}, []string{hang.Addr().String()}, nil)
	front := httptest.NewUnstartedServer(h)
	front.Config.ErrorLog = testStdLogger(t)
	front.Start()

	baseG, baseFD := runtime.NumGoroutine(), openFDs(t)
	conns := make([]net.Conn, 0, requests)
	for range requests {
		c, err := net.Dial("tcp", front.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	rejected := 0
	buf := make([]byte, 4096)
	deadline := time.Now().Add(30 * time.Second)
	for rejected < requests-maxConns-queue && time.Now().Before(deadline) {
		open := conns[:0]
		for _, c := range conns {
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Millisecond))
			n, _ := c.Read(buf)
			if n == 0 {
				open = append(open, c)
				continue
			}
			if !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 503") {
				t.Errorf("got %q, want a 503", buf[:n])
			}
			c.Close()
			rejected++
		}
		conns = open
	}
	waitFor(t, "the queue to fill", func() bool { return h.queue.waiting.Load() == queue })
	g, fds := runtime.NumGoroutine()-baseG, openFDs(t)-baseFD
	t.Logf("%d hung requests: %d rejected, %d in flight, %d queued; +%d goroutines, +%d fds", requests, rejected, h.pool.Targets()[0].InFlight(), h.queue.waiting.Load(), g, fds)
	if rejected != requests-maxConns-queue || h.pool.Targets()[0].InFlight() != maxConns {
		t.Errorf("rejected %d, in flight %d; want %d, %d", rejected, h.pool.Targets()[0].InFlight(), requests-maxConns-queue, maxConns)
	}
	// Per waiting request: the client's and the front's socket and the
	// front's two goroutines; per slot also the upstream socket pair and
	// the transport's two goroutines. 300 leaves room for the runtime.
	if g > 300 || fds > 300 {
		t.Errorf("+%d goroutines, +%d fds for %d hung requests, want at most 300 each", g, fds, requests)
	}

	for _, c := range conns {
		c.Close()
	}
	front.Close()
	hang.Close()
	mu.Lock()
	for _, c := range accepted {
		c.Close()
	}
	mu.Unlock()
	acceptWG.Wait()
}
