package server

// Access control, rate limits and authentication as the server wires
// them: per route, between the route table and the route's handler
// (route table → access → rate_limit → auth → cache → proxy), and per
// listener, in front of everything on that listener (listener access →
// routes, or → forward-proxy auth → forward proxy). The limiters and the
// auth lockout live as long as the process (a reload keeps the counts);
// the htpasswd and token files are read again with each generation.

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"

	goredis "github.com/redis/go-redis/v9"

	"github.com/handoff-proxy/handoff/pkg/access"
	"github.com/handoff-proxy/handoff/pkg/auth"
	"github.com/handoff-proxy/handoff/pkg/clientip"
	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/forwardproxy"
	"github.com/handoff-proxy/handoff/pkg/policy"
	"github.com/handoff-proxy/handoff/pkg/ratelimit"
	"github.com/handoff-proxy/handoff/pkg/route"
)

// policyResources are the process-level parts of the policies: rate
// limiters failing open or closed (both shared through Redis when
// state.redis is set) and the auth lockout.
type policyResources struct {
	log                *slog.Logger
	failOpen, failShut ratelimit.Limiter
	lockout            auth.Lockout
	// top is the keys the rate limits deny most, for the dashboard.
	top *ratelimit.Top
}

// newPolicyResources shares limits through client when it is not nil;
// up is the state store's view of whether Redis is reachable.
func newPolicyResources(client goredis.UniversalClient, up func() bool, log *slog.Logger) *policyResources {
	local := ratelimit.NewLocal(nil)
	p := &policyResources{log: log, failOpen: local, failShut: local,
		lockout: auth.NewMemoryLockout(auth.Backoff{}, nil), top: ratelimit.NewTop(topLimitedKeys, nil)}
	if client != nil {
		shared := ratelimit.NewRedis(client, "")
		p.failOpen = &ratelimit.Fallback{Shared: shared, Local: local, Logger: log, Up: up}
		p.failShut = &ratelimit.Fallback{Shared: shared, Local: local, Logger: log, Up: up, FailClosed: true}
		p.lockout = &auth.FallbackLockout{Shared: auth.NewRedisLockout(auth.Backoff{}, client, ""),
			Local: p.lockout, Logger: log}
	}
	return p
}

// orLocal is p, or for a nil p (generations built without a Server, in
// tests) policies of their own with nothing shared.
func (p *policyResources) orLocal() *policyResources {
	if p == nil {
		return newPolicyResources(nil, nil, slog.New(slog.DiscardHandler))
	}
	return p
}

// wrapRoutes puts the route policies of cfg in front of each route's
// handler (specs[i].Handler when the cache set it, else the upstream's).
func (p *policyResources) wrapRoutes(cfg *config.Config, specs []route.Spec, handlers map[string]http.Handler,
	trusted clientip.Trusted, obs policy.Observer) error {
	p = p.orLocal()
	for i, rc := range cfg.Routes {
		if rc.Access == nil && rc.RateLimit == nil && rc.Auth == nil {
			continue
		}
		name := rc.Name
		if name == "" {
			name = fmt.Sprintf("route%d", i)
		}
		h := specs[i].Handler
		if h == nil {
			h = handlers[rc.Upstream]
		}
		if h == nil {
			continue // route.New reports the unknown upstream
		}
		if rc.Auth != nil {
			a, err := p.auth(rc.Auth, name, false, trusted, obs)
			if err != nil {
				return fmt.Errorf("route %q auth: %w", name, err)
			}
			h = a.Handler(h)
		}
		if rl := rc.RateLimit; rl != nil {
			lim := p.failOpen
			if rl.FailClosed {
				lim = p.failShut
			}
			h = (&policy.RateLimit{Limiter: lim, Key: rl.Key, Route: name, Trusted: trusted, Obs: obs, Top: p.top,
				Limit: ratelimit.Limit{Requests: rl.Requests, Per: rl.RateLimitPer(), Burst: rl.Burst}}).Handler(h)
		}
		if rc.Access != nil {
			l, err := access.Parse(rc.Access.Allow, rc.Access.Deny)
			if err != nil {
				return fmt.Errorf("route %q access: %w", name, err)
			}
			h = policy.Access(l, trusted, obs, h)
		}
		specs[i].Handler = h
	}
	return nil
}

