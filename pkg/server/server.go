// Package server owns the lifecycle of a running proxy: it turns a config
// into live handlers (router, balancers, forwarders), serves them on the
// listeners it is handed, swaps the dynamic half of the config atomically on
// reload, reports progress to the supervisor (sd_notify) and drains on
// shutdown.
//
// It does not know where listeners come from (package activation hands them
// over), how the config is layered (package config), or how a request is
// forwarded (package proxy).
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/handoff-proxy/handoff/pkg/accesslog"
	"github.com/handoff-proxy/handoff/pkg/admin"
	"github.com/handoff-proxy/handoff/pkg/balance"
	"github.com/handoff-proxy/handoff/pkg/clientip"
	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/metrics"
	"github.com/handoff-proxy/handoff/pkg/proxy"
	"github.com/handoff-proxy/handoff/pkg/route"
	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// Notifier is what the server tells its supervisor (sd_notify(3)). A nil
// Notifier in Options means nobody listens.
type Notifier interface {
	// Send sends the lines in one datagram.
	Send(lines ...string) error
	// Reloading sends RELOADING=1 with MONOTONIC_USEC.
	Reloading() error
}

// Options configure a Server.
type Options struct {
	// Config is the initial, validated config.
	Config *config.Config
	// Load re-reads every config layer on reload and returns a validated
	// config or the errors found. Nil disables reload.
	Load func() (*config.Config, error)
	// Listeners by config listener name. Every configured listener must
	// be present; the server takes ownership and closes them.
	Listeners map[string]net.Listener
	// Admin is the admin API listener, or nil for none.
	Admin net.Listener
	// Notifier receives READY/RELOADING/STOPPING/STATUS. Nil means none.
	Notifier Notifier
	// Logger for server events; access logs go to AccessLogger.
	Logger *slog.Logger
	// AccessLogger receives one line per request. Nil means Logger.
	AccessLogger *slog.Logger
	// Version is reported in build info and STATUS.
	Version string
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// ReadyLines are sent along with the first READY=1, e.g. MAINPID=
	// when this process replaces another on upgrade.
	ReadyLines []string
	// OnReady is called once all listeners are serving and READY=1 was
	// sent. Nil means nothing.
	OnReady func()
	// Upgrade starts a replacement process that takes over the
	// listeners and returns once it is serving (package upgrade). Nil
	// disables upgrades. On success this server drains and Run returns
	// without sending STOPPING=1: the new process is the service now.
	Upgrade func(ctx context.Context) (pid int, err error)
	// BinaryReplaced reports whether this process's executable was
	// replaced on disk (package upgrade), for GET /api/v1/upgrade: the
	// reload helper asks, because ExecReload= may not read our
	// /proc/PID/exe itself (see upgrade.BinaryReplaced). Nil means never.
	BinaryReplaced func() (bool, error)
}

// Server is a running proxy. Create with New, then Run.
type Server struct {
	opts     Options
	log      *slog.Logger
	now      func() time.Time
	metrics  *metrics.Metrics
	registry *upstream.Registry
	tports   *proxy.Transports

	// current is the live dynamic half: requests load it once and keep it
	// to the end, so a reload never changes a request midway.
	current atomic.Pointer[dynamic]
	// cfg is the config current was built from (for the admin API).
	cfg atomic.Pointer[config.Config]
	// certs per TLS listener, swapped on reload.
	certs map[string]*certStore

	reloads    atomic.Uint64
	lastReload atomic.Pointer[ReloadResult]

	// fresh holds accepted connections that have not reached a handler
	// yet; shutdown waits for them (see drain).
	freshMu  sync.Mutex
	fresh    map[net.Conn]*connEntry
	draining atomic.Bool

	inFlight    atomic.Int64
	conns       atomic.Int64
	lastActive  atomic.Int64 // unix nanos of the last time inFlight or conns dropped to zero
	shuttingDwn atomic.Bool
	handlers    sync.WaitGroup

	reloadCh chan chan ReloadResult
	pingCh   chan chan struct{}
	// execCh runs a function on the main loop (debug builds use it to
	// wedge the loop and prove the watchdog).
	execCh chan func()

	upgrading  sync.Mutex
	handedOver chan int // receives the new process's pid after an upgrade
}

