// Command backend is the origin server of the benchmark and soak harness
// (see package backend). It listens on 127.0.0.1 ports chosen by the
// kernel, prints them as one JSON line on stdout, and serves until SIGTERM
// or SIGINT.
package main

import (
	"context"
	"crypto/tls"
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

	"github.com/handoff-proxy/handoff/pkg/origin"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "backend: %v\n", err)
		os.Exit(1)
	}
}

// Addrs is the JSON line printed once the backend listens.
type Addrs struct {
	HTTP  string `json:"http"`
	HTTPS string `json:"https,omitempty"`
	TCP   string `json:"tcp"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("backend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	host := fs.String("host", "127.0.0.1", "address to listen on")
	cert := fs.String("cert", "", "PEM certificate for the TLS listener (none when empty)")
	key := fs.String("key", "", "PEM key for -cert")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("parse flags: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	listen := func() (net.Listener, error) { return net.Listen("tcp", net.JoinHostPort(*host, "0")) }
	hln, err := listen()
	if err != nil {
		return fmt.Errorf("listen http: %w", err)
	}
	tln, err := listen()
	if err != nil {
		return fmt.Errorf("listen tcp source: %w", err)
	}
	addrs := Addrs{HTTP: hln.Addr().String(), TCP: tln.Addr().String()}

	h := origin.Handler(origin.Options{Logger: log})
	srv := origin.NewHTTPServer(h)
	tlsSrv := origin.NewHTTPServer(h)
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(hln) }()
	servers := 1
	if *cert != "" {
		kp, err := tls.LoadX509KeyPair(*cert, *key)
		if err != nil {
			return fmt.Errorf("load certificate: %w", err)
		}
		sln, err := listen()
		if err != nil {
			return fmt.Errorf("listen https: %w", err)
		}
		addrs.HTTPS = sln.Addr().String()
		tlsSrv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{kp}, NextProtos: []string{"h2", "http/1.1"}}
		go func() { errc <- tlsSrv.Serve(tls.NewListener(sln, tlsSrv.TLSConfig)) }()
		servers++
	}
	src := origin.NewSource(tln)

	if err := json.NewEncoder(stdout).Encode(addrs); err != nil {
		return fmt.Errorf("print addresses: %w", err)
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		servers--
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	_ = tlsSrv.Shutdown(sctx)
	for range servers {
		<-errc
	}
	if err := src.Close(); err != nil {
		return err
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", serveErr)
	}
	return nil
}