func (p *policyResources) auth(ac *config.Auth, name string, proxy bool, trusted clientip.Trusted, obs policy.Observer) (*policy.Auth, error) {
	a := &policy.Auth{Proxy: proxy, Lockout: p.lockout, Route: name, Trusted: trusted, Obs: obs}
	if ac.Basic != nil {
		h, err := auth.LoadHtpasswd(ac.Basic.Htpasswd)
		if err != nil {
			return nil, err
		}
		a.Htpasswd, a.Realm = h, ac.Basic.Realm
	}
	if ac.Bearer != nil {
		t, err := auth.LoadTokens(ac.Bearer.TokensFile)
		if err != nil {
			return nil, err
		}
		a.Tokens = t
	}
	return a, nil
}

// listenerDeps is what the listener policies need besides the config.
type listenerDeps struct {
	trusted   clientip.Trusted
	obs       policy.Observer
	tunnels   forwardproxy.Observer
	log       *slog.Logger
	accessLog *slog.Logger
}

// listeners returns the handler that serves a request on the listener
// named in its context (stampListener): the listener's access list, then
// either routes or, on a forward proxy, its auth and the forward proxy.
// Requests without a stamp go to routes.
func (p *policyResources) listeners(cfg *config.Config, d listenerDeps, routes http.Handler) (http.Handler, error) {
	p = p.orLocal()
	byName := make(map[string]http.Handler)
	for _, lc := range cfg.Listeners {
		h := routes
		if lc.Protocol == config.ProtocolForwardProxy {
			fp, err := newForwardHandler(lc, d)
			if err != nil {
				return nil, err
			}
			h = fp
			if lc.Auth != nil {
				a, err := p.auth(lc.Auth, lc.Name, true, d.trusted, d.obs)
				if err != nil {
					return nil, fmt.Errorf("listener %q auth: %w", lc.Name, err)
				}
				h = a.Handler(h)
			}
		}
		if lc.Redirect != nil { // l7.go: the whole listener redirects
			rd, err := listenerRedirect(lc.Redirect, d.trusted)
			if err != nil {
				return nil, fmt.Errorf("listener %q redirect: %w", lc.Name, err)
			}
			h = rd
		}
		if lc.Access != nil {
			l, err := access.Parse(lc.Access.Allow, lc.Access.Deny)
			if err != nil {
				return nil, fmt.Errorf("listener %q access: %w", lc.Name, err)
			}
			h = policy.Access(l, d.trusted, d.obs, h)
		}
		if h != routes {
			byName[lc.Name] = h
		}
	}
	if len(byName) == 0 {
		return routes, nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if st, ok := r.Context().Value(listenerKey{}).(*listenerStamp); ok {
			if h := byName[st.name]; h != nil {
				h.ServeHTTP(w, r)
				return
			}
		}
		routes.ServeHTTP(w, r)
	}), nil
}

func newForwardHandler(lc config.Listener, d listenerDeps) (http.Handler, error) {
	o := forwardproxy.Options{ConnectPorts: lc.ConnectPorts, Logger: d.log, AccessLog: d.accessLog,
		Observer: d.tunnels, Track: trackTunnel}
	if lc.Destinations != nil {
		var err error
		if o.Allow, err = access.ParsePrefixes(lc.Destinations.Allow); err != nil {
			return nil, fmt.Errorf("listener %q destinations.allow: %w", lc.Name, err)
		}
		if o.Deny, err = access.ParsePrefixes(lc.Destinations.Deny); err != nil {
			return nil, fmt.Errorf("listener %q destinations.deny: %w", lc.Name, err)
		}
	}
	return forwardproxy.New(o), nil
}

// listenerKey is the context key of a *listenerStamp.
type listenerKey struct{}

// listenerStamp names the listener a request came in on, for listener
// policies; tunnels is its forward proxy's open tunnels (nil otherwise).
type listenerStamp struct {
	name    string
	tunnels *tunnelSet
}

// stampListener marks the requests of a listener that has listener
// policies with the listener's name; others go through untouched (no
// allocation per request).
func stampListener(lc config.Listener, tunnels *tunnelSet, next http.Handler) http.Handler {
	if lc.Access == nil && lc.Redirect == nil && lc.Protocol != config.ProtocolForwardProxy {
		return next
	}
	st := &listenerStamp{name: lc.Name, tunnels: tunnels}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), listenerKey{}, st)))
	})
}

func newListenerDeps(d buildDeps, cfg *config.Config, trusted []netip.Prefix) listenerDeps {
	ld := listenerDeps{trusted: clientip.NewTrusted(trusted), obs: d.metrics, tunnels: d.metrics, log: d.log}
	if cfg.Log.Access == nil || *cfg.Log.Access {
		ld.accessLog = d.accessLog
	}
	return ld
}