// ReloadResult says how a reload went.
type ReloadResult struct {
	// Generation counts successful and failed reloads since start.
	Generation uint64 `json:"generation"`
	// Error is why the reload failed; empty on success.
	Error string `json:"error,omitempty"`
	// StaticChanges lists static keys that changed and need a restart.
	StaticChanges []string `json:"static_changes,omitempty"`
	// At is when the reload finished.
	At time.Time `json:"at"`
}

// dynamic is the part of the running state rebuilt on every reload.
type dynamic struct {
	handler http.Handler
	pools   []*upstream.Pool
	routes  int
}

// New builds a server from opts without serving anything yet.
func New(opts Options) (*Server, error) {
	if opts.Config == nil {
		return nil, errors.New("server: no config")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.AccessLogger == nil {
		opts.AccessLogger = opts.Logger
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{
		opts:       opts,
		log:        opts.Logger,
		now:        opts.Now,
		registry:   upstream.NewRegistry(),
		certs:      make(map[string]*certStore),
		reloadCh:   make(chan chan ReloadResult),
		pingCh:     make(chan chan struct{}),
		execCh:     make(chan func()),
		handedOver: make(chan int, 1),
		fresh:      make(map[net.Conn]*connEntry),
	}
	s.lastActive.Store(s.now().UnixNano())
	s.metrics = metrics.New(metrics.Options{
		Version: opts.Version,
		Pools:   s.pools,
		Now:     opts.Now,
		Logger:  opts.Logger,
	})
	s.tports = proxy.NewTransports(opts.Logger)
	for _, l := range opts.Config.Listeners {
		if _, ok := opts.Listeners[l.Name]; !ok {
			return nil, fmt.Errorf("server: no listener for %q", l.Name)
		}
		if l.Protocol == config.ProtocolHTTPS {
			cs, err := loadCerts(l.TLS)
			if err != nil {
				return nil, fmt.Errorf("listener %q: %w", l.Name, err)
			}
			s.certs[l.Name] = cs
		}
	}
	d, err := s.build(opts.Config)
	if err != nil {
		return nil, err
	}
	s.current.Store(d)
	s.cfg.Store(opts.Config)
	return s, nil
}

// build turns the dynamic half of cfg into handlers.
func (s *Server) build(cfg *config.Config) (*dynamic, error) {
	trusted, err := clientip.ParsePrefixes(cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	if err := s.tports.Update(cfg.Upstreams); err != nil {
		return nil, fmt.Errorf("build transports: %w", err)
	}
	names := make([]string, 0, len(cfg.Upstreams))
	for n := range cfg.Upstreams {
		names = append(names, n)
	}
	sort.Strings(names)
	handlers := make(map[string]http.Handler, len(names))
	pools := make([]*upstream.Pool, 0, len(names))
	for _, name := range names {
		up := cfg.Upstreams[name]
		pool, err := s.registry.NewPool(name, proxy.PoolSpec(up))
		if err != nil {
			return nil, err
		}
		sel, err := balance.New(pool, up.Strategy, up.HashKey, balance.Options{})
		if err != nil {
			return nil, fmt.Errorf("upstream %q: %w", name, err)
		}
		h, err := proxy.New(proxy.Options{
			Pool:           pool,
			Upstream:       up,
			Selector:       sel,
			Transports:     s.tports,
			TrustedProxies: trusted,
			Logger:         s.log,
			Observer:       s.metrics,
			Now:            s.now,
			MaxRequestBody: cfg.Limits.MaxRequestBody,
			RequestTimeout: cfg.Timeouts.Request,
		})
		if err != nil {
			return nil, fmt.Errorf("upstream %q: %w", name, err)
		}
		handlers[name] = h
		pools = append(pools, pool)
	}
	table, err := route.New(routeSpecs(cfg.Routes), handlers)
	if err != nil {
		return nil, fmt.Errorf("build routes: %w", err)
	}
	var h http.Handler = table
	h = s.metrics.Middleware(h)
	if cfg.Log.Access == nil || *cfg.Log.Access {
		h = accesslog.Middleware(s.opts.AccessLogger, h)
	}
	return &dynamic{handler: h, pools: pools, routes: len(cfg.Routes)}, nil
}

// routeSpecs converts the configured routes for package route.
func routeSpecs(rs []config.Route) []route.Spec {
	out := make([]route.Spec, len(rs))
	for i, r := range rs {
		out[i] = route.Spec{Name: r.Name, Upstream: r.Upstream, Match: route.Conditions{
			Host: r.Match.Host, PathPrefix: r.Match.PathPrefix, Methods: r.Match.Methods, Headers: r.Match.Headers,
		}}
	}
	return out
}

func (s *Server) pools() []*upstream.Pool {
	if d := s.current.Load(); d != nil {
		return d.pools
	}
	return nil
}

// ServeHTTP serves a request on the current config. It counts the request
// as in flight, so that shutdown and idle exit can wait for it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handlers.Add(1)
	s.inFlight.Add(1)
	if e, ok := r.Context().Value(connKey{}).(*connEntry); ok && !e.served.Load() {
		e.served.Store(true)
	}
	defer func() {
		if s.inFlight.Add(-1) == 0 {
			s.lastActive.Store(s.now().UnixNano())
		}
		s.handlers.Done()
	}()
	s.current.Load().handler.ServeHTTP(w, r)
}

func (s *Server) connState(c net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		s.conns.Add(1)
	case http.StateHijacked, http.StateClosed:
		s.freshMu.Lock()
		delete(s.fresh, c)
		s.freshMu.Unlock()
		if s.conns.Add(-1) == 0 {
			s.lastActive.Store(s.now().UnixNano())
		}
	}
}

type connKey struct{}

// connEntry tracks whether a connection's first request reached a handler.
type connEntry struct{ served atomic.Bool }

// connContext registers an accepted connection and remembers its entry in
// the connection's context, so that ServeHTTP can mark it served with one
// atomic store.
func (s *Server) connContext(ctx context.Context, c net.Conn) context.Context {
	e := &connEntry{}
	s.freshMu.Lock()
	s.fresh[c] = e
	s.freshMu.Unlock()
	return context.WithValue(ctx, connKey{}, e)
}

// freshConns counts accepted connections whose first request has not
// reached a handler.
func (s *Server) freshConns() int {
	s.freshMu.Lock()
	defer s.freshMu.Unlock()
	n := 0
	for _, e := range s.fresh {
		if !e.served.Load() {
			n++
		}
	}
	return n
}

// Run serves until ctx is cancelled, then drains and returns. It returns an
// error only when serving could not start or a listener failed.
func (s *Server) Run(ctx context.Context) error {
	cfg := s.opts.Config
	baseCtx, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()

	var servers []*http.Server
	errc := make(chan error, len(cfg.Listeners)+1)
	var serving, accepting sync.WaitGroup
	for _, lc := range cfg.Listeners {
		ln := s.opts.Listeners[lc.Name]
		srv := s.httpServer(lc, cfg, baseCtx)
		servers = append(servers, srv)
		serving.Add(1)
		accepting.Add(1)
		go func() {
			defer serving.Done()
			// Serve returns once Accept fails; every connection it
			// accepted before that is registered (connContext) by then.
			defer accepting.Done()
			var err error
			if lc.Protocol == config.ProtocolHTTPS {
				err = srv.Serve(tls.NewListener(ln, srv.TLSConfig))
			} else {
				err = srv.Serve(ln)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) && !(s.draining.Load() && errors.Is(err, net.ErrClosed)) {
				errc <- fmt.Errorf("listener %q: %w", lc.Name, err)
			}
		}()
	}
	var adminSrv *http.Server
	if s.opts.Admin != nil {
		adminSrv = &http.Server{
			Handler:           s.adminHandler(),
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		}
		serving.Add(1)
		go func() {
			defer serving.Done()
			if err := adminSrv.Serve(s.opts.Admin); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("admin listener: %w", err)
			}
		}()
	}

	s.notifyStatus("serving", append([]string{"READY=1"}, s.opts.ReadyLines...)...)
	if s.opts.OnReady != nil {
		s.opts.OnReady()
	}
	adminAddr := "off"
	if s.opts.Admin != nil {
		adminAddr = s.opts.Admin.Addr().String()
	}
	s.log.Info("serving", "listeners", listenerSummary(cfg, s.opts.Listeners), "admin", adminAddr,
		"routes", len(cfg.Routes), "upstreams", len(cfg.Upstreams), "version", s.opts.Version)

	// idle_exit is reloadable: the ticker always runs and reads the
	// current value.
	idleTicker := time.NewTicker(250 * time.Millisecond)
	defer idleTicker.Stop()

	var runErr error
	handedOver := false
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errc:
			runErr = err
			break loop
		case reply := <-s.reloadCh:
			reply <- s.reload()
		case reply := <-s.pingCh:
			close(reply)
		case f := <-s.execCh:
			f()
		case pid := <-s.handedOver:
			s.log.Info("upgrade: new process is serving, draining", "pid", pid)
			handedOver = true
			break loop
		case <-idleTicker.C:
			if d := s.cfg.Load().IdleExit; d > 0 && s.idleFor() >= d {
				s.log.Info("idle, exiting", "idle_exit", d)
				break loop
			}
		}
	}

	s.shutdown(servers, adminSrv, cancelBase, handedOver, &accepting)
	serving.Wait()
	s.tports.Close()
	return runErr
}

