// Command loadgen is the integration tests' load generator, backend and
// probe. It is built statically and runs inside the container's network
// namespace (`nsenter -t PID -n -- loadgen …`) or, for serve, as a unit
// inside the container.
//
//	loadgen run   -url URL [-rate N] [-duration D] [-keepalive F] [-timeout D] [-insecure]
//	loadgen serve -listen ADDR -name NAME [-health-file PATH]
//	loadgen probe -url URL [-timeout D] [-insecure] [-h3]
//	loadgen ws    -url ws://… [-hold D] [-interval D]
//
// run, probe and ws print one JSON object on stdout. run with no
// -duration runs until SIGTERM or SIGINT, then waits for the requests in
// flight and prints. Exit status: 0 when the output was printed (whatever
// the requests' outcome), 1 on an internal error, 2 on bad usage.
//
// It knows nothing of handoff: it speaks plain HTTP (package loadgen).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/handoff-proxy/handoff/integration/loadgen"
	"github.com/handoff-proxy/handoff/pkg/origin"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	var ue usageError
	switch {
	case err == nil:
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		os.Exit(1)
	}
}

type usageError struct{ error }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{errors.New("want a command: run, serve, probe or ws")}
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	parse := func() error {
		if err := fs.Parse(args); err != nil {
			return usageError{err}
		}
		if fs.NArg() > 0 {
			return usageError{fmt.Errorf("%s: unexpected argument %q", cmd, fs.Arg(0))}
		}
		return nil
	}
	switch cmd {
	case "run":
		var o loadgen.Options
		fs.StringVar(&o.URL, "url", "", "URL to GET")
		fs.IntVar(&o.Rate, "rate", 400, "requests per second")
		fs.DurationVar(&o.Duration, "duration", 0, "run time; 0 runs until SIGTERM")
		fs.Float64Var(&o.KeepAlive, "keepalive", 0.5, "fraction of requests on keep-alive connections")
		fs.DurationVar(&o.Timeout, "timeout", 5*time.Second, "per-request timeout")
		fs.IntVar(&o.MaxInFlight, "max-inflight", 2000, "concurrent request bound")
		fs.BoolVar(&o.InsecureTLS, "insecure", false, "skip TLS verification")
		if err := parse(); err != nil {
			return err
		}
		o.Logger = logger
		res, err := loadgen.Run(ctx, o)
		if err != nil {
			return usageError{err}
		}
		return printJSON(stdout, res)
	case "probe":
		var o loadgen.ProbeOptions
		fs.StringVar(&o.URL, "url", "", "URL to GET")
		fs.DurationVar(&o.Timeout, "timeout", 10*time.Second, "request timeout")
		fs.StringVar(&o.Method, "method", "GET", "request method")
		fs.BoolVar(&o.InsecureTLS, "insecure", false, "skip TLS verification")
		fs.BoolVar(&o.HTTP3, "h3", false, "send the request over HTTP/3 (QUIC)")
		if err := parse(); err != nil {
			return err
		}
		res, err := loadgen.Probe(ctx, o)
		if err != nil {
			return usageError{err}
		}
		return printJSON(stdout, res)
	case "ws":
		var o loadgen.WSOptions
		fs.StringVar(&o.URL, "url", "", "ws:// URL of an echo endpoint")
		fs.DurationVar(&o.Hold, "hold", 5*time.Second, "how long to keep the connection open")
		fs.DurationVar(&o.Interval, "interval", 500*time.Millisecond, "time between echo messages")
		if err := parse(); err != nil {
			return err
		}
		res, err := loadgen.HoldWebSocket(ctx, o)
		if err != nil {
			return usageError{err}
		}
		return printJSON(stdout, res)
	case "serve":
		listen := fs.String("listen", "127.0.0.1:8081", "address to listen on")
		name := fs.String("name", "backend", "name reported in X-Backend and the body")
		healthFile := fs.String("health-file", "", "GET /healthz answers 503 while this file exists, else 200")
		if err := parse(); err != nil {
			return err
		}
		return serve(ctx, *listen, *name, *healthFile, logger)
	default:
		return usageError{fmt.Errorf("unknown command %q", cmd)}
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	return nil
}

// serve runs the origin server until ctx is done, then shuts it down.
func serve(ctx context.Context, addr, name, healthFile string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: withHealth(origin.Handler(origin.Options{Name: name, Logger: log}), healthFile), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("backend serving", "addr", ln.Addr().String(), "name", name)
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	<-errc
	return nil
}

// pathHealth is the health check path of `serve -health-file`.
const pathHealth = "/healthz"

// withHealth answers GET /healthz with 503 while file exists and 200
// otherwise, so that a test fails a backend's health checks (touch the
// file) while it keeps serving every other request. An empty file means
// next answers /healthz too.
func withHealth(next http.Handler, file string) http.Handler {
	if file == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != pathHealth {
			next.ServeHTTP(w, r)
			return
		}
		if _, err := os.Stat(file); err == nil {
			http.Error(w, "down: "+file+" exists", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
}
