//go:build integration

package integration

import (
	"fmt"
	"strings"
	"time"
)

// cfg is the handoff config a scenario writes to /etc/handoff/handoff.yaml
// (schema: pkg/config/types.go; YAML keys are the koanf tags).
type cfg struct {
	// Target of the default route's upstream "app".
	Target string
	// HTTPS adds the listener "https" (fd from handoff-https.socket)
	// with this certificate and key.
	HTTPSCert, HTTPSKey string
	// HTTP3 serves HTTP/3 on the "https" listener too (UDP socket from
	// handoff-https-quic.socket when it is started).
	HTTP3 bool
	// Direct adds a listener "direct" that handoff binds itself at this
	// address (no socket unit): it goes to the fd store.
	Direct string
	// IdleExit sets idle_exit.
	IdleExit time.Duration
	// BrokenUpstream makes the route point to this undefined upstream: a
	// config that must fail validation.
	BrokenUpstream string
	// Targets are more targets of "app", after Target.
	Targets []string
	// HealthPath enables active HTTP checks of "app" on this path every
	// HealthInterval (one pass or fail decides).
	HealthPath     string
	HealthInterval time.Duration
	// RedisURL sets state.redis.url: the processes share health verdicts
	// and the probing lease through it.
	RedisURL string
}

func (c cfg) yaml() string {
	var b strings.Builder
	b.WriteString("# written by the integration tests\nlisteners:\n  - name: http\n    protocol: http\n")
	if c.HTTPSCert != "" {
		fmt.Fprintf(&b, "  - name: https\n    protocol: https\n    tls:\n      certificates:\n        - cert: %s\n          key: %s\n", c.HTTPSCert, c.HTTPSKey)
		if c.HTTP3 {
			b.WriteString("    http3: true\n")
		}
	}
	if c.Direct != "" {
		fmt.Fprintf(&b, "  - name: direct\n    protocol: http\n    address: %q\n", c.Direct)
	}
	upstream := "app"
	if c.BrokenUpstream != "" {
		upstream = c.BrokenUpstream
	}
	fmt.Fprintf(&b, "routes:\n  - name: default\n    upstream: %s\n", upstream)
	fmt.Fprintf(&b, "upstreams:\n  app:\n    targets:\n      - address: %q\n", c.Target)
	for _, t := range c.Targets {
		fmt.Fprintf(&b, "      - address: %q\n", t)
	}
	if c.HealthPath != "" {
		fmt.Fprintf(&b, "    health:\n      active: {type: http, path: %q, interval: %s, timeout: %s, healthy_threshold: 1, unhealthy_threshold: 1}\n",
			c.HealthPath, c.HealthInterval, c.HealthInterval*4/5)
	}
	if c.RedisURL != "" {
		fmt.Fprintf(&b, "state:\n  redis:\n    url: %q\n", c.RedisURL)
	}
	// Access logs at several hundred requests per second would make
	// journald compete with the proxy for the two cores.
	b.WriteString("log:\n  level: info\n  format: text\n  access: false\n")
	if c.IdleExit > 0 {
		fmt.Fprintf(&b, "idle_exit: %s\n", c.IdleExit)
	}
	return b.String()
}