// idleFor says how long there has been no connection and no request.
func (s *Server) idleFor() time.Duration {
	if s.inFlight.Load() > 0 || s.conns.Load() > 0 {
		return 0
	}
	return s.now().Sub(time.Unix(0, s.lastActive.Load()))
}

func (s *Server) shutdown(servers []*http.Server, adminSrv *http.Server, cancelBase context.CancelFunc, handedOver bool, accepting *sync.WaitGroup) {
	s.shuttingDwn.Store(true)
	if !handedOver {
		// After an upgrade the new process is the main process; with
		// NotifyAccess=all a STOPPING=1 from us would stop the service.
		s.notifyStatus("draining", "STOPPING=1")
	}
	timeout := s.opts.Config.ShutdownTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	s.log.Info("shutting down", "timeout", timeout, "in_flight", s.inFlight.Load())
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	s.drain(ctx, servers, accepting)
	// Shutdown closes what is idle now and waits for active connections.
	var wg sync.WaitGroup
	for _, srv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = srv.Shutdown(ctx)
		}()
	}
	wg.Wait()
	// Hijacked connections (WebSocket and other upgrades) are not tracked
	// by http.Server.Shutdown; their handlers are, by s.handlers.
	done := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn("shutdown timeout reached, cancelling remaining requests", "in_flight", s.inFlight.Load())
		cancelBase()
		for _, srv := range servers {
			_ = srv.Close()
		}
		<-done
	}
	if adminSrv != nil {
		actx, acancel := context.WithTimeout(context.Background(), time.Second)
		_ = adminSrv.Shutdown(actx)
		acancel()
		_ = adminSrv.Close()
	}
}

