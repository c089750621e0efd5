package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/handoff-proxy/handoff/pkg/state"
)

// Key layout (P is the prefix):
//
//	P:{P}:verdict:<upstream>/<target>  one verdict (versioned JSON), PX ttl
//	P:{P}:verdicts                     sorted set indexing the verdict keys
//	                                   by expiry (ms), PX the longest ttl
//	P:verdicts                         pub/sub channel of new verdicts
//	P:lease:<name>                     holder id, PX ttl
//	P:count:<key>                      counter, PX window
//
// Names are path-escaped so no input can reach into another key or add a
// hash tag. The verdict keys and their index share the hash tag {P}, so in
// a Cluster the script that writes both and the MGET that reads them stay
// in one slot; leases and counters spread over the cluster.

// putVerdictScript writes a verdict, indexes it, prunes expired index
// entries and publishes it: one round trip, atomic.
// KEYS: verdict key, index. ARGV: value, ttl ms, now ms, channel.
var putVerdictScript = goredis.NewScript(`
local ttl = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('ZADD', KEYS[2], now + ttl, KEYS[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('PTTL', KEYS[2]) < ttl then
  redis.call('PEXPIRE', KEYS[2], ttl)
end
redis.call('PUBLISH', ARGV[4], ARGV[1])
return 1
`)

// tryLeaseScript takes a free lease or extends one the holder has.
// KEYS: lease. ARGV: holder, ttl ms.
var tryLeaseScript = goredis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`)

// releaseLeaseScript deletes a lease only if the holder still has it.
// KEYS: lease. ARGV: holder.
var releaseLeaseScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// incrScript counts in a fixed window; a key left without expiry (by an
// older writer or a failover) gets one, so counters never live forever.
// KEYS: counter. ARGV: window ms.
var incrScript = goredis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
`)

// Store is the Redis state.Store. Create it with NewStore.
type Store struct {
	client goredis.UniversalClient
	o      Options
	log    *slog.Logger

	verdictPrefix, index, channel string
	leasePrefix, countPrefix      string

	up atomic.Bool

	mu       sync.Mutex
	watchers state.Watchers
	started  bool
	closed   bool
	cancel   context.CancelFunc
	done     chan struct{}
	pubsub   *goredis.PubSub // the live subscription, closed by Close to end a blocked read
	// badValues remembers the undecodable values already logged, by key,
	// so a resync does not log the same garbage again every interval.
	badValues map[string]string
}

var _ state.Store = (*Store)(nil)

// NewStore returns a store on client (usually from NewClient(o)); it uses
// o's Prefix, Timeout, ResyncInterval, backoffs and Logger and ignores the
// connection fields. Call Start to subscribe; Close does not close client.
func NewStore(client goredis.UniversalClient, o Options) *Store {
	o = o.withDefaults()
	p := o.Prefix
	s := &Store{
		client:        client,
		o:             o,
		log:           o.Logger,
		verdictPrefix: p + ":{" + p + "}:verdict:",
		index:         p + ":{" + p + "}:verdicts",
		channel:       p + ":verdicts",
		leasePrefix:   p + ":lease:",
		countPrefix:   p + ":count:",
		badValues:     map[string]string{},
	}
	// Until a call says otherwise, assume Redis is there: a process that
	// just started should not report an outage it has not seen.
	s.up.Store(true)
	return s
}

// Client returns the client the store uses, for features that share it.
func (s *Store) Client() goredis.UniversalClient { return s.client }

// Prefix returns the key prefix in use (the default applied).
func (s *Store) Prefix() string { return s.o.Prefix }

// Up implements state.Store: it reports whether the last Redis call (or
// subscription check, at least every second while started) succeeded.
func (s *Store) Up() bool { return s.up.Load() }

func (s *Store) verdictKey(k state.VerdictKey) string {
	return s.verdictPrefix + url.PathEscape(k.Upstream) + "/" + url.PathEscape(k.Target)
}

// call bounds one Redis call by the timeout.
func (s *Store) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.o.Timeout)
}

// observe records the outcome of a Redis call for Up and logs a change
// of reachability once.
func (s *Store) observe(err error) {
	switch {
	case err == nil || errors.Is(err, goredis.Nil):
		if !s.up.Swap(true) {
			s.log.Info("state backend reachable again")
		}
	case isOutage(err):
		if s.up.Swap(false) {
			s.log.Warn("state backend unreachable; continuing on local knowledge", "err", err)
		}
	}
}

