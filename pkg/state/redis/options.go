// Package redis is the state.Store shared by every handoff process on one
// Redis (single node, Sentinel or Cluster, through go-redis's
// UniversalClient). It also builds that client, once per process, for the
// other features that keep state in the same Redis (cache, rate limits).
//
// Redis is never on a request's critical path: every call has a short
// timeout, an outage is logged once and reported by Up, and the
// subscription reconnects with backoff and resyncs when Redis is back.
// Every key is namespaced by the prefix and carries a TTL.
//
// It must not know how verdicts are reached or what the leases guard.
package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Defaults for the zero values of Options.
const (
	DefaultPrefix         = "handoff"
	DefaultTimeout        = 500 * time.Millisecond
	DefaultResyncInterval = 10 * time.Second
	DefaultMinBackoff     = 100 * time.Millisecond
	DefaultMaxBackoff     = 5 * time.Second
)

// Options configure the connection (config keys state.redis.*) and the
// store. Exactly one of URL, Sentinel and Cluster says where Redis is.
type Options struct {
	// URL of a single Redis node: redis://[[user]:password@]host:port[/db],
	// rediss:// for TLS (the server name is the URL's host), or
	// unix:///path/to/redis.sock[?db=N] for a Unix socket.
	URL string
	// Sentinel locates the master through Redis Sentinel. Zero means not
	// used.
	Sentinel Sentinel
	// Cluster lists seed nodes of a Redis Cluster. Zero means not used.
	Cluster Cluster
	// PasswordFile holds the Redis password (a trailing newline is
	// ignored); it wins over a password in URL. Empty means the URL's
	// password, or none.
	PasswordFile string
	// Prefix starts every key and channel name, so several deployments can
	// share one Redis. Empty means "handoff". It must not contain '{' or
	// '}', which Redis Cluster reads as a hash tag.
	Prefix string
	// Timeout bounds every Redis call: dial, read, write and the call as a
	// whole. Zero means 500ms.
	Timeout time.Duration
	// ResyncInterval is how often the store rereads every verdict, so a
	// missed notification heals. Zero means 10s.
	ResyncInterval time.Duration
	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts of the subscription; it doubles from MinBackoff up to
	// MaxBackoff, with jitter. Zero means 100ms and 5s.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives outage and bad-value reports. Nil discards them.
	Logger *slog.Logger
}

// Sentinel locates a master through Redis Sentinel.
type Sentinel struct {
	// MasterName is the name the sentinels monitor the master under.
	MasterName string
	// Addresses are sentinel host:port pairs.
	Addresses []string
}

// Cluster lists seed nodes of a Redis Cluster.
type Cluster struct {
	// Addresses are host:port pairs of some cluster nodes; the client
	// discovers the rest.
	Addresses []string
}

// Validate reports the first problem in o, or nil. It reads nothing from
// disk: NewClient reports an unreadable PasswordFile.
func (o Options) Validate() error {
	_, err := o.universal()
	return err
}

func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.ResyncInterval == 0 {
		o.ResyncInterval = DefaultResyncInterval
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// universal checks o and translates it into go-redis options, without the
// password file.
func (o Options) universal() (*goredis.UniversalOptions, error) {
	o = o.withDefaults()
	if err := o.check(); err != nil {
		return nil, err
	}
	u := &goredis.UniversalOptions{}
	switch {
	case o.URL != "":
		p, err := parseURL(o.URL)
		if err != nil {
			return nil, err
		}
		u.Addrs = []string{p.Addr}
		u.Username, u.Password, u.DB, u.TLSConfig = p.Username, p.Password, p.DB, p.TLSConfig
		if p.Network == "unix" {
			// UniversalOptions has no network: dial the socket path
			// whatever address the client asks for.
			path := p.Addr
			u.Dialer = func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			}
		}
	case o.Sentinel.MasterName != "":
		u.MasterName = o.Sentinel.MasterName
		u.Addrs = o.Sentinel.Addresses
	default:
		u.Addrs = o.Cluster.Addresses
		u.IsClusterMode = true
	}
	// Fail fast instead of queueing behind a dead server: the caller
	// falls back on local knowledge and the store reconnects with backoff.
	u.DialTimeout, u.ReadTimeout, u.WriteTimeout = o.Timeout, o.Timeout, o.Timeout
	u.PoolTimeout = o.Timeout
	u.ContextTimeoutEnabled = true
	u.MaxRetries = -1 // no retries: the timeout is the budget of the whole call
	u.ClientName = "handoff"
	// Maintenance notifications are a Redis Enterprise/Cloud handshake; on
	// other servers it is one wasted command per connection.
	u.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return u, nil
}

func (o Options) check() error {
	set := 0
	if o.URL != "" {
		set++
	}
	if o.Sentinel.MasterName != "" || len(o.Sentinel.Addresses) > 0 {
		set++
		if o.Sentinel.MasterName == "" || len(o.Sentinel.Addresses) == 0 {
			return errors.New("redis sentinel needs a master name and at least one address")
		}
		if err := checkAddrs("sentinel", o.Sentinel.Addresses); err != nil {
			return err
		}
	}
	if len(o.Cluster.Addresses) > 0 {
		set++
		if err := checkAddrs("cluster", o.Cluster.Addresses); err != nil {
			return err
		}
	}
	switch {
	case set == 0:
		return errors.New("redis needs one of url, sentinel or cluster")
	case set > 1:
		return errors.New("redis takes only one of url, sentinel and cluster")
	case strings.ContainsAny(o.Prefix, "{}"):
		return fmt.Errorf("redis prefix %q contains '{' or '}' (a cluster hash tag)", o.Prefix)
	case o.Timeout < 0 || o.ResyncInterval < 0 || o.MinBackoff < 0 || o.MaxBackoff < 0:
		return errors.New("redis timeout, resync interval and backoffs must not be negative")
	case o.MinBackoff > o.MaxBackoff:
		return fmt.Errorf("redis min backoff %v exceeds max backoff %v", o.MinBackoff, o.MaxBackoff)
	}
	return nil
}

func checkAddrs(what string, addrs []string) error {
	for _, a := range addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("redis %s address %q: %w", what, a, err)
		}
	}
	return nil
}

// parseURL parses a redis://, rediss:// or unix:// (unix:///run/redis.sock?db=0)
// URL with go-redis's parser,
// which owns the meaning of its query parameters; the error never echoes
// the URL, which may hold a password.
func parseURL(raw string) (*goredis.Options, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("redis url: not a URL")
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix" {
		return nil, fmt.Errorf("redis url: scheme %q, want redis, rediss or unix", u.Scheme)
	}
	p, err := goredis.ParseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("redis url: %s", strings.ReplaceAll(err.Error(), raw, u.Redacted()))
	}
	if p.TLSConfig != nil {
		p.TLSConfig.MinVersion = tls.VersionTLS12
	}
	return p, nil
}

// NewClient builds the process's Redis client from o: one per process,
// shared by the state store, the cache and the rate limiter, closed by
// whoever called NewClient. It does no I/O apart from reading
// PasswordFile; connections are made on first use.
func NewClient(o Options) (goredis.UniversalClient, error) {
	u, err := o.universal()
	if err != nil {
		return nil, err
	}
	if o.PasswordFile != "" {
		b, err := os.ReadFile(o.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("read redis password file: %w", err)
		}
		u.Password = strings.TrimRight(string(b), "\r\n")
	}
	return goredis.NewUniversalClient(u), nil
}