// freshGrace bounds how long drain waits for accepted connections that
// have not sent a request yet.
const freshGrace = 5 * time.Second

// drain prepares Shutdown so that no accepted request goes unanswered.
// http.Server.Shutdown alone drops a request whose connection was accepted
// but whose request line was still being read when it started: conn.serve
// returns without a response once it sees the server shutting down
// (golang/go#75591). That is exactly what happens to connections the kernel
// handed over just before a restart or upgrade. So: stop accepting (the
// socket stays open where systemd, the fd store or the new process holds
// it, and its backlog goes to them), turn keep-alive off so every
// connection closes after its current response (RFC 9112 §9.6), then wait
// until each accepted connection has reached a handler or closed.
func (s *Server) drain(ctx context.Context, servers []*http.Server, accepting *sync.WaitGroup) {
	s.draining.Store(true)
	for _, ln := range s.opts.Listeners {
		_ = ln.Close()
	}
	// A connection Accept returned just before the close is registered
	// by its Serve loop only afterwards: wait until every Serve loop has
	// seen the closed listener, so that freshConns sees them all.
	accepted := make(chan struct{})
	go func() {
		accepting.Wait()
		close(accepted)
	}()
	select {
	case <-accepted:
	case <-ctx.Done():
	}
	for _, srv := range servers {
		// Closes idle HTTP/1 connections; a client racing a request onto
		// one sees the close before any byte of a response and may retry
		// it (RFC 9112 §9.3.1), as with every HTTP/1.1 server.
		srv.SetKeepAlivesEnabled(false)
	}
	deadline := time.NewTimer(freshGrace)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for s.freshConns() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			s.log.Info("drain: connections that sent no request yet are closed", "count", s.freshConns())
			return
		case <-tick.C:
		}
	}
}

