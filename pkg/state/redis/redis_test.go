package redis_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/handoff-proxy/handoff/pkg/handofftest"
	"github.com/handoff-proxy/handoff/pkg/state"
	"github.com/handoff-proxy/handoff/pkg/state/redis"
	"github.com/handoff-proxy/handoff/pkg/state/statetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// prefixes gives every store set its own namespace on a shared server.
var prefixes atomic.Int64

// newStores returns a statetest.NewStores whose stores each have their own
// client (as separate processes would) on the Redis described by base.
func newStores(base redis.Options) statetest.NewStores {
	return func(t *testing.T, n int) []state.Store {
		o := base
		o.Prefix = fmt.Sprintf("test%d", prefixes.Add(1))
		o.Logger = handofftest.Logger(t)
		out := make([]state.Store, n)
		for i := range out {
			out[i] = statetest.StartStore(t, redis.NewStore(newClient(t, o), o))
		}
		return out
	}
}

func newClient(t testing.TB, o redis.Options) goredis.UniversalClient {
	t.Helper()
	c, err := redis.NewClient(o)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestContract(t *testing.T) {
	srv := statetest.StartRedis(t)
	statetest.RunStoreContract(t, newStores(redis.Options{URL: "redis://" + srv.Addr}))
}

func TestContractCluster(t *testing.T) {
	addrs := statetest.StartCluster(t)
	statetest.RunStoreContract(t, newStores(redis.Options{Cluster: redis.Cluster{Addresses: addrs}, Timeout: time.Second}))
}

// TestSentinel checks the client configuration against a real Sentinel:
// the store finds the master through it and works.
func TestSentinel(t *testing.T) {
	sn := statetest.StartSentinel(t)
	o := redis.Options{Sentinel: redis.Sentinel{MasterName: sn.MasterName, Addresses: sn.Addrs}, Timeout: time.Second}
	c := newClient(t, o)
	if _, ok := c.(*goredis.Client); !ok {
		t.Fatalf("client for sentinel is %T, want a failover *redis.Client", c)
	}
	ctx := t.Context()
	s := statetest.StartStore(t, redis.NewStore(c, o))
	v := state.Verdict{Upstream: "web", Target: "a:1", Healthy: true}
	if err := s.PutVerdict(ctx, v, time.Minute); err != nil {
		t.Fatal(err)
	}
	// The verdict is on the master the sentinel named.
	n, err := statetest.Command(sn.MasterAddr, "EXISTS", "handoff:{handoff}:verdict:web/a:1")
	if err != nil || n != ":1" {
		t.Fatalf("verdict key on the master: %q, %v", n, err)
	}
}

func TestKeysCarryTTLs(t *testing.T) {
	srv := statetest.StartRedis(t)
	o := redis.Options{URL: "redis://" + srv.Addr, Prefix: "ttl"}
	s := statetest.StartStore(t, redis.NewStore(newClient(t, o), o))
	ctx := t.Context()
	if err := s.PutVerdict(ctx, state.Verdict{Upstream: "web", Target: "a:1"}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TryLease(ctx, "probe/web", "p1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Incr(ctx, "rl", time.Minute); err != nil {
		t.Fatal(err)
	}
	out := cli(t, srv.Addr, "--scan", "--pattern", "*")
	keys := strings.Fields(out)
	if len(keys) != 4 {
		t.Fatalf("keys = %q, want verdict, index, lease and counter", keys)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "ttl:") {
			t.Errorf("key %q outside the prefix", k)
		}
		if ttl, err := statetest.Command(srv.Addr, "PTTL", k); err != nil || ttl == ":-1" || ttl == ":-2" {
			t.Errorf("PTTL %s = %q, %v; want a TTL", k, ttl, err)
		}
	}
}

func cli(t *testing.T, addr string, args ...string) string {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	out, err := runCmd("redis-cli", append([]string{"-h", host, "-p", port}, args...)...)
	if err != nil {
		t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
	}
	return out
}

type syncBuffer = handofftest.Buffer

// TestGarbageSkipped: values someone else wrote into a verdict key or the
// channel are logged once and skipped; the good verdicts still arrive.
func TestGarbageSkipped(t *testing.T) {
	srv := statetest.StartRedis(t)
	t.Run("only foreign index members", func(t *testing.T) {
		o := redis.Options{URL: "redis://" + srv.Addr, Prefix: "foreign", Logger: handofftest.Logger(t)}
		s := redis.NewStore(newClient(t, o), o)
		if _, err := statetest.Command(srv.Addr, "ZADD", "foreign:{foreign}:verdicts", "1", "x"); err != nil {
			t.Fatal(err)
		}
		if vs, err := s.Verdicts(t.Context()); err != nil || len(vs) != 0 {
			t.Fatalf("Verdicts = %+v, %v; want none, no error", vs, err)
		}
	})
	var logs syncBuffer
	o := redis.Options{URL: "redis://" + srv.Addr, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	s := statetest.StartStore(t, redis.NewStore(newClient(t, o), o))
	ctx := t.Context()
	good := state.Verdict{Upstream: "web", Target: "good:1"}
	if err := s.PutVerdict(ctx, good, time.Minute); err != nil {
		t.Fatal(err)
	}
	const bad = "handoff:{handoff}:verdict:web/bad:1"
	for _, cmd := range [][]string{
		{"SET", bad, "\x00not json"},
		{"ZADD", "handoff:{handoff}:verdicts", "99999999999999", bad},
		{"ZADD", "handoff:{handoff}:verdicts", "99999999999999", "elsewhere"},
		{"PUBLISH", "handoff:verdicts", `{"v":1,"upstream":"web"}`},
	} {
		if _, err := statetest.Command(srv.Addr, cmd...); err != nil {
			t.Fatalf("%v: %v", cmd, err)
		}
	}
	for range 2 { // the second resync must not log the same value again
		vs, err := s.Verdicts(ctx)
		if err != nil {
			t.Fatalf("Verdicts with garbage present: %v", err)
		}
		if len(vs) != 1 || !vs[0].Equal(good) {
			t.Fatalf("Verdicts = %+v, want only %+v", vs, good)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for !strings.Contains(logs.String(), "handoff:verdicts") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	out := logs.String()
	for _, want := range []string{"key=" + bad, `elsewhere`, "key=handoff:verdicts "} {
		if n := strings.Count(out, want); n != 1 {
			t.Errorf("log mentions %s %d times, want once:\n%s", want, n, out)
		}
	}
}

// TestOutage: with Redis gone, calls fail within the timeout and Up turns
// false; after Redis returns on the same port, Up turns true and watches
// deliver again (re-subscribed).
func TestOutage(t *testing.T) {
	srv := statetest.StartRedis(t)
	const timeout = 300 * time.Millisecond
	o := redis.Options{URL: "redis://" + srv.Addr, Timeout: timeout, MinBackoff: 50 * time.Millisecond,
		MaxBackoff: 200 * time.Millisecond, Logger: handofftest.Logger(t)}
	writer := statetest.StartStore(t, redis.NewStore(newClient(t, o), o))
	reader := statetest.StartStore(t, redis.NewStore(newClient(t, o), o))
	got := make(chan state.Verdict, 16)
	defer reader.Watch(func(v state.Verdict) { got <- v })()
	ctx := t.Context()
	waitFor := func(want state.Verdict) {
		t.Helper()
		timer := time.NewTimer(3 * time.Second)
		defer timer.Stop()
		for {
			select {
			case v := <-got:
				if v.Equal(want) {
					return
				}
			case <-timer.C:
				t.Fatalf("watch did not deliver %+v", want)
			}
		}
	}
	v1 := state.Verdict{Upstream: "web", Target: "a:1", Reason: "before"}
	if err := writer.PutVerdict(ctx, v1, time.Minute); err != nil {
		t.Fatal(err)
	}
	waitFor(v1)

	srv.Stop()
	for _, call := range []struct {
		name string
		do   func() error
	}{
		{"PutVerdict", func() error { return writer.PutVerdict(ctx, v1, time.Minute) }},
		{"Verdicts", func() error { _, err := writer.Verdicts(ctx); return err }},
		{"TryLease", func() error { _, err := writer.TryLease(ctx, "l", "p", time.Second); return err }},
		{"Incr", func() error { _, err := writer.Incr(ctx, "c", time.Second); return err }},
	} {
		start := time.Now()
		err := call.do()
		if d := time.Since(start); err == nil || d > timeout+200*time.Millisecond {
			t.Errorf("%s with Redis down = %v after %v, want an error within %v", call.name, err, d, timeout)
		}
	}
	if writer.Up() {
		t.Error("writer Up() = true with Redis down")
	}
	eventually(t, 3*time.Second, "reader notices the outage", func() bool { return !reader.Up() })

	srv.Restart()
	eventually(t, 5*time.Second, "reader reconnects", reader.Up)
	v2 := state.Verdict{Upstream: "web", Target: "a:1", Reason: "after"}
	eventually(t, 5*time.Second, "writer reconnects", func() bool {
		return writer.PutVerdict(ctx, v2, time.Minute) == nil
	})
	if !writer.Up() {
		t.Error("writer Up() = false after a successful call")
	}
	waitFor(v2)
}

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCloseUnblocks: Close returns promptly even while the subscription
// waits for messages or Redis is unreachable.
func TestCloseUnblocks(t *testing.T) {
	srv := statetest.StartRedis(t)
	o := redis.Options{URL: "redis://" + srv.Addr}
	for _, down := range []bool{false, true} {
		s := redis.NewStore(newClient(t, o), o)
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // let it subscribe (or fail to)
		if down {
			srv.Stop()
		}
		start := time.Now()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 200*time.Millisecond {
			t.Errorf("Close (redis down: %v) took %v", down, d)
		}
		if err := s.Start(context.Background()); err == nil {
			t.Error("Start after Close succeeded")
		}
	}
}

func TestPasswordFile(t *testing.T) {
	srv := statetest.StartRedis(t, "--requirepass", "s3cret")
	dir := t.TempDir()
	for _, tt := range []struct {
		name, password string
		wantErr        bool
	}{
		{name: "right password", password: "s3cret\n"},
		{name: "wrong password", password: "nope", wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			if err := os.WriteFile(file, []byte(tt.password), 0o600); err != nil {
				t.Fatal(err)
			}
			c := newClient(t, redis.Options{URL: "redis://:ignored@" + srv.Addr, PasswordFile: file})
			err := c.Ping(t.Context()).Err()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Ping = %v, want error %v", err, tt.wantErr)
			}
		})
	}
	if _, err := redis.NewClient(redis.Options{URL: "redis://" + srv.Addr, PasswordFile: filepath.Join(dir, "missing")}); err == nil {
		t.Fatal("NewClient with a missing password file succeeded")
	}
}

// TestUnixSocketURL: unix:// URLs reach a server on its Unix socket (the
// NixOS module's local Redis listens on one).
func TestUnixSocketURL(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "redis.sock")
	statetest.StartRedis(t, "--unixsocket", sock, "--unixsocketperm", "700")
	o := redis.Options{URL: "unix://" + sock + "?db=2", Logger: handofftest.Logger(t)}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	client, err := redis.NewClient(o)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := client.Set(ctx, "k", "v", time.Minute).Err(); err != nil {
		t.Fatalf("set over the unix socket: %v", err)
	}
	if got, err := client.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("get: %q %v", got, err)
	}
}
