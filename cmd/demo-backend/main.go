// Command demo-backend runs handoff's origin server (package origin) for
// trying handoff out (`make run`): "/" answers with the backend's name, so a
// person can watch the load balancer alternate between backends, and
// "/echo" also shows the request line and forwarding headers it received.
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

	"github.com/handoff-proxy/handoff/pkg/origin"
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
	srv := origin.NewHTTPServer(origin.Handler(origin.Options{Name: *name}))
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