func (s *Server) httpServer(lc config.Listener, cfg *config.Config, base context.Context) *http.Server {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: orDefault(cfg.Timeouts.ReadHeader, 10*time.Second),
		IdleTimeout:       orDefault(cfg.Timeouts.Idle, 120*time.Second),
		MaxHeaderBytes:    cfg.Limits.MaxHeaderBytes,
		ConnState:         s.connState,
		ConnContext:       s.connContext,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	if srv.MaxHeaderBytes == 0 {
		srv.MaxHeaderBytes = 64 << 10
	}
	var p http.Protocols
	p.SetHTTP1(true)
	if lc.Protocol == config.ProtocolHTTPS {
		// RFC 9113 §3.2: HTTP/2 over TLS is negotiated with ALPN "h2".
		p.SetHTTP2(true)
		srv.TLSConfig = &tls.Config{
			MinVersion:     tlsVersion(lc.TLS),
			GetCertificate: s.certs[lc.Name].get,
			NextProtos:     []string{"h2", "http/1.1"},
		}
	} else {
		// RFC 9113 §3.3: HTTP/2 with prior knowledge on cleartext. The
		// Upgrade: h2c dance (RFC 7540 §3.2) is deliberately not offered:
		// it is removed from RFC 9113 and is a request-smuggling vector.
		p.SetUnencryptedHTTP2(true)
	}
	srv.Protocols = &p
	return srv
}

