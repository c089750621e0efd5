package acmestore_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/handoff-proxy/handoff/pkg/acmestore"
	"github.com/handoff-proxy/handoff/pkg/state/statetest"
)

// certmagic's FileStorage refreshes its lock files from a goroutine that
// notices the release only on its next 5 s tick.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/caddyserver/certmagic.keepLockfileFresh"))
}

// newStorage returns a fresh, empty storage; two calls in one test share
// their data when the backend is shared (two "processes").
type newStorage func(t *testing.T) (a, b certmagic.Storage)

var prefixes atomic.Int64

func redisStorages(t *testing.T) newStorage {
	srv := statetest.StartRedis(t)
	return func(t *testing.T) (certmagic.Storage, certmagic.Storage) {
		p := fmt.Sprintf("t%d", prefixes.Add(1))
		mk := func() certmagic.Storage {
			c := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
			s := acmestore.New(c, acmestore.Options{Prefix: p, LockTTL: 900 * time.Millisecond, LockPoll: 20 * time.Millisecond})
			t.Cleanup(func() { s.Close(); _ = c.Close() })
			return s
		}
		return mk(), mk()
	}
}

// clusterStorages: the same contract on a Redis Cluster (every key of a
// store shares the {acme} hash tag, so its transactions stay on one node).
func clusterStorages(t *testing.T) newStorage {
	addrs := statetest.StartCluster(t)
	return func(t *testing.T) (certmagic.Storage, certmagic.Storage) {
		p := fmt.Sprintf("c%d", prefixes.Add(1))
		mk := func() certmagic.Storage {
			c := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: addrs})
			s := acmestore.New(c, acmestore.Options{Prefix: p, LockTTL: 900 * time.Millisecond, LockPoll: 20 * time.Millisecond})
			t.Cleanup(func() { s.Close(); _ = c.Close() })
			return s
		}
		return mk(), mk()
	}
}

func fileStorages(t *testing.T) (certmagic.Storage, certmagic.Storage) {
	dir := t.TempDir()
	return &certmagic.FileStorage{Path: dir}, &certmagic.FileStorage{Path: dir}
}

// TestContract runs the storage contract certmagic relies on against the
// Redis store and against certmagic's own FileStorage (the reference).
func TestContract(t *testing.T) {
	backends := []struct {
		name string
		new  newStorage
	}{
		{name: "file", new: fileStorages},
		{name: "redis", new: redisStorages(t)},
		{name: "redis cluster", new: clusterStorages(t)},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Run("store load delete", func(t *testing.T) { testStoreLoad(t, b.new) })
			t.Run("list", func(t *testing.T) { testList(t, b.new) })
			t.Run("stat", func(t *testing.T) { testStat(t, b.new) })
			t.Run("lock exclusive", func(t *testing.T) { testLockExclusive(t, b.new) })
		})
	}
}

func testStoreLoad(t *testing.T, newS newStorage) {
	ctx := context.Background()
	a, b := newS(t)
	if _, err := a.Load(ctx, "certs/x/none.crt"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing key: %v, want fs.ErrNotExist", err)
	}
	if err := a.Store(ctx, "certs/x/a.crt", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := a.Store(ctx, "certs/x/a.crt", []byte("two")); err != nil {
		t.Fatal(err)
	}
	got, err := b.Load(ctx, "certs/x/a.crt")
	if err != nil || string(got) != "two" {
		t.Fatalf("Load from the other = %q, %v; want two", got, err)
	}
	for _, k := range []string{"certs/x/a.crt", "certs/x", "certs"} {
		if !b.Exists(ctx, k) {
			t.Errorf("Exists(%q) = false", k)
		}
	}
	if b.Exists(ctx, "certs/y") || b.Exists(ctx, "cert") {
		t.Error("Exists of a missing key or a mere string prefix = true")
	}
	_ = a.Store(ctx, "certs/x/b.crt", []byte("b"))
	_ = a.Store(ctx, "certs/xy.crt", []byte("sibling"))
	if err := a.Delete(ctx, "certs/x"); err != nil {
		t.Fatalf("Delete of a directory: %v", err)
	}
	for _, k := range []string{"certs/x/a.crt", "certs/x/b.crt", "certs/x"} {
		if b.Exists(ctx, k) {
			t.Errorf("Exists(%q) after deleting its directory = true", k)
		}
	}
	if !b.Exists(ctx, "certs/xy.crt") {
		t.Error("Delete of certs/x removed certs/xy.crt")
	}
	if err := a.Delete(ctx, "certs/none"); err != nil {
		t.Errorf("Delete of a missing key: %v, want nil", err)
	}
}

func testList(t *testing.T, newS newStorage) {
	ctx := context.Background()
	a, _ := newS(t)
	for _, k := range []string{"acme/ca/users/u/u.json", "acme/ca/users/u/u.key", "acme/ca/sites/s/s.crt", "acme/top.json"} {
		if err := a.Store(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name      string
		prefix    string
		recursive bool
		want      []string
	}{
		{name: "direct children", prefix: "acme", want: []string{"acme/ca", "acme/top.json"}},
		{name: "deeper", prefix: "acme/ca/users", want: []string{"acme/ca/users/u"}},
		{name: "recursive", prefix: "acme/ca", recursive: true, want: []string{
			"acme/ca/sites", "acme/ca/sites/s", "acme/ca/sites/s/s.crt",
			"acme/ca/users", "acme/ca/users/u", "acme/ca/users/u/u.json", "acme/ca/users/u/u.key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := a.List(ctx, tt.prefix, tt.recursive)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("List(%q, %v) = %q, want %q", tt.prefix, tt.recursive, got, tt.want)
			}
		})
	}
	if _, err := a.List(ctx, "nothing", false); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("List of a missing directory: %v, want fs.ErrNotExist", err)
	}
}

