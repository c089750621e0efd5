package config

import (
	"time"

	"github.com/handoff-proxy/handoff/pkg/balance"
)

// Config is the whole effective configuration of one handoff process.
//
// It is split in two halves (see Static and Dynamic): the static half
// describes sockets and process-wide settings that can only change by
// re-binding or restarting; the dynamic half (routes, upstreams, policies) is
// swapped atomically on reload while in-flight requests finish on the old one.
type Config struct {
	// Listeners the proxy serves. A listener's Name matches the
	// FileDescriptorName= of a systemd socket unit (systemd.socket(5)); a
	// listener that systemd did not pass is bound by handoff itself.
	Listeners []Listener `koanf:"listeners" json:"listeners" yaml:"listeners"`
	// Routes, matched most specific first (see route package).
	Routes []Route `koanf:"routes" json:"routes" yaml:"routes"`
	// Upstreams by name; routes refer to them by that name.
	Upstreams map[string]Upstream `koanf:"upstreams" json:"upstreams" yaml:"upstreams"`
	// Admin API and metrics listener.
	Admin Admin `koanf:"admin" json:"admin" yaml:"admin"`
	// Log settings.
	Log Log `koanf:"log" json:"log" yaml:"log"`
	// Server-side (client-facing) timeouts.
	Timeouts ServerTimeouts `koanf:"timeouts" json:"timeouts" yaml:"timeouts"`
	// Limits on what clients may send.
	Limits Limits `koanf:"limits" json:"limits" yaml:"limits"`
	// TrustedProxies lists CIDRs (or bare IPs) whose X-Forwarded-*, Forwarded
	// and X-Request-Id headers are kept and extended. From any other peer
	// those headers are replaced. Empty means trust nobody.
	TrustedProxies []string `koanf:"trusted_proxies" json:"trusted_proxies" yaml:"trusted_proxies"`
	// ShutdownTimeout bounds how long SIGTERM waits for in-flight requests.
	// Zero means 30s.
	ShutdownTimeout time.Duration `koanf:"shutdown_timeout" json:"shutdown_timeout" yaml:"shutdown_timeout"`
	// IdleExit makes handoff exit cleanly once it has had no open client
	// connection and no request in flight for this long: with socket
	// activation systemd keeps the listening socket and starts handoff
	// again on the next connection ("serverless-style"). Zero means never.
	IdleExit time.Duration `koanf:"idle_exit" json:"idle_exit" yaml:"idle_exit"`
	// State is where the processes of one deployment share what they
	// know. Static: the Redis client is made once per process.
	State State `koanf:"state" json:"state,omitzero" yaml:"state,omitempty"`
	// Cache is the process's HTTP cache (see cache.go); routes opt in.
	Cache Cache `koanf:"cache" json:"cache,omitzero" yaml:"cache,omitempty"`
	// Tracing exports a span per request over OTLP/HTTP. The W3C
	// traceparent header is passed on (or started) either way.
	Tracing Tracing `koanf:"tracing" json:"tracing,omitzero" yaml:"tracing,omitempty"`
}

// Tracing configures OpenTelemetry span export. Dynamic: a reload
// replaces the exporter (the old one is flushed when its requests end).
type Tracing struct {
	// OTLPEndpoint is the collector's base URL ("http://127.0.0.1:4318";
	// spans go to its /v1/traces unless the URL has a path). Empty means
	// no export.
	OTLPEndpoint string `koanf:"otlp_endpoint" json:"otlp_endpoint,omitempty" yaml:"otlp_endpoint,omitempty"`
	// SampleRatio is the share, 0 to 1, of traces that start here which
	// are recorded; a request whose traceparent says sampled is always
	// recorded (parent-based). Nil means 1.
	SampleRatio *float64 `koanf:"sample_ratio" json:"sample_ratio,omitempty" yaml:"sample_ratio,omitempty"`
	// ServiceName is the service.name resource attribute. Empty means
	// "handoff".
	ServiceName string `koanf:"service_name" json:"service_name,omitempty" yaml:"service_name,omitempty"`
}

