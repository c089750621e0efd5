package config

import (
	stateredis "github.com/handoff-proxy/handoff/pkg/state/redis"
)

// State configures where handoff keeps what its processes share: health
// verdicts, the right to probe, rate-limit counters and cache entries.
type State struct {
	// Redis shared by every handoff process that names the same server
	// and prefix. Nil means everything stays in this process (the
	// embedded default).
	Redis *Redis `koanf:"redis" json:"redis,omitempty" yaml:"redis,omitempty"`
}

// Redis says how to reach Redis: exactly one of URL, Sentinel or Cluster.
type Redis struct {
	// URL of a single server: redis://[user@]host:port/db, or rediss://
	// for TLS.
	// A password in it is redacted from `handoff config` and the admin
	// API; prefer password_file.
	URL string `koanf:"url" json:"url,omitempty" yaml:"url,omitempty" redact:"true"`
	// Sentinel finds the master through Redis Sentinel.
	Sentinel RedisSentinel `koanf:"sentinel" json:"sentinel" yaml:"sentinel"`
	// Cluster addresses of a Redis Cluster.
	Cluster RedisCluster `koanf:"cluster" json:"cluster" yaml:"cluster"`
	// PasswordFile holds the password (one line), so that it stays out
	// of the config. Empty means the URL's password, or none.
	PasswordFile string `koanf:"password_file" json:"password_file,omitempty" yaml:"password_file,omitempty"`
	// Prefix of every key handoff writes. Empty means "handoff".
	Prefix string `koanf:"prefix" json:"prefix,omitempty" yaml:"prefix,omitempty"`
}

// RedisSentinel names the master and the sentinels to ask.
type RedisSentinel struct {
	MasterName string   `koanf:"master_name" json:"master_name,omitempty" yaml:"master_name,omitempty"`
	Addresses  []string `koanf:"addresses" json:"addresses,omitempty" yaml:"addresses,omitempty"`
}

// RedisCluster lists seed addresses of a Redis Cluster.
type RedisCluster struct {
	Addresses []string `koanf:"addresses" json:"addresses,omitempty" yaml:"addresses,omitempty"`
}

// RedisOptions converts r for package state/redis; nil when r is nil.
func (r *Redis) RedisOptions() *stateredis.Options {
	if r == nil {
		return nil
	}
	return &stateredis.Options{
		URL:          r.URL,
		Sentinel:     stateredis.Sentinel{MasterName: r.Sentinel.MasterName, Addresses: r.Sentinel.Addresses},
		Cluster:      stateredis.Cluster{Addresses: r.Cluster.Addresses},
		PasswordFile: r.PasswordFile,
		Prefix:       r.Prefix,
	}
}

func (v *validator) state(c *Config) {
	if o := c.State.Redis.RedisOptions(); o != nil {
		if err := o.Validate(); err != nil {
			v.errs.add("state.redis", "%v", err)
		}
	}
}
