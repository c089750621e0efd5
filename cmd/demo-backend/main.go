// Command demo-backend is a tiny HTTP origin for trying handoff out
// (`make run`): it answers every request with its own name and what it saw,
// so a person can watch the load balancer alternate between backends.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "demo-backend:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo-backend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("listen", "127.0.0.1:9001", "address to listen on")
	name := fs.String("name", "", "name to answer with (default: the address)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *name == "" {
		*name = *addr
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("X-Backend", *name)
			fmt.Fprintf(w, "hello from %s\n%s %s %s\nX-Forwarded-For: %s\nVia: %s\nX-Request-Id: %s\n",
				*name, r.Method, r.URL.RequestURI(), r.Proto,
				r.Header.Get("X-Forwarded-For"), r.Header.Get("Via"), r.Header.Get("X-Request-Id"))
		}),
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