// Listener protocols.
const (
	// ProtocolHTTP serves HTTP/1.1 and HTTP/2 with prior knowledge (h2c,
	// RFC 9113 §3.3) on a plain TCP or Unix socket.
	ProtocolHTTP = "http"
	// ProtocolHTTPS terminates TLS and serves HTTP/1.1 and HTTP/2 (ALPN).
	ProtocolHTTPS = "https"
)

// QUICSuffix names the UDP socket of an http3 listener: listener "https"
// takes its QUIC socket from the fd named "https-quic"
// (FileDescriptorName= of a socket unit with ListenDatagram=).
const QUICSuffix = "-quic"

// Listener is one socket the proxy accepts connections on.
type Listener struct {
	// Name identifies the listener and matches FileDescriptorName= of the
	// systemd socket unit. Required, unique, [A-Za-z0-9_.-]+ (at most 255
	// bytes, the limit sd_pid_notify_with_fds(3) puts on FDNAME=).
	Name string `koanf:"name" json:"name" yaml:"name"`
	// Address to bind when systemd did not pass a socket of this name:
	// "host:port", ":port", "[::1]:port" or "unix:/path". Required unless
	// the listener always comes from systemd; empty then means "must be
	// passed by systemd".
	Address string `koanf:"address" json:"address,omitempty" yaml:"address,omitempty"`
	// Protocol is "http" (default), "https", "tcp" or "replicate"
	// (see l4.go).
	Protocol string `koanf:"protocol" json:"protocol" yaml:"protocol"`
	// TLS settings, required when Protocol is "https": certificates,
	// acme or both.
	TLS *ListenerTLS `koanf:"tls" json:"tls,omitempty" yaml:"tls,omitempty"`
	// FastPath serves HTTP/1.1 on an http listener with handoff's own
	// engine (pkg/h1) for plain proxy routes, handing everything else to
	// net/http. Nil means true; false serves every request with
	// net/http. Read at start only (a restart applies a change).
	FastPath *bool `koanf:"fast_path" json:"fast_path,omitempty" yaml:"fast_path,omitempty"`
	// Redirect answers every request of an http or https listener with
	// a redirect, before routes (the usual http→https listener: to:
	// "https://{hostname}{uri}"). Nil means requests go to routes.
	Redirect *RouteRedirect `koanf:"redirect" json:"redirect,omitempty" yaml:"redirect,omitempty"`
	// HTTP3 reports whether an https listener also serves HTTP/3 (RFC
	// 9114) over QUIC on a UDP socket: the one systemd passes under the
	// name "<name>-quic" (ListenDatagram=), or one bound on the same IP
	// and port as the TCP listener. TCP responses then advertise it with
	// Alt-Svc (RFC 7838). False means TCP only.
	HTTP3 bool `koanf:"http3" json:"http3,omitempty" yaml:"http3,omitempty"`

	// L4 keys (l4.go): tcp and replicate listeners; proxy_protocol on any.
	// Upstream names the upstream a tcp listener relays to. Required
	// for protocol tcp; its strategy and health checks (type tcp) apply,
	// and the hash strategy hashes the client address.
	Upstream string `koanf:"upstream" json:"upstream,omitempty" yaml:"upstream,omitempty"`
	// MaxConns caps the listener's open connections: past it a new one
	// is reset at once (tcp, replicate) or closed before a request is
	// read (http, https, forward_proxy). Zero means unlimited.
	MaxConns int `koanf:"max_conns" json:"max_conns,omitempty" yaml:"max_conns,omitempty"`
	// IdleTimeout closes a tcp connection when no byte moved either way
	// for this long (up to twice this long). Zero means 1h.
	IdleTimeout time.Duration `koanf:"idle_timeout" json:"idle_timeout,omitempty" yaml:"idle_timeout,omitempty"`
	// ConnectTimeout bounds one connect to a target of a tcp listener;
	// a failed connect is retried on another target. Zero means the
	// upstream's timeouts.dial, or 5s.
	ConnectTimeout time.Duration `koanf:"connect_timeout" json:"connect_timeout,omitempty" yaml:"connect_timeout,omitempty"`
	// Mirror copies what clients of a tcp listener send to more
	// targets. Nil means none.
	Mirror *Mirror `koanf:"mirror" json:"mirror,omitempty" yaml:"mirror,omitempty"`
	// ProxyProtocol accepts and sends PROXY protocol headers. Nil means
	// neither.
	ProxyProtocol *ProxyProtocol `koanf:"proxy_protocol" json:"proxy_protocol,omitempty" yaml:"proxy_protocol,omitempty"`
	// Inputs of a replicate listener: peers ("10.1.0.0/24",
	// "10.1.0.5", "10.1.0.5:9000" for a source port, IPv6 alike) whose
	// bytes are copied to every output. Required for protocol replicate.
	Inputs []string `koanf:"inputs" json:"inputs,omitempty" yaml:"inputs,omitempty"`
	// Outputs of a replicate listener: peers that receive the copies.
	// Anyone in neither list is refused at once.
	Outputs []string `koanf:"outputs" json:"outputs,omitempty" yaml:"outputs,omitempty"`
	// Buffer bounds, per output of a replicate listener, how far it may
	// fall behind before it is dropped (units as cache.max_memory). Empty
	// means 4MiB.
	Buffer string `koanf:"buffer" json:"buffer,omitempty" yaml:"buffer,omitempty"`
	// Access, auth, connect_ports, destinations, max_conns_per_client:
	// see access.go.
	Access            *Access       `koanf:"access" json:"access,omitempty" yaml:"access,omitempty"`
	Auth              *Auth         `koanf:"auth" json:"auth,omitempty" yaml:"auth,omitempty"`
	ConnectPorts      []int         `koanf:"connect_ports" json:"connect_ports,omitempty" yaml:"connect_ports,omitempty"`
	Destinations      *Destinations `koanf:"destinations" json:"destinations,omitempty" yaml:"destinations,omitempty"`
	MaxConnsPerClient int           `koanf:"max_conns_per_client" json:"max_conns_per_client,omitempty" yaml:"max_conns_per_client,omitempty"`
}