func tlsVersion(t *config.ListenerTLS) uint16 {
	if t != nil && t.MinVersion == "1.3" {
		return tls.VersionTLS13
	}
	return tls.VersionTLS12
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Reload asks the running server to reload its config and waits for the
// outcome. It is safe from any goroutine (a signal handler, the admin API).
func (s *Server) Reload(ctx context.Context) (ReloadResult, error) {
	reply := make(chan ReloadResult, 1)
	select {
	case s.reloadCh <- reply:
	case <-ctx.Done():
		return ReloadResult{}, ctx.Err()
	}
	select {
	case r := <-reply:
		return r, nil
	case <-ctx.Done():
		return ReloadResult{}, ctx.Err()
	}
}

// LastReload returns the outcome of the most recent reload, if any.
func (s *Server) LastReload() (ReloadResult, bool) {
	r := s.lastReload.Load()
	if r == nil {
		return ReloadResult{Generation: s.reloads.Load()}, false
	}
	return *r, true
}

// reload runs on the Run goroutine only (Reload hands it over through
// reloadCh), so reloads are serialised without a lock.
func (s *Server) reload() ReloadResult {
	// sd_notify(3): RELOADING=1 with MONOTONIC_USEC, and READY=1 must
	// follow even when the reload fails, or the unit hangs in "reloading".
	s.notify(func(n Notifier) error { return n.Reloading() })
	status := "reloaded"
	defer func() { s.notifyStatus(status, "READY=1") }()

	res := ReloadResult{Generation: s.reloads.Add(1)}
	defer func() {
		res.At = s.now()
		s.lastReload.Store(&res)
	}()
	if s.opts.Load == nil {
		res.Error = "reload not supported"
		return res
	}
	cfg, err := s.opts.Load()
	if err == nil {
		err = s.apply(cfg, &res)
	}
	if err != nil {
		res.Error = err.Error()
		s.metrics.Reload(false)
		s.log.Error("reload failed, keeping the running config", "error", err)
		status = "reload failed, old config serving: " + firstLine(err.Error())
		return res
	}
	s.metrics.Reload(true)
	s.log.Info("config reloaded", "routes", len(cfg.Routes), "upstreams", len(cfg.Upstreams), "static_changes", res.StaticChanges)
	if len(res.StaticChanges) > 0 {
		status = "reloaded; restart needed for: " + strings.Join(res.StaticChanges, ", ")
	}
	return res
}

func (s *Server) apply(cfg *config.Config, res *ReloadResult) error {
	old := s.cfg.Load()
	// Certificates of existing TLS listeners are reloaded in place; other
	// listener changes need new sockets and are reported.
	newCerts := make(map[string]*certificates)
	for _, l := range cfg.Listeners {
		if l.Protocol != config.ProtocolHTTPS || s.certs[l.Name] == nil {
			continue
		}
		c, err := parseCerts(l.TLS)
		if err != nil {
			return fmt.Errorf("listener %q: %w", l.Name, err)
		}
		newCerts[l.Name] = c
	}
	d, err := s.build(cfg)
	if err != nil {
		return err
	}
	for name, c := range newCerts {
		s.certs[name].set(c)
	}
	s.current.Store(d)
	s.cfg.Store(cfg)
	s.registry.Retain(d.pools)
	res.StaticChanges = staticChangesIgnoringCerts(old, cfg)
	if len(res.StaticChanges) > 0 {
		s.log.Warn("static config changed; it takes effect on restart or upgrade", "keys", res.StaticChanges)
	}
	return nil
}

func staticChangesIgnoringCerts(old, cfg *config.Config) []string {
	var out []string
	for _, k := range config.StaticChanges(old, cfg) {
		if strings.Contains(k, ".tls.certificates") {
			continue
		}
		out = append(out, k)
	}
	return out
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

func (s *Server) notify(f func(Notifier) error) {
	if s.opts.Notifier == nil {
		return
	}
	if err := f(s.opts.Notifier); err != nil {
		s.log.Warn("sd_notify failed", "error", err)
	}
}

// notifyStatus sends the state lines (READY=1, STOPPING=1) together with
// STATUS= and a one-line summary in one datagram, so that systemctl status
// never shows a state with a stale reason (sd_notify(3)).
func (s *Server) notifyStatus(state string, lines ...string) {
	if s.opts.Notifier == nil {
		return
	}
	cfg := s.cfg.Load()
	healthy, total := 0, 0
	now := s.now()
	for _, p := range s.pools() {
		healthy += p.Healthy(now)
		total += len(p.Targets)
	}
	// STATUS= is one line: a multi-line reason is cut at the first.
	msg := fmt.Sprintf("STATUS=%s: %d listeners, %d routes, %d upstreams, targets %d/%d healthy",
		firstLine(state), len(cfg.Listeners), len(cfg.Routes), len(cfg.Upstreams), healthy, total)
	s.notify(func(n Notifier) error { return n.Send(append(lines, msg)...) })
}

func listenerSummary(cfg *config.Config, lns map[string]net.Listener) []string {
	out := make([]string, 0, len(cfg.Listeners))
	for _, l := range cfg.Listeners {
		out = append(out, fmt.Sprintf("%s=%s://%s", l.Name, l.Protocol, lns[l.Name].Addr()))
	}
	return out
}

// Healthy reports whether the server's main loop answers before ctx ends:
// the watchdog pings systemd only while it does (sd_watchdog_enabled(3)), so
// a wedged loop gets the service restarted.
func (s *Server) Healthy(ctx context.Context) bool {
	reply := make(chan struct{})
	select {
	case s.pingCh <- reply:
	case <-ctx.Done():
		return false
	}
	select {
	case <-reply:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", admin.New(admin.Options{
		Metrics:   s.metrics.Handler(),
		Ready:     func() bool { return !s.shuttingDwn.Load() },
		Upstreams: s.pools,
		Config:    func() *config.Config { return config.Redacted(s.cfg.Load()) },
		Now:       s.now,
		Logger:    s.log,
	}))
	mux.HandleFunc("/api/v1/reload", s.serveReload)
	mux.HandleFunc("/api/v1/upgrade", s.serveUpgrade)
	s.debugRoutes(mux)
	return mux
}

