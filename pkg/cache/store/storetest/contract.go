// Package storetest is the contract suite every cache store passes (the
// memory store and the Redis store run the same tests), like the standard
// library's testing/fstest.
//
// It must not know which store it tests.
package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/cache/store"
)

// Run runs the contract against the store newStore returns; each subtest
// gets a fresh, empty store.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	ctx := context.Background()
	tests := []struct {
		name string
		run  func(t *testing.T, s store.Store)
	}{
		{"get missing is ErrNotFound", func(t *testing.T, s store.Store) {
			if _, _, err := s.Get(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("Get missing: %v, want ErrNotFound", err)
			}
		}},
		{"set then get returns the value and a ttl", func(t *testing.T, s store.Store) {
			v := []byte("value\x00with nul")
			if err := s.Set(ctx, "k", v, time.Minute); err != nil {
				t.Fatal(err)
			}
			v[0] = 'X' // the store keeps its own copy
			got, ttl, err := s.Get(ctx, "k")
			if err != nil || string(got) != "value\x00with nul" {
				t.Fatalf("Get = %q, %v", got, err)
			}
			if ttl <= 0 || ttl > time.Minute {
				t.Fatalf("ttl = %v, want (0, 1m]", ttl)
			}
		}},
		{"keys with braces, stars and NULs are distinct", func(t *testing.T, s store.Store) {
			keys := []string{"http://a/{x}", "http://a/*", "http://a/\x00h=1", "http://a/%7Bx%7D"}
			for i, k := range keys {
				if err := s.Set(ctx, k, []byte{byte('0' + i)}, time.Minute); err != nil {
					t.Fatal(err)
				}
			}
			for i, k := range keys {
				if got, _, err := s.Get(ctx, k); err != nil || string(got) != string(rune('0'+i)) {
					t.Fatalf("Get(%q) = %q, %v", k, got, err)
				}
			}
		}},
		{"zero ttl deletes", func(t *testing.T, s store.Store) {
			_ = s.Set(ctx, "k", []byte("v"), time.Minute)
			_ = s.Set(ctx, "k", []byte("v"), 0)
			if _, _, err := s.Get(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("Get after zero ttl: %v", err)
			}
		}},
		{"delete", func(t *testing.T, s store.Store) {
			_ = s.Set(ctx, "a", []byte("1"), time.Minute)
			_ = s.Set(ctx, "b", []byte("2"), time.Minute)
			if err := s.Delete(ctx, "a", "b", "missing"); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"a", "b"} {
				if _, _, err := s.Get(ctx, k); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("Get(%s) after delete: %v", k, err)
				}
			}
		}},
		{"purge by prefix and all", func(t *testing.T, s store.Store) {
			for _, k := range []string{"http://h/a/1", "http://h/a/2", "http://h/b", "http://h/a*"} {
				_ = s.Set(ctx, k, []byte("v"), time.Minute)
			}
			n, err := s.Purge(ctx, "http://h/a/")
			if err != nil || n != 2 {
				t.Fatalf("Purge prefix = %d, %v; want 2", n, err)
			}
			if _, _, err := s.Get(ctx, "http://h/b"); err != nil {
				t.Fatalf("purge removed a key outside the prefix: %v", err)
			}
			if n, err := s.Purge(ctx, ""); err != nil || n != 2 {
				t.Fatalf("Purge all = %d, %v; want 2", n, err)
			}
		}},
		{"expiry", func(t *testing.T, s store.Store) {
			_ = s.Set(ctx, "k", []byte("v"), 50*time.Millisecond)
			deadline := time.Now().Add(3 * time.Second)
			for time.Now().Before(deadline) {
				if _, _, err := s.Get(ctx, "k"); errors.Is(err, store.ErrNotFound) {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Fatal("value did not expire")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, newStore(t)) })
	}
}
