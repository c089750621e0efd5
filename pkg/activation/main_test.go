package activation

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// Helper mode: tests re-execute the test binary (through
// systemd-socket-activate or as an upgrade child) with these variables set.
const (
	helperEnv       = "ACTIVATION_TEST_HELPER" // "1" runs runHelper
	helperWantsEnv  = "ACTIVATION_TEST_WANTS"  // "name=addr,name=addr"
	helperSingleEnv = "ACTIVATION_TEST_SINGLE" // Options.SingleUnnamed
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(runHelper(os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m)
}

// runHelper calls Listen with the real process environment, reports what it
// got on stdout, then serves exactly one connection per listener by writing
// the listener's name, and exits. Exit code 3 means Listen failed.
func runHelper(stdout, stderr io.Writer) int {
	var wants []Want
	for _, kv := range strings.Split(os.Getenv(helperWantsEnv), ",") {
		name, addr, _ := strings.Cut(kv, "=")
		wants = append(wants, Want{Name: name, Address: addr})
	}
	// Do not let our own variables confuse anything started later.
	os.Unsetenv(helperEnv)
	opts := Options{
		SingleUnnamed: os.Getenv(helperSingleEnv),
		Logger:        slog.New(slog.NewTextHandler(stderr, nil)),
	}
	set, err := Listen(context.Background(), opts, wants)
	if err != nil {
		fmt.Fprintf(stdout, "ERROR unclaimed=%t notlistener=%t noaddress=%t: %v\n",
			errors.Is(err, ErrUnclaimed), errors.Is(err, ErrNotListener), errors.Is(err, ErrNoAddress), err)
		return 3
	}
	defer set.Close()
	fmt.Fprintf(stdout, "ENV LISTEN_PID=%q LISTEN_FDS=%q LISTEN_FDNAMES=%q HANDOFF_LISTEN_PPID=%q\n",
		os.Getenv(envListenPID), os.Getenv(envListenFDs), os.Getenv(envListenFDNames), os.Getenv(envListenPPID))
	for _, name := range set.Names() {
		fmt.Fprintf(stdout, "LISTENING %s passed=%t %s\n", name, set.FromSystemd(name), set.Listener(name).Addr())
	}
	var wg sync.WaitGroup
	for _, name := range set.Names() {
		ln := set.Listener(name)
		wg.Go(func() {
			c, err := ln.Accept()
			if err != nil {
				fmt.Fprintf(stderr, "accept %s: %v\n", name, err)
				return
			}
			fmt.Fprintf(c, "%s\n", name)
			c.Close()
		})
	}
	wg.Wait()
	return 0
}

// fakeEnv is an injected environment.
type fakeEnv struct {
	mu    sync.Mutex
	vars  map[string]string
	unset []string
}

func newFakeEnv(kv ...string) *fakeEnv {
	e := &fakeEnv{vars: map[string]string{}}
	for _, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		e.vars[k] = v
	}
	return e
}

// env returns an Env over e for a process with the given pid and ppid.
func (e *fakeEnv) env(pid, ppid int) Env {
	return Env{
		Getenv: func(k string) string {
			e.mu.Lock()
			defer e.mu.Unlock()
			return e.vars[k]
		},
		Unsetenv: func(k string) error {
			e.mu.Lock()
			defer e.mu.Unlock()
			delete(e.vars, k)
			e.unset = append(e.unset, k)
			return nil
		},
		Pid:  pid,
		Ppid: ppid,
	}
}

func (e *fakeEnv) get(k string) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, ok := e.vars[k]
	return v, ok
}