// ListenerTLS configures TLS termination.
type ListenerTLS struct {
	// Certificates to serve; the one whose names match the client's SNI is
	// chosen (crypto/tls Config.GetCertificate semantics); the first is the
	// default when nothing matches or SNI is absent.
	Certificates []Certificate `koanf:"certificates" json:"certificates" yaml:"certificates"`
	// ACME obtains and renews certificates automatically (acme.go). Nil
	// means static certificates only; with both, a static certificate
	// wins for the names it covers.
	ACME *ACME `koanf:"acme" json:"acme,omitempty" yaml:"acme,omitempty"`
	// MinVersion is "1.2" (default) or "1.3".
	MinVersion string `koanf:"min_version" json:"min_version,omitempty" yaml:"min_version,omitempty"`
	// ClientAuth asks clients for a certificate (mutual TLS). Nil means
	// none is asked for. Like the certificates, a reload reads it again.
	ClientAuth *ClientAuth `koanf:"client_auth" json:"client_auth,omitempty" yaml:"client_auth,omitempty"`
}

// Client certificate modes of ClientAuth.Mode.
const (
	// ClientAuthRequire refuses the handshake without a certificate that
	// chains to the CA (crypto/tls RequireAndVerifyClientCert).
	ClientAuthRequire = "require"
	// ClientAuthVerifyIfGiven serves clients without a certificate, and
	// refuses one that does not chain to the CA (VerifyClientCertIfGiven).
	ClientAuthVerifyIfGiven = "verify_if_given"
)

// ClientAuth configures client certificates on a TLS listener.
type ClientAuth struct {
	// CA is a PEM file of the certificates client certificates must
	// chain to. Required.
	CA string `koanf:"ca" json:"ca" yaml:"ca"`
	// Mode is "require" or "verify_if_given". Empty means require.
	Mode string `koanf:"mode" json:"mode,omitempty" yaml:"mode,omitempty"`
}

// Certificate is a PEM certificate chain and its private key on disk.
type Certificate struct {
	Cert string `koanf:"cert" json:"cert" yaml:"cert"`
	Key  string `koanf:"key" json:"key" yaml:"key"`
}

