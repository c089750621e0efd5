package ratelimit

import (
	"context"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// gcraScript is GCRA in one round trip. The clock is Redis's own (TIME),
// so processes whose clocks disagree still share one schedule. Times are
// in microseconds: doubles hold them exactly until 2255. Replies:
// {allowed, remaining, retry_after_us, reset_after_us}.
var gcraScript = goredis.NewScript(`
if redis.replicate_commands then pcall(redis.replicate_commands) end
local burst = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if now < allow_at then
  return {0, 0, allow_at - now, tat - now}
end
local ttl = new_tat - now
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil(ttl / 1000))
return {1, math.floor((now - allow_at) / interval), 0, ttl}
`)

// Redis is a Limiter shared by every process on one Redis through the
// GCRA script: one round trip per decision.
type Redis struct {
	client goredis.UniversalClient
	prefix string
}

// NewRedis returns a limiter on client whose keys start with prefix
// (empty means "handoff:ratelimit:").
func NewRedis(client goredis.UniversalClient, prefix string) *Redis {
	if prefix == "" {
		prefix = "handoff:ratelimit:"
	}
	return &Redis{client: client, prefix: prefix}
}

// Allow implements Limiter.
func (r *Redis) Allow(ctx context.Context, key string, limit Limit) (Result, error) {
	if err := limit.Check(); err != nil {
		return Result{}, err
	}
	interval := limit.interval().Microseconds()
	if interval <= 0 {
		interval = 1 // more than a million a second: Redis's clock cannot do better
	}
	v, err := gcraScript.Run(ctx, r.client, []string{r.prefix + key}, limit.burst(), interval).Int64Slice()
	if err != nil {
		return Result{}, fmt.Errorf("rate limit in redis: %w", err)
	}
	if len(v) != 4 {
		return Result{}, fmt.Errorf("rate limit in redis: %d values in the reply, want 4", len(v))
	}
	return Result{
		Allowed:    v[0] == 1,
		Remaining:  int(v[1]),
		RetryAfter: time.Duration(v[2]) * time.Microsecond,
		ResetAfter: time.Duration(v[3]) * time.Microsecond,
	}, nil
}
