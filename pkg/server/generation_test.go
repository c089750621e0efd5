package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/handoff-proxy/handoff/pkg/config"
)

// TestReloadClosesOldGenerationAfterItsRequests: a reload retires the old
// generation but closes it (ending its background work) only once the
// requests that started on it are done, and they complete normally.
func TestReloadClosesOldGenerationAfterItsRequests(t *testing.T) {
	before := goleak.IgnoreCurrent()
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started <- struct{}{}
			<-release
		}
		io.WriteString(w, "slow-backend")
	}))
	defer slow.Close()
	fast := echoBackend(t, "fast")

	cfg := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, hostOf(slow))
	next := baseConfig([]config.Listener{{Name: "http", Protocol: config.ProtocolHTTP}}, hostOf(fast))
	r := serve(t, cfg, func() (*config.Config, error) { return next, nil })

	if got := get(t, "http://"+r.addrs["http"]+"/"); got != "slow-backend" {
		t.Fatalf("before reload: %q", got)
	}
	old := r.srv.gens.current.Load()
	checkerGoroutines := countGoroutines("health.(*Checker)")
	if checkerGoroutines == 0 {
		t.Fatal("the generation's health checker runs no goroutine; the test would prove nothing")
	}
	bgDone := make(chan struct{})
	old.goFunc("test-task", func(ctx context.Context) {
		<-ctx.Done()
		close(bgDone)
	})

	type result struct {
		body string
		err  error
	}
	resc := make(chan result, 1)
	go func() {
		res, err := http.Get("http://" + r.addrs["http"] + "/slow")
		if err != nil {
			resc <- result{err: err}
			return
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		resc <- result{string(b), err}
	}()
	<-started

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if res, err := r.srv.Reload(ctx); err != nil || res.Error != "" {
		t.Fatalf("reload: %v %+v", err, res)
	}
	if got := get(t, "http://"+r.addrs["http"]+"/"); got != "fast" {
		t.Fatalf("after reload: %q, want the new generation's backend", got)
	}
	select {
	case <-bgDone:
		t.Fatal("old generation closed while a request was still in flight on it")
	case <-time.After(50 * time.Millisecond):
	}

	close(release)
	res := <-resc
	if res.err != nil || res.body != "slow-backend" {
		t.Fatalf("in-flight request on the old generation: %q, %v", res.body, res.err)
	}
	select {
	case <-bgDone:
	case <-time.After(5 * time.Second):
		t.Fatal("old generation not closed after its last request")
	}
	// Every goroutine the old generation started is gone (the server and
	// its idle keep-alive connections are still running: ignore those
	// by waiting for the task's goroutine only).
	r.srv.gens.wg.Wait()
	// The old generation's health checkers are gone: as many checker
	// goroutines as one generation has.
	if n := countGoroutines("health.(*Checker)"); n != checkerGoroutines {
		t.Fatalf("%d health checker goroutines after the old generation closed, want %d (one generation's)", n, checkerGoroutines)
	}
	if err := goleak.Find(before,
		// The current generation's and the process's shared state.
		goleak.IgnoreAnyFunction("github.com/handoff-proxy/handoff/pkg/health.(*Checker).runPublisher"),
		goleak.IgnoreAnyFunction("github.com/handoff-proxy/handoff/pkg/state/memory.(*Store).deliver"),
		goleak.IgnoreAnyFunction("github.com/handoff-proxy/handoff/pkg/server.(*heartbeat).Start.func1"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreAnyFunction("net/http.(*conn).serve"),
		goleak.IgnoreAnyFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("github.com/handoff-proxy/handoff/pkg/server.(*Server).Run"),
		goleak.IgnoreAnyFunction("github.com/handoff-proxy/handoff/pkg/server.(*Server).loop"),
		goleak.IgnoreAnyFunction("github.com/handoff-proxy/handoff/pkg/server.serve.func1"),
		goleak.IgnoreAnyFunction("net/http.(*Server).Serve"),
		goleak.IgnoreAnyFunction("net/http.(*Server).Serve.func1"),
		// fastpath.go, parking.go: the listener's, like net/http's above
		goleak.IgnoreAnyFunction("github.com/handoff-proxy/handoff/pkg/server.(*parker).loop"),
		goleak.IgnoreAnyFunction("github.com/handoff-proxy/handoff/pkg/server.(*fastServer).run"),
		goleak.IgnoreAnyFunction("github.com/handoff-proxy/handoff/pkg/server.(*fastServer).Serve.func1"),
	); err != nil {
		t.Fatalf("goroutines left after the old generation closed: %v", err)
	}
}

// countGoroutines counts the goroutines with fn on their stack.
func countGoroutines(fn string) int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, fn) {
			n++
		}
	}
	return n
}

func get(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestGenerationsAcquireNeverStartsOnRetired: a request never counts
// itself on a generation that was already swapped out.
func TestGenerationsAcquireNeverStartsOnRetired(t *testing.T) {
	var gs generations
	a := &generation{idle: make(chan struct{})}
	gs.current.Store(a)
	g := gs.acquire()
	if g != a {
		t.Fatal("acquire did not return the current generation")
	}
	b := &generation{idle: make(chan struct{})}
	gs.swap(b)
	select {
	case <-a.idle:
		t.Fatal("retired generation idle while a request holds it")
	default:
	}
	if g2 := gs.acquire(); g2 != b {
		t.Fatal("acquire after swap did not return the new generation")
	} else {
		g2.release()
	}
	g.release()
	<-a.idle
	gs.close()
}