// Route sends matching requests to an upstream.
type Route struct {
	// Name labels the route in metrics and logs. Empty means "route<N>"
	// with N its index in the list.
	Name string `koanf:"name" json:"name,omitempty" yaml:"name,omitempty"`
	// Match conditions; all given conditions must hold. An empty match is
	// the default route.
	Match Match `koanf:"match" json:"match" yaml:"match"`
	// Upstream is the name of the upstream in Config.Upstreams. Required.
	Upstream string `koanf:"upstream" json:"upstream" yaml:"upstream"`
	// Cache of this route's responses (see cache.go). Nil means none.
	Cache *RouteCache `koanf:"cache" json:"cache,omitempty" yaml:"cache,omitempty"`
	// Access, rate limit and authentication of this route (access.go).
	Access    *Access    `koanf:"access" json:"access,omitempty" yaml:"access,omitempty"`
	RateLimit *RateLimit `koanf:"rate_limit" json:"rate_limit,omitempty" yaml:"rate_limit,omitempty"`
	Auth      *Auth      `koanf:"auth" json:"auth,omitempty" yaml:"auth,omitempty"`
	// Mirror copies a share of the route's requests to a shadow
	// upstream (mirror.go). Nil means none.
	Mirror *RouteMirror `koanf:"mirror" json:"mirror,omitempty" yaml:"mirror,omitempty"`
	// Header edits, redirect, path rewrites and static response (l7.go).
	Headers     *RouteHeaders  `koanf:"headers" json:"headers,omitempty" yaml:"headers,omitempty"`
	Redirect    *RouteRedirect `koanf:"redirect" json:"redirect,omitempty" yaml:"redirect,omitempty"`
	StripPrefix string         `koanf:"strip_prefix" json:"strip_prefix,omitempty" yaml:"strip_prefix,omitempty"`
	AddPrefix   string         `koanf:"add_prefix" json:"add_prefix,omitempty" yaml:"add_prefix,omitempty"`
	Rewrite     *RouteRewrite  `koanf:"rewrite" json:"rewrite,omitempty" yaml:"rewrite,omitempty"`
	Respond     *RouteRespond  `koanf:"respond" json:"respond,omitempty" yaml:"respond,omitempty"`
	// Timeouts and request body limit of this route, overriding the
	// server's and the upstream's (l7.go). Zero means theirs.
	Timeouts       *RouteTimeouts `koanf:"timeouts" json:"timeouts,omitempty" yaml:"timeouts,omitempty"`
	MaxRequestBody int64          `koanf:"max_request_body" json:"max_request_body,omitempty" yaml:"max_request_body,omitempty"`
	// Compress compresses the route's responses (l7.go). Nil means never.
	Compress *RouteCompress `koanf:"compress" json:"compress,omitempty" yaml:"compress,omitempty"`
}

// Match holds the conditions of a route.
type Match struct {
	// Host is an exact host name ("api.example.com") or a wildcard for
	// one or more labels ("*.example.com"). Compared case-insensitively,
	// without the port. Empty matches any host.
	Host string `koanf:"host" json:"host,omitempty" yaml:"host,omitempty"`
	// PathPrefix matches the request path on segment boundaries
	// ("/v1" matches "/v1" and "/v1/x", not "/v1x"); a prefix ending in
	// "/" matches anything below it. Empty matches any path.
	PathPrefix string `koanf:"path_prefix" json:"path_prefix,omitempty" yaml:"path_prefix,omitempty"`
	// Methods, any of which matches. Empty matches any method.
	Methods []string `koanf:"methods" json:"methods,omitempty" yaml:"methods,omitempty"`
	// Headers that must all be present with exactly these values
	// (header names case-insensitive). Empty matches anything.
	Headers map[string]string `koanf:"headers" json:"headers,omitempty" yaml:"headers,omitempty"`
}

