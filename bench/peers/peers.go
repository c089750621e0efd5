// Package peers starts the proxies the harness compares (handoff, HAProxy,
// nginx, Caddy, Varnish) and the "direct" baseline, each with a config
// rendered from the templates in this directory, on loopback ports chosen
// at run time, pinned to the proxy's CPUs.
//
// It owns the per-peer configs and the fairness settings (logging off,
// keep-alive to the backend, one worker per pinned core); it must not know
// which load runs against the peer or how results are reported.
package peers

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/handoff-proxy/handoff/bench/pin"
	"github.com/handoff-proxy/handoff/bench/selfcert"
)

//go:embed *.tmpl
var templates embed.FS

// Capability is a kind of traffic a scenario needs.
type Capability string

// Capabilities of peers.
const (
	// CapHTTP is HTTP/1.1 over plain TCP.
	CapHTTP Capability = "http"
	// CapH2C is HTTP/2 with prior knowledge over plain TCP.
	CapH2C Capability = "h2c"
	// CapTLS is HTTP/1.1 and HTTP/2 over TLS.
	CapTLS Capability = "tls"
	// CapCache is a shared HTTP cache in front of the backend.
	CapCache Capability = "cache"
	// CapWebSocket is WebSocket (HTTP/1.1 Upgrade) pass-through.
	CapWebSocket Capability = "ws"
	// CapH3 is HTTP/3 over QUIC on the HTTPS port (UDP).
	CapH3 Capability = "h3"
	// CapTCP is L4 TCP proxying.
	CapTCP Capability = "tcp"
	// CapRateLimit is HTTP/1.1 through a route with a per-process rate
	// limit (handoff only: it measures what the limiter adds per request).
	CapRateLimit Capability = "ratelimit"
	// CapRateLimitRedis is CapRateLimit with the limit kept in Redis
	// (state.redis), one round trip per request.
	CapRateLimitRedis Capability = "ratelimit-redis"
	// CapGzip is HTTP/1.1 with the response compressed by the proxy
	// with gzip at level 5 (handoff's level; nginx gzip_comp_level 5).
	CapGzip Capability = "gzip"
	// CapZstd is CapGzip with zstd (handoff only: nginx has no zstd).
	CapZstd Capability = "zstd"
)

// Peer names.
const (
	Direct  = "direct"
	Handoff = "handoff"
	HAProxy = "haproxy"
	Nginx   = "nginx"
	Caddy   = "caddy"
	Varnish = "varnish"
)

// Spec describes a peer.
type Spec struct {
	// Name of the peer (Direct, Handoff, …).
	Name string
	// Caps maps every capability the peer is compared on to "" when it
	// can carry that traffic, or to the reason it cannot ("not implemented
	// yet"), shown in the table as n/a. A capability absent from the map
	// means the peer is not part of that comparison at all (Varnish is
	// compared on caching only).
	Caps map[Capability]string
}

// Specs returns the peers in the order of the report, with the
// capabilities this machine's builds have. nginxStream is the path of
// nginx's dynamic stream module ("" when it is not installed).
func Specs(nginxStream string) []Spec {
	all := func() map[Capability]string {
		return map[Capability]string{CapHTTP: "", CapH2C: "", CapTLS: "", CapCache: "", CapWebSocket: "", CapTCP: ""}
	}
	handoff := all()
	handoff[CapRateLimit] = ""
	handoff[CapRateLimitRedis] = ""
	handoff[CapGzip] = ""
	handoff[CapZstd] = ""
	nginx := all()
	nginx[CapGzip] = ""
	nginx[CapZstd] = "no zstd module in Debian's nginx"
	handoff[CapH3] = ""
	haproxy := all()
	haproxy[CapH3] = "Debian's haproxy 2.6 is built without QUIC"
	nginx[CapH3] = "HTTP/3 needs nginx 1.25; Debian 12 has 1.22"
	if nginxStream == "" {
		nginx[CapTCP] = "stream module not installed (libnginx-mod-stream)"
	}
	caddy := all()
	caddy[CapGzip] = ""
	caddy[CapZstd] = ""
	caddy[CapH3] = ""
	caddy[CapCache] = "no cache module in Debian's caddy"
	caddy[CapTCP] = "no layer4 module in Debian's caddy"
	return []Spec{
		{Name: Direct, Caps: all()},
		{Name: Handoff, Caps: handoff},
		{Name: HAProxy, Caps: haproxy},
		{Name: Nginx, Caps: nginx},
		{Name: Caddy, Caps: caddy},
		{Name: Varnish, Caps: map[Capability]string{CapCache: ""}},
	}
}

