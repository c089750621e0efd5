// Command cacheproxy serves pkg/cache in front of httputil.ReverseProxy to
// one origin: the stand-in for handoff in the conformance run and in
// manual tests. Usage:
//
//	cacheproxy -listen 127.0.0.1:8081 -origin http://127.0.0.1:8000 [-redis redis://127.0.0.1:6379/0]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/handoff-proxy/handoff/pkg/cache"
	"github.com/handoff-proxy/handoff/pkg/cache/store"
	"github.com/handoff-proxy/handoff/pkg/cache/store/memory"
	credis "github.com/handoff-proxy/handoff/pkg/cache/store/redis"
	"github.com/handoff-proxy/handoff/pkg/cache/store/tiered"
	sredis "github.com/handoff-proxy/handoff/pkg/state/redis"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "cacheproxy:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("cacheproxy", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8081", "address to serve on")
	origin := fs.String("origin", "http://127.0.0.1:8000", "origin URL")
	redisURL := fs.String("redis", "", "Redis URL for the shared tier (empty: memory only)")
	maxMem := fs.Int64("max-memory", 64<<20, "memory tier budget in bytes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	target, err := url.Parse(*origin)
	if err != nil {
		return fmt.Errorf("parse origin: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	mem := memory.New(memory.Options{MaxBytes: *maxMem})
	opts := cache.Options{Store: mem, Logger: log}
	if *redisURL != "" {
		client, err := sredis.NewClient(sredis.Options{URL: *redisURL})
		if err != nil {
			return err
		}
		defer client.Close()
		t := tiered.New(mem, credis.New(client, credis.Options{Logger: log}), fmt.Sprint(os.Getpid()), log)
		t.Start(ctx)
		defer t.Close()
		opts.Store, opts.Locker = store.Store(t), t
	}
	c, err := cache.New(opts)
	if err != nil {
		return err
	}
	c.Start(ctx)
	defer c.Close()
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Host = pr.In.Host
	}}
	srv := &http.Server{Addr: *listen, Handler: c.Handler(cache.Route{Enabled: true, Key: cache.KeyOptions{IncludeQuery: true}}, proxy),
		ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); _ = srv.Shutdown(context.Background()) }()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
