// Package acmestore keeps ACME state (account keys, certificates, their
// metadata, challenge tokens) and the locks around ACME orders in Redis, as
// a certmagic.Storage, so that every handoff process on every machine that
// shares the Redis sees the same certificates and only one of them places
// an order for a name.
//
// It owns the key layout under its prefix and the lock protocol. It does
// not know about ACME, listeners or config: the caller hands it a go-redis
// client (the process's one client, package state/redis) and a prefix.
package acmestore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	goredis "github.com/redis/go-redis/v9"
)

// Options configure a Store.
type Options struct {
	// Prefix starts every key, followed by ":{acme}:" (one cluster hash
	// tag, so that the multi-key transactions stay on one slot). Empty
	// means "handoff".
	Prefix string
	// LockTTL is how long a lock outlives a holder that died without
	// releasing it; a live holder refreshes it every LockTTL/3. Zero
	// means 1 minute.
	LockTTL time.Duration
	// LockPoll is how often Lock retries a held lock. Zero means 1s.
	LockPoll time.Duration
}

// Store is a certmagic.Storage on Redis. Keys are "/"-separated paths, as
// certmagic writes them; a key that prefixes others is a directory.
//
// Layout: "<p>:{acme}:v:<key>" is a hash with the value ("d") and the
// modification time in Unix nanoseconds ("m"); "<p>:{acme}:index" is a
// sorted set of every stored key (all with score 0, so that ZRANGEBYLEX
// lists a directory); "<p>:{acme}:lock:<name>" holds a lock's token with
// an expiry.
type Store struct {
	c       goredis.UniversalClient
	base    string // "<p>:{acme}:"
	ttl     time.Duration
	poll    time.Duration
	ownerID string

	mu    sync.Mutex
	locks map[string]*heldLock
	wg    sync.WaitGroup
}

// heldLock is a lock this Store holds and keeps fresh.
type heldLock struct {
	token string
	stop  chan struct{}
}

var _ certmagic.Storage = (*Store)(nil)
var _ certmagic.TryLocker = (*Store)(nil)
var _ certmagic.LockLeaseRenewer = (*Store)(nil)

// New returns a Store on c. It starts nothing; locks it holds are kept
// fresh by goroutines that end with Unlock or Close.
func New(c goredis.UniversalClient, o Options) *Store {
	if o.Prefix == "" {
		o.Prefix = "handoff"
	}
	if o.LockTTL <= 0 {
		o.LockTTL = time.Minute
	}
	if o.LockPoll <= 0 {
		o.LockPoll = time.Second
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	return &Store{c: c, base: o.Prefix + ":{acme}:", ttl: o.LockTTL, poll: o.LockPoll,
		ownerID: hex.EncodeToString(id[:]), locks: make(map[string]*heldLock)}
}

// String names the store in certmagic's logs and in the issuer's storage
// identity.
func (s *Store) String() string { return "redis:" + s.base }

func (s *Store) valueKey(key string) string { return s.base + "v:" + key }
func (s *Store) indexKey() string           { return s.base + "index" }
func (s *Store) lockKey(name string) string { return s.base + "lock:" + name }

// clean normalises a certmagic key: no leading or trailing slash.
func clean(key string) string { return strings.Trim(path.Clean("/"+key), "/") }

// Store writes value at key.
func (s *Store) Store(ctx context.Context, key string, value []byte) error {
	key = clean(key)
	_, err := s.c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.HSet(ctx, s.valueKey(key), "d", value, "m", strconv.FormatInt(time.Now().UnixNano(), 10))
		p.ZAdd(ctx, s.indexKey(), goredis.Z{Member: key})
		return nil
	})
	if err != nil {
		return fmt.Errorf("store %s: %w", key, err)
	}
	return nil
}

// Load reads the value at key; fs.ErrNotExist when there is none.
func (s *Store) Load(ctx context.Context, key string) ([]byte, error) {
	key = clean(key)
	b, err := s.c.HGet(ctx, s.valueKey(key), "d").Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, fmt.Errorf("load %s: %w", key, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", key, err)
	}
	return b, nil
}

// Delete removes key and, when it is a directory, everything under it.
func (s *Store) Delete(ctx context.Context, key string) error {
	key = clean(key)
	under, err := s.under(ctx, key)
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	all := append(under, key)
	_, err = s.c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		for _, k := range all {
			p.Del(ctx, s.valueKey(k))
		}
		members := make([]any, len(all))
		for i, k := range all {
			members[i] = k
		}
		p.ZRem(ctx, s.indexKey(), members...)
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// under lists every stored key below the directory dir ("" is the root).
func (s *Store) under(ctx context.Context, dir string) ([]string, error) {
	min, max := "-", "+"
	if dir != "" {
		// Every key "dir/…" sorts between "[dir/" and "[dir0" ('0' follows
		// '/' in ASCII).
		min, max = "["+dir+"/", "("+dir+"0"
	}
	return s.c.ZRangeByLex(ctx, s.indexKey(), &goredis.ZRangeBy{Min: min, Max: max}).Result()
}

// Exists reports whether key is stored or is a directory of stored keys.
func (s *Store) Exists(ctx context.Context, key string) bool {
	_, err := s.Stat(ctx, key)
	return err == nil
}

// List lists the keys under the directory prefix. Recursive lists every
// key and directory below it; otherwise only its direct children (files
// and directories), as certmagic.FileStorage does.
func (s *Store) List(ctx context.Context, prefix string, recursive bool) ([]string, error) {
	prefix = clean(prefix)
	keys, err := s.under(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	if len(keys) == 0 {
		if s.isFile(ctx, prefix) {
			return nil, nil
		}
		return nil, fmt.Errorf("list %s: %w", prefix, fs.ErrNotExist)
	}
	seen := make(map[string]bool)
	var out []string
	for _, k := range keys {
		rel := k
		if prefix != "" {
			rel = strings.TrimPrefix(k, prefix+"/")
		}
		parts := strings.Split(rel, "/")
		if !recursive {
			parts = parts[:1]
		}
		// A recursive listing names the directories on the way, too.
		for i := range parts {
			p := path.Join(prefix, path.Join(parts[:i+1]...))
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out, nil
}

func (s *Store) isFile(ctx context.Context, key string) bool {
	n, err := s.c.Exists(ctx, s.valueKey(key)).Result()
	return err == nil && n > 0
}

// Stat describes key; fs.ErrNotExist when it is neither stored nor a
// directory.
func (s *Store) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	key = clean(key)
	vals, err := s.c.HMGet(ctx, s.valueKey(key), "m").Result()
	if err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("stat %s: %w", key, err)
	}
	if m, ok := vals[0].(string); ok {
		size, err := s.c.HStrLen(ctx, s.valueKey(key), "d").Result()
		if err != nil {
			return certmagic.KeyInfo{}, fmt.Errorf("stat %s: %w", key, err)
		}
		ns, _ := strconv.ParseInt(m, 10, 64)
		return certmagic.KeyInfo{Key: key, Modified: time.Unix(0, ns), Size: size, IsTerminal: true}, nil
	}
	under, err := s.c.ZRangeByLex(ctx, s.indexKey(), &goredis.ZRangeBy{Min: "[" + key + "/", Max: "(" + key + "0", Count: 1}).Result()
	if err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("stat %s: %w", key, err)
	}
	if len(under) == 0 {
		return certmagic.KeyInfo{}, fmt.Errorf("stat %s: %w", key, fs.ErrNotExist)
	}
	return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
}