// NginxStreamModule is where Debian installs nginx's stream module.
const NginxStreamModule = "/usr/lib/nginx/modules/ngx_stream_module.so"

// Backend is where the shared origin listens.
type Backend struct {
	// HTTP is host:port of HTTP/1.1 and h2c.
	HTTP string
	// HTTPS is host:port of HTTP/1.1 and HTTP/2 over TLS.
	HTTPS string
	// TCP is host:port of the byte source for L4.
	TCP string
}

// StartOptions configure Start.
type StartOptions struct {
	// Dir is a scratch directory for the rendered config, logs and
	// caches. Required.
	Dir string
	// Backend every peer forwards to.
	Backend Backend
	// TLS certificate and key the peers terminate TLS with.
	TLS selfcert.Files
	// Pin runs the peer on these CPUs.
	Pin pin.Options
	// Workers is the number of worker processes or threads (nginx
	// worker_processes, HAProxy nbthread, GOMAXPROCS for handoff and
	// Caddy, Varnish thread_pools). Zero means 1.
	Workers int
	// HandoffBinary is the handoff executable. Empty means "bin/handoff".
	HandoffBinary string
	// HandoffArgs are extra arguments for handoff (after -c FILE).
	HandoffArgs []string
	// HandoffEnv is extra environment for handoff ("K=V").
	HandoffEnv []string
	// UpstreamIdle, when non-zero, bounds how long handoff keeps idle
	// connections to the backend (the soak sets it so that a leak check
	// after the load is not fooled by a healthy idle pool).
	UpstreamIdle time.Duration
	// RateLimit, when not nil, puts a rate limit on handoff's default
	// route (the other peers ignore it).
	RateLimit *RateLimit
	// HTTP3 reports whether the peer also serves HTTP/3 on the HTTPS
	// port (handoff http3: true, Caddy protocols h3). False means TCP
	// only, so that the other TLS rows carry no Alt-Svc work.
	HTTP3 bool
	// NginxStream is the path of nginx's stream module; "" means no L4
	// for nginx.
	NginxStream string
	// ReadyTimeout bounds the wait for the peer's ports. Zero means 20s.
	ReadyTimeout time.Duration
	// Logger for lifecycle events. Nil discards.
	Logger *slog.Logger
}

// RateLimit is handoff's per-client rate limit for the rate-limit
// scenarios. The limit is set so high that it never denies: what is
// measured is the limiter's cost per request.
type RateLimit struct {
	// Redis is host:port of a redis-server that keeps the limit
	// (state.redis). Empty means the per-process limiter.
	Redis string
}

// Endpoints are where a started peer accepts traffic; "" means none.
type Endpoints struct {
	HTTP  string `json:"http,omitempty"`
	H2C   string `json:"h2c,omitempty"`
	HTTPS string `json:"https,omitempty"`
	TCP   string `json:"tcp,omitempty"`
	// Admin is handoff's admin listener (/metrics).
	Admin string `json:"admin,omitempty"`
}

// ErrNoBinary is returned (wrapped) when a peer's executable is missing.
var ErrNoBinary = errors.New("peer executable not found")

// Process is a running peer.
type Process struct {
	// Name of the peer.
	Name string
	// PID of the peer's main process; zero for Direct.
	PID int
	// Endpoints of the peer.
	Endpoints Endpoints
	// LogPath is the file with the peer's stdout and stderr.
	LogPath string

	cmd  *exec.Cmd
	done chan struct{}
	err  error // set before done is closed
}