// ErrUpgradeUnsupported is returned by Upgrade when no Upgrade func was
// configured.
var ErrUpgradeUnsupported = errors.New("upgrade not supported")

// ErrUpgradeInProgress is returned by Upgrade while another runs.
var ErrUpgradeInProgress = errors.New("an upgrade is already in progress")

// Upgrade starts the replacement process and, once it serves, makes Run
// drain and return. On failure this server keeps serving and says why in
// STATUS=. It returns the new process's pid.
func (s *Server) Upgrade(ctx context.Context) (int, error) {
	pid, err := s.upgrade(ctx)
	if err != nil {
		s.notifyStatus("upgrade failed, old process serving: " + err.Error())
	}
	return pid, err
}

func (s *Server) upgrade(ctx context.Context) (int, error) {
	if s.opts.Upgrade == nil {
		return 0, ErrUpgradeUnsupported
	}
	if !s.upgrading.TryLock() {
		return 0, ErrUpgradeInProgress
	}
	defer s.upgrading.Unlock()
	if s.shuttingDwn.Load() {
		return 0, errors.New("shutting down")
	}
	s.log.Info("upgrade: starting new process")
	pid, err := s.opts.Upgrade(ctx)
	if err != nil {
		s.log.Error("upgrade failed, old process keeps serving", "error", err)
		return 0, err
	}
	select {
	case s.handedOver <- pid:
	default:
	}
	return pid, nil
}

// ReloadOrUpgrade answers a reload request of the service manager, which
// arrives as SIGHUP with Type=notify-reload (systemd.service(5), 253+): it
// upgrades when the binary on disk replaced the running one
// (Options.BinaryReplaced), as `handoff reload` does for ExecReload=, and
// reloads the config otherwise. An upgrade is framed like a reload:
// RELOADING=1 first; on success the new process's READY=1 (sent with
// MAINPID=) ends the reload; on failure this process keeps serving and
// sends READY=1 with the reason, since sd_notify(3) requires READY=1 after
// RELOADING=1 or the unit hangs in "reloading". It returns the new
// process's pid, or 0 after a config reload.
func (s *Server) ReloadOrUpgrade(ctx context.Context) (int, error) {
	replaced := false
	if s.opts.Upgrade != nil && s.opts.BinaryReplaced != nil {
		var err error
		if replaced, err = s.opts.BinaryReplaced(); err != nil {
			s.log.Warn("cannot tell whether the binary was replaced; reloading the config", "error", err)
		}
	}
	if !replaced {
		// A rejected config is logged and reported by reload itself.
		_, err := s.Reload(ctx)
		return 0, err
	}
	s.log.Info("binary replaced on disk: upgrading instead of reloading")
	s.notify(func(n Notifier) error { return n.Reloading() })
	pid, err := s.upgrade(ctx)
	if err != nil {
		s.notifyStatus("upgrade failed, old process serving: "+err.Error(), "READY=1")
	}
	return pid, err
}
