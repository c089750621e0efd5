// Command handoff is a reverse proxy and load balancer native to systemd.
//
// main only maps run's error to an exit code: 2 for usage errors, 1 for
// everything else.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Environ())
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

func exitCode(err error, stderr *os.File) int {
	if err == nil {
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "handoff: %v (see handoff --help)\n", ue.err)
		return 2
	}
	var reported *reportedError
	if errors.As(err, &reported) {
		return 1
	}
	fmt.Fprintf(stderr, "handoff: %v\n", err)
	return 1
}