// Load-balancing strategies; package balance owns them.
const (
	StrategyRoundRobin         = balance.StrategyRoundRobin
	StrategyWeightedRoundRobin = balance.StrategyWeightedRoundRobin
	StrategyLeastConn          = balance.StrategyLeastConn
	StrategyRandom             = balance.StrategyRandom
	StrategyP2C                = balance.StrategyP2C
	StrategyHash               = balance.StrategyHash
)

// Strategies lists every valid Upstream.Strategy (balance.Strategies).
func Strategies() []string { return balance.Strategies() }

// Upstream is a named pool of targets and how to reach them.
type Upstream struct {
	// Strategy picks a target per request. Empty means round_robin.
	Strategy string `koanf:"strategy" json:"strategy" yaml:"strategy"`
	// HashKey is what the hash strategy hashes: "client_ip" (default),
	// "header:<Name>" or "cookie:<name>". Ignored by other strategies.
	HashKey string `koanf:"hash_key" json:"hash_key,omitempty" yaml:"hash_key,omitempty"`
	// Targets of the pool. At least one.
	Targets []Target `koanf:"targets" json:"targets" yaml:"targets"`
	// ResolveEvery is how often targets given by host name or SRV record
	// are looked up again in DNS; each address found is a target. A
	// failed lookup keeps the last good targets. Zero means 30s.
	ResolveEvery time.Duration `koanf:"resolve_every" json:"resolve_every" yaml:"resolve_every"`
	// Resolver is the DNS server ("ip[:port]", port 53 by default) asked
	// for this upstream's targets. Empty means the system resolver
	// (/etc/resolv.conf).
	Resolver string `koanf:"resolver" json:"resolver,omitempty" yaml:"resolver,omitempty"`
	// TLS settings for https:// targets.
	TLS UpstreamTLS `koanf:"tls" json:"tls" yaml:"tls"`
	// ProxyProtocol sends a PROXY header on each new connection to
	// the targets (l4.go). Nil means none.
	ProxyProtocol *UpstreamProxyProtocol `koanf:"proxy_protocol" json:"proxy_protocol,omitempty" yaml:"proxy_protocol,omitempty"`
	// Retries is the most times one request is sent again after a
	// failure that RetryOn names. Nil means 3 (as HAProxy); zero disables retries.
	Retries *int `koanf:"retries" json:"retries,omitempty" yaml:"retries,omitempty"`
	// RetryOn lists the failures that are retried: "connect_failure"
	// (no connection could be set up, so nothing was sent: retried
	// whatever the method, on another target or, when there is none,
	// on the same one after a short backoff), "timeout" (no response
	// header in time) and "status_5xx" (the target answered 5xx; if
	// every retry fails the client gets the last response). Timeouts
	// and 5xx are retried only for idempotent requests (RFC 9110
	// §9.2.2) whose body was not partly sent, and only on another
	// target. Nil means [connect_failure, timeout], like nginx's
	// proxy_next_upstream error timeout.
	RetryOn []string `koanf:"retry_on" json:"retry_on,omitempty" yaml:"retry_on,omitempty"`
	// RetryBudget caps retries to this share of the upstream's requests
	// in the last 10s, plus 10 retries in any case (Finagle's
	// RetryBudget; Envoy's retry_budget), so that retries cannot
	// multiply the load on a failing upstream. "100%" allows as many
	// retries as requests; "0%" only the 10. The count restarts on
	// reload. Empty means 20%.
	RetryBudget string `koanf:"retry_budget" json:"retry_budget,omitempty" yaml:"retry_budget,omitempty"`
	// MaxConns caps the requests in flight to each target (each open
	// upstream connection carries one). A target's own max_conns
	// overrides it. Zero means unlimited.
	MaxConns int `koanf:"max_conns" json:"max_conns" yaml:"max_conns"`
	// Queue holds requests for which every eligible target is at
	// MaxConns, until a slot frees up.
	Queue UpstreamQueue `koanf:"queue" json:"queue" yaml:"queue"`
	// FailTimeout is how long a target is skipped after a failed dial
	// (passive health, as nginx max_fails=1 fail_timeout=). Zero means 10s.
	FailTimeout time.Duration `koanf:"fail_timeout" json:"fail_timeout" yaml:"fail_timeout"`
	// MaxIdlePerTarget bounds idle keep-alive connections kept per
	// target. Zero means 256: at least the requests in flight at once
	// (128 HTTP/2 streams measured 35 % more CPU per request with 64,
	// which closed and re-dialled connections).
	MaxIdlePerTarget int `koanf:"max_idle_per_target" json:"max_idle_per_target" yaml:"max_idle_per_target"`
	// Timeouts towards the targets.
	Timeouts UpstreamTimeouts `koanf:"timeouts" json:"timeouts" yaml:"timeouts"`
	// Health checks and outlier detection. Nil means the passive rules
	// with their defaults.
	Health *Health `koanf:"health" json:"health,omitempty" yaml:"health,omitempty"`
}

