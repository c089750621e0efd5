package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/handoff-proxy/handoff/pkg/state"
)

// Heartbeats live in two keys under the hash tag {P}, so a Cluster keeps
// them in one slot and the scripts below stay legal:
//
//	P:{P}:members      hash: member id -> heartbeat (versioned JSON)
//	P:{P}:members:exp  sorted set: member id by expiry (ms)
//
// Both carry a PX of the longest ttl, so a fleet that stops beating leaves
// nothing behind. Redis hashes have no per-field expiry before 7.4
// (HPEXPIRE), hence the sorted set.

// heartbeatScript stores one heartbeat and drops the expired ones.
// KEYS: hash, expiry set. ARGV: id, value, ttl ms, now ms.
var heartbeatScript = goredis.NewScript(`
local ttl = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, id in ipairs(gone) do
  redis.call('HDEL', KEYS[1], id)
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
for i = 1, 2 do
  if redis.call('PTTL', KEYS[i]) < ttl then
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
return 1
`)

// membersScript returns the heartbeats of the members not yet expired.
// KEYS: hash, expiry set. ARGV: now ms.
var membersScript = goredis.NewScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '+inf')
if #ids == 0 then
  return {}
end
return redis.call('HMGET', KEYS[1], unpack(ids))
`)

func (s *Store) memberKeys() []string {
	p := s.o.Prefix
	return []string{p + ":{" + p + "}:members", p + ":{" + p + "}:members:exp"}
}

// Heartbeat implements state.Fleet: one round trip.
func (s *Store) Heartbeat(ctx context.Context, m state.Member, ttl time.Duration) error {
	if err := state.CheckHeartbeatArgs(m, ttl); err != nil {
		return err
	}
	b, err := state.EncodeMember(m)
	if err != nil {
		return err
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	err = heartbeatScript.Run(ctx, s.client, s.memberKeys(), m.ID, b,
		max(1, ttl.Milliseconds()), time.Now().UnixMilli()).Err()
	s.observe(err)
	if err != nil {
		return fmt.Errorf("heartbeat %q: %w", m.ID, err)
	}
	return nil
}

// Members implements state.Fleet: one round trip.
func (s *Store) Members(ctx context.Context) ([]state.Member, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	keys := s.memberKeys()
	vals, err := membersScript.Run(ctx, s.client, keys, strconv.FormatInt(time.Now().UnixMilli(), 10)).Slice()
	if err == goredis.Nil {
		err = nil
	}
	s.observe(err)
	if err != nil {
		return nil, fmt.Errorf("read members: %w", err)
	}
	out := make([]state.Member, 0, len(vals))
	for _, raw := range vals {
		str, ok := raw.(string)
		if !ok { // dropped between the two reads: gone
			continue
		}
		m, err := state.DecodeMember([]byte(str))
		if err != nil {
			s.logBadValue(keys[0], str, err)
			continue
		}
		out = append(out, m)
	}
	return out, nil
}