func testStat(t *testing.T, newS newStorage) {
	ctx := context.Background()
	a, _ := newS(t)
	before := time.Now().Add(-2 * time.Second)
	_ = a.Store(ctx, "d/k", []byte("12345"))
	ki, err := a.Stat(ctx, "d/k")
	if err != nil {
		t.Fatal(err)
	}
	if !ki.IsTerminal || ki.Size != 5 || ki.Key != "d/k" || ki.Modified.Before(before) {
		t.Errorf("Stat(d/k) = %+v", ki)
	}
	if ki, err := a.Stat(ctx, "d"); err != nil || ki.IsTerminal {
		t.Errorf("Stat(d) = %+v, %v; want a directory", ki, err)
	}
	if _, err := a.Stat(ctx, "e"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat of a missing key: %v, want fs.ErrNotExist", err)
	}
}

// testLockExclusive: of two holders (processes) only one has the lock;
// the other gets it once it is released.
func testLockExclusive(t *testing.T, newS newStorage) {
	ctx := context.Background()
	a, b := newS(t)
	if err := a.Lock(ctx, "issue_cert_x"); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err := b.Lock(short, "issue_cert_x")
	cancel()
	if err == nil {
		t.Fatal("second Lock succeeded while the first holds it")
	}
	got := make(chan error, 1)
	go func() { got <- b.Lock(ctx, "issue_cert_x") }()
	if err := a.Unlock(ctx, "issue_cert_x"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("second Lock did not get the released lock")
	}
	if err := b.Unlock(ctx, "issue_cert_x"); err != nil {
		t.Fatal(err)
	}
}

// TestLockExpiry: a holder that dies (stops refreshing without Unlock)
// frees the lock after LockTTL; a live holder keeps it past LockTTL.
func TestLockExpiry(t *testing.T) {
	ctx := context.Background()
	srv := statetest.StartRedis(t)
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer c.Close()
	o := acmestore.Options{Prefix: "exp", LockTTL: 600 * time.Millisecond, LockPoll: 20 * time.Millisecond}
	live, other := acmestore.New(c, o), acmestore.New(c, o)
	defer other.Close()

	if err := live.Lock(ctx, "n"); err != nil {
		t.Fatal(err)
	}
	// Held past three TTLs: the refresh works.
	short, cancel := context.WithTimeout(ctx, 3*o.LockTTL)
	if err := other.Lock(short, "n"); err == nil {
		t.Fatal("lock taken from a live holder")
	}
	cancel()
	live.Close() // dies: no refresh, no Unlock
	start := time.Now()
	if err := other.Lock(ctx, "n"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*o.LockTTL {
		t.Errorf("the dead holder's lock freed after %v, want about %v", d, o.LockTTL)
	}
	// The dead holder's late Unlock does not free the new holder's lock.
	if err := live.Unlock(ctx, "n"); err == nil {
		t.Error("Unlock by a holder that lost the lock = nil")
	}
	if ok, _ := live.TryLock(ctx, "n"); ok {
		t.Error("TryLock succeeded on a lock held by another")
	}
	if err := other.Unlock(ctx, "n"); err != nil {
		t.Fatal(err)
	}
}