// Target is one backend address. Immutable config: its health and load
// are runtime state kept by the upstream package, keyed by address.
type Target struct {
	// Address is "host:port" (plain HTTP/1.1), "http://host:port",
	// "https://host[:port]" (TLS, HTTP/2 when the server offers it by
	// ALPN) or "h2c://host:port" (HTTP/2 with prior knowledge). A host
	// name is looked up every resolve_every, except for https:// without
	// tls.server_name (then it is dialed by name). Empty when SRV is set.
	Address string `koanf:"address" json:"address" yaml:"address"`
	// SRV is a DNS SRV name, "[scheme://]_service._proto.name" (scheme
	// http by default), whose records of the lowest priority are the
	// targets, with their port and weight (0 counts as 1; Weight is
	// ignored). Empty means Address is the target.
	SRV string `koanf:"srv" json:"srv,omitempty" yaml:"srv,omitempty"`
	// Weight for weighted strategies. Zero means 1.
	Weight int `koanf:"weight" json:"weight" yaml:"weight"`
	// MaxConns caps the requests in flight to this target. Zero means
	// the upstream's max_conns.
	MaxConns int `koanf:"max_conns" json:"max_conns,omitempty" yaml:"max_conns,omitempty"`
}

// Failures Upstream.RetryOn may name.
const (
	RetryOnConnectFailure = "connect_failure"
	RetryOnTimeout        = "timeout"
	RetryOnStatus5xx      = "status_5xx"
)

// RetryOnValues lists every valid Upstream.RetryOn entry.
func RetryOnValues() []string {
	return []string{RetryOnConnectFailure, RetryOnTimeout, RetryOnStatus5xx}
}

// UpstreamQueue bounds the wait for a free target when every eligible
// target is at max_conns. Past Size waiting requests, or after Timeout,
// a request gets 503.
type UpstreamQueue struct {
	// Size is how many requests may wait. Zero means none: a request
	// that finds every eligible target full gets 503 at once.
	Size int `koanf:"size" json:"size" yaml:"size"`
	// Timeout bounds one request's wait. Zero means 10s.
	Timeout time.Duration `koanf:"timeout" json:"timeout" yaml:"timeout"`
}

// UpstreamTLS configures TLS towards https:// targets.
type UpstreamTLS struct {
	// ServerName overrides the SNI and the name verified. Empty means the
	// target's host.
	ServerName string `koanf:"server_name" json:"server_name" yaml:"server_name"`
	// CA is a PEM file of roots to verify targets with. Empty means the
	// system roots.
	CA string `koanf:"ca" json:"ca" yaml:"ca"`
	// InsecureSkipVerify reports whether certificate verification is off.
	// Never on unless set.
	InsecureSkipVerify bool `koanf:"insecure_skip_verify" json:"insecure_skip_verify" yaml:"insecure_skip_verify"`
	// Cert and Key, both or neither: a client certificate for mTLS.
	Cert string `koanf:"cert" json:"cert,omitempty" yaml:"cert,omitempty"`
	Key  string `koanf:"key" json:"key,omitempty" yaml:"key,omitempty"`
}