// isOutage reports whether err means Redis could not be reached or could
// not serve (as opposed to a rejected command or a caller's cancel).
func isOutage(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, goredis.ErrPoolTimeout) || errors.Is(err, goredis.ErrPoolExhausted) {
		return true
	}
	// RESP error replies start with an error code
	// (https://redis.io/docs/latest/develop/reference/protocol-spec/#simple-errors);
	// these mean the server cannot serve right now.
	var re goredis.Error
	if errors.As(err, &re) {
		code, _, _ := strings.Cut(re.Error(), " ")
		switch code {
		case "LOADING", "CLUSTERDOWN", "MASTERDOWN", "TRYAGAIN", "READONLY":
			return true
		}
	}
	return false
}

// PutVerdict implements state.VerdictStore.
func (s *Store) PutVerdict(ctx context.Context, v state.Verdict, ttl time.Duration) error {
	ttl, err := state.VerdictTTL(ttl)
	if err != nil {
		return err
	}
	b, err := state.EncodeVerdict(v)
	if err != nil {
		return err
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	err = putVerdictScript.Run(ctx, s.client, []string{s.verdictKey(v.Key()), s.index},
		b, ttl.Milliseconds(), time.Now().UnixMilli(), s.channel).Err()
	s.observe(err)
	if err != nil {
		return fmt.Errorf("put verdict %s/%s: %w", v.Upstream, v.Target, err)
	}
	return nil
}

// Verdicts implements state.VerdictStore. It costs two round trips: the
// index, then every indexed key in one MGET.
func (s *Store) Verdicts(ctx context.Context) ([]state.Verdict, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	keys, err := s.client.ZRange(ctx, s.index, 0, -1).Result()
	if err == nil {
		keys = s.ownKeys(keys)
	}
	if err == nil && len(keys) == 0 {
		s.observe(nil)
		return nil, nil
	}
	var vals []any
	if err == nil {
		vals, err = s.client.MGet(ctx, keys...).Result()
	}
	s.observe(err)
	if err != nil {
		return nil, fmt.Errorf("read verdicts: %w", err)
	}
	out := make([]state.Verdict, 0, len(vals))
	for i, raw := range vals {
		str, ok := raw.(string)
		if !ok { // expired since it was indexed; the next put prunes it
			continue
		}
		v, err := state.DecodeVerdict([]byte(str))
		if err != nil {
			s.logBadValue(keys[i], str, err)
			continue
		}
		out = append(out, v)
	}
	return out, nil
}

// ownKeys drops index members that are not verdict keys of this prefix
// (someone else wrote them): reading them could leave the hash slot.
func (s *Store) ownKeys(keys []string) []string {
	out := keys[:0]
	for _, k := range keys {
		if strings.HasPrefix(k, s.verdictPrefix) {
			out = append(out, k)
		} else {
			s.logBadValue(s.index, k, errors.New("index member is not a verdict key"))
		}
	}
	return out
}

// logBadValue logs an undecodable value once per key and value.
func (s *Store) logBadValue(key, val string, err error) {
	s.mu.Lock()
	seen := s.badValues[key] == val
	if !seen {
		if len(s.badValues) > 1024 { // bounded: forget, at worst log again
			clear(s.badValues)
		}
		s.badValues[key] = val
	}
	s.mu.Unlock()
	if !seen {
		if len(val) > 64 {
			val = val[:64] + "…"
		}
		s.log.Warn("skipping undecodable state value", "key", key, "value", fmt.Sprintf("%q", val), "err", err)
	}
}

// Watch implements state.VerdictStore.
func (s *Store) Watch(fn func(state.Verdict)) (stop func()) { return s.watchers.Add(fn) }

// TryLease implements state.Leaser.
func (s *Store) TryLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if err := state.CheckLeaseArgs(name, holder, ttl); err != nil {
		return false, err
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	n, err := tryLeaseScript.Run(ctx, s.client, []string{s.leasePrefix + url.PathEscape(name)},
		holder, max(1, ttl.Milliseconds())).Int()
	s.observe(err)
	if err != nil {
		return false, fmt.Errorf("try lease %q: %w", name, err)
	}
	return n == 1, nil
}

// ReleaseLease implements state.Leaser.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	ctx, cancel := s.call(ctx)
	defer cancel()
	err := releaseLeaseScript.Run(ctx, s.client, []string{s.leasePrefix + url.PathEscape(name)}, holder).Err()
	s.observe(err)
	if err != nil {
		return fmt.Errorf("release lease %q: %w", name, err)
	}
	return nil
}

// Incr implements state.Counter.
func (s *Store) Incr(ctx context.Context, key string, window time.Duration) (int64, error) {
	if err := state.CheckCounterArgs(key, window); err != nil {
		return 0, err
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	n, err := incrScript.Run(ctx, s.client, []string{s.countPrefix + url.PathEscape(key)},
		strconv.FormatInt(max(1, window.Milliseconds()), 10)).Int64()
	s.observe(err)
	if err != nil {
		return 0, fmt.Errorf("count %q: %w", key, err)
	}
	return n, nil
}