// templateData is what the config templates see.
type templateData struct {
	Dir                   string
	HTTP, H2C, HTTPS, TCP string
	HTTPPort, HTTPSPort   string
	Admin                 string
	Backend, BackendTCP   string
	BackendHost           string
	BackendPort           string
	TLS                   selfcert.Files
	Workers               int
	NginxStream           string
	UpstreamIdle          string
	RateLimit             *RateLimit
	HTTP3                 bool
}

// Start starts the peer called name and waits until it answers.
func Start(ctx context.Context, name string, o StartOptions) (*Process, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if name == Direct {
		return &Process{Name: Direct, Endpoints: Endpoints{HTTP: o.Backend.HTTP, H2C: o.Backend.HTTP, HTTPS: o.Backend.HTTPS, TCP: o.Backend.TCP}}, nil
	}
	ports, err := freePorts(5)
	if err != nil {
		return nil, err
	}
	bhost, bport, err := net.SplitHostPort(o.Backend.HTTP)
	if err != nil {
		return nil, fmt.Errorf("backend address: %w", err)
	}
	d := templateData{
		Dir: o.Dir, HTTP: ports[0], H2C: ports[0], HTTPS: ports[1], TCP: ports[2], Admin: ports[3],
		Backend: o.Backend.HTTP, BackendTCP: o.Backend.TCP, BackendHost: bhost, BackendPort: bport,
		TLS: o.TLS, Workers: max(1, o.Workers), NginxStream: o.NginxStream, RateLimit: o.RateLimit,
		HTTP3: o.HTTP3,
	}
	_, d.HTTPPort, _ = net.SplitHostPort(d.HTTP)
	_, d.HTTPSPort, _ = net.SplitHostPort(d.HTTPS)
	if o.UpstreamIdle > 0 {
		d.UpstreamIdle = o.UpstreamIdle.String()
	}
	workers := strconv.Itoa(d.Workers)
	var (
		bin  string
		args []string
		env  []string
		ep   = Endpoints{HTTP: d.HTTP, H2C: d.H2C, HTTPS: d.HTTPS, TCP: d.TCP}
	)
	switch name {
	case Handoff:
		cfg, err := render(o.Dir, "handoff.yaml.tmpl", "handoff.yaml", d)
		if err != nil {
			return nil, err
		}
		bin = o.HandoffBinary
		if bin == "" {
			bin = "bin/handoff"
		}
		args = append([]string{"-c", cfg}, o.HandoffArgs...)
		env = append([]string{"GOMAXPROCS=" + workers}, o.HandoffEnv...)
		ep.Admin = d.Admin
		if d.BackendTCP == "" {
			ep.TCP = "" // no byte source, no tcp listener
		}
	case HAProxy:
		cfg, err := render(o.Dir, "haproxy.cfg.tmpl", "haproxy.cfg", d)
		if err != nil {
			return nil, err
		}
		bin, args = "haproxy", []string{"-db", "-f", cfg}
	case Nginx:
		d.H2C = ports[4]
		ep.H2C = d.H2C
		if d.NginxStream == "" {
			ep.TCP = ""
		}
		cfg, err := render(o.Dir, "nginx.conf.tmpl", "nginx.conf", d)
		if err != nil {
			return nil, err
		}
		bin, args = "nginx", []string{"-p", o.Dir, "-c", cfg, "-e", filepath.Join(o.Dir, "nginx-error.log")}
	case Caddy:
		cfg, err := render(o.Dir, "Caddyfile.tmpl", "Caddyfile", d)
		if err != nil {
			return nil, err
		}
		bin, args = "caddy", []string{"run", "--config", cfg, "--adapter", "caddyfile"}
		env = []string{"GOMAXPROCS=" + workers, "HOME=" + o.Dir, "XDG_DATA_HOME=" + o.Dir, "XDG_CONFIG_HOME=" + o.Dir}
		ep.TCP = ""
	case Varnish:
		vcl, err := render(o.Dir, "varnish.vcl.tmpl", "varnish.vcl", d)
		if err != nil {
			return nil, err
		}
		// -j none: no privilege separation jail (we run as whoever runs
		// the harness); -F: foreground (varnishd(1)).
		bin, args = "varnishd", []string{
			"-F", "-j", "none", "-n", filepath.Join(o.Dir, "varnish"), "-a", d.HTTP,
			"-f", vcl, "-s", "malloc,256m", "-p", "thread_pools=" + workers,
		}
		ep = Endpoints{HTTP: d.HTTP}
	default:
		return nil, fmt.Errorf("unknown peer %q", name)
	}
	if _, err := exec.LookPath(bin); err != nil {
		return nil, fmt.Errorf("start %s: %w: %w", name, ErrNoBinary, err)
	}

	logPath := filepath.Join(o.Dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create log: %w", err)
	}
	// Not CommandContext: Stop sends SIGTERM and waits, a context kill
	// would SIGKILL and leave nginx workers behind.
	cmd := pin.Command(context.Background(), o.Pin, bin, args...)
	base := os.Environ()
	if name == Handoff {
		// HANDOFF_* variables are a config layer of handoff's: the bench
		// config must be the file alone.
		base = slices.DeleteFunc(base, func(kv string) bool { return strings.HasPrefix(kv, "HANDOFF_") })
	}
	cmd.Env = append(base, env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = o.Dir
	// Own process group so that Stop reaches nginx's and Varnish's children.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, PID: cmd.Process.Pid, Endpoints: ep, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	log.Debug("peer started", "peer", name, "pid", p.PID, "endpoints", ep)
	rt := o.ReadyTimeout
	if rt == 0 {
		rt = 20 * time.Second
	}
	if err := p.waitReady(ctx, rt); err != nil {
		_ = p.Stop()
		tail, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("start %s: %w; log: %s", name, err, lastLines(tail, 10))
	}
	return p, nil
}

// waitReady waits until every endpoint accepts connections and a request
// goes through to the backend.
func (p *Process) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addrs := []string{p.Endpoints.HTTP, p.Endpoints.H2C, p.Endpoints.HTTPS, p.Endpoints.TCP}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var d net.Dialer
	for _, a := range addrs {
		if a == "" {
			continue
		}
		for {
			c, err := d.DialContext(ctx, "tcp", a)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-p.done:
				return fmt.Errorf("exited before listening: %w", p.exitErr())
			case <-ctx.Done():
				return fmt.Errorf("wait for %s: %w", a, ctx.Err())
			case <-tick.C:
			}
		}
	}
	// One real request: the peer is only ready once it reaches the backend.
	path := "/0"
	if p.Name == Varnish {
		path = "/cache/1k"
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.Endpoints.HTTP+path, nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited: %w", p.exitErr())
		case <-ctx.Done():
			return fmt.Errorf("first request: %w (last: %w)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

func (p *Process) exitErr() error {
	if p.err == nil {
		return errors.New("exit status 0")
	}
	return p.err
}

// Stop sends SIGTERM to the peer's process group, waits up to 10s, then
// SIGKILLs it. Stopping Direct does nothing.
func (p *Process) Stop() error {
	if p.cmd == nil {
		return nil
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Children that outlived the leader (nginx workers finishing).
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	return nil
}

// Signal sends sig to the peer's main process. Direct has none.
func (p *Process) Signal(sig os.Signal) error {
	if p.cmd == nil {
		return errors.New("direct has no process")
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %s: %w", p.Name, err)
	}
	return nil
}

// Done is closed when the peer's main process has exited.
func (p *Process) Done() <-chan struct{} {
	if p.done == nil {
		return nil
	}
	return p.done
}

func render(dir, tmpl, out string, d templateData) (string, error) {
	t, err := template.ParseFS(templates, tmpl)
	if err != nil {
		return "", fmt.Errorf("parse %s: %w", tmpl, err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, d); err != nil {
		return "", fmt.Errorf("render %s: %w", tmpl, err)
	}
	path := filepath.Join(dir, out)
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("write %s: %w", out, err)
	}
	return path, nil
}

// freePorts returns n distinct 127.0.0.1 addresses the kernel just handed
// out. They are closed before the peer binds them; on an otherwise idle
// loopback nothing takes them in between.
func freePorts(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	out := make([]string, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick free port: %w", err)
		}
		lns = append(lns, l)
		out = append(out, l.Addr().String())
	}
	return out, nil
}

func lastLines(b []byte, n int) string {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte(" | ")))
}