// UpstreamTimeouts bound each step of talking to a target.
type UpstreamTimeouts struct {
	// Dial bounds the TCP connect. Zero means 5s.
	Dial time.Duration `koanf:"dial" json:"dial" yaml:"dial"`
	// TLSHandshake bounds the TLS handshake. Zero means 10s.
	TLSHandshake time.Duration `koanf:"tls_handshake" json:"tls_handshake" yaml:"tls_handshake"`
	// ResponseHeader bounds the wait for response headers after the
	// request was written (nginx proxy_read_timeout). Zero means 60s.
	// On the fast path it may run over by up to an eighth of itself
	// (1 s at most): a busy connection's timer is moved about once a
	// second, not twice per request.
	ResponseHeader time.Duration `koanf:"response_header" json:"response_header" yaml:"response_header"`
	// IdleConn is how long an idle keep-alive connection to a target is
	// kept. Zero means 90s.
	IdleConn time.Duration `koanf:"idle_conn" json:"idle_conn" yaml:"idle_conn"`
}

// ServerTimeouts bound what clients may take.
type ServerTimeouts struct {
	// ReadHeader bounds reading the request line and headers (slowloris
	// protection). Zero means 10s.
	ReadHeader time.Duration `koanf:"read_header" json:"read_header" yaml:"read_header"`
	// Idle is how long a keep-alive client connection may sit idle. Zero
	// means 120s.
	Idle time.Duration `koanf:"idle" json:"idle" yaml:"idle"`
	// BodyRead bounds the pause between two reads of a request body on
	// the HTTP/1.1 fast path; a client that stops sending is answered
	// 408 or cut off. Zero means 60s (nginx client_body_timeout).
	BodyRead time.Duration `koanf:"body_read" json:"body_read" yaml:"body_read"`
	// Request bounds a whole proxied request, upstream response included.
	// Zero means no limit, so that streams (SSE, WebSocket, long
	// downloads) are not cut; set it when you want a hard ceiling.
	Request time.Duration `koanf:"request" json:"request" yaml:"request"`
}

// Limits on client input.
type Limits struct {
	// MaxHeaderBytes bounds the request line plus headers. Zero means
	// 64 KiB; larger requests get 431 (RFC 6585 §5).
	MaxHeaderBytes int `koanf:"max_header_bytes" json:"max_header_bytes" yaml:"max_header_bytes"`
	// MaxHeaderFields bounds the number of request header fields; more
	// get 431. Zero means 100 (nginx and HAProxy allow about as many).
	MaxHeaderFields int `koanf:"max_header_fields" json:"max_header_fields" yaml:"max_header_fields"`
	// MaxRequestBody bounds a request body in bytes; larger bodies get
	// 413. Zero means unlimited (streamed, never buffered).
	MaxRequestBody int64 `koanf:"max_request_body" json:"max_request_body" yaml:"max_request_body"`
}

// Admin configures the admin API listener.
type Admin struct {
	// Listen is the address of the admin API when systemd passes no fd
	// named "admin". "off" disables it. Empty means "127.0.0.1:9901".
	Listen string `koanf:"listen" json:"listen" yaml:"listen"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info (default), warn or error.
	Level string `koanf:"level" json:"level" yaml:"level"`
	// Format is "json" (default) or "text" (logfmt).
	Format string `koanf:"format" json:"format" yaml:"format"`
	// Access reports whether one line per request is logged. Nil means
	// true.
	Access *bool `koanf:"access" json:"access,omitempty" yaml:"access,omitempty"`
	// AccessFormat is "json", "logfmt" or "combined" (Apache/nginx
	// Combined Log Format). Empty means the access lines go through the
	// process logger, in Format, as the other logs.
	AccessFormat string `koanf:"access_format" json:"access_format,omitempty" yaml:"access_format,omitempty"`
	// AccessFile is a file the access lines are appended to, reopened on
	// every reload (logrotate's postrotate: systemctl reload). Empty
	// means stdout (journald under systemd), with the other logs.
	AccessFile string `koanf:"access_file" json:"access_file,omitempty" yaml:"access_file,omitempty"`
	// AccessSample is the share, 0 to 1, of successful requests (status
	// below 400) logged; errors are always logged. Zero means all. A
	// reload applies it.
	AccessSample float64 `koanf:"access_sample" json:"access_sample,omitempty" yaml:"access_sample,omitempty"`
}
