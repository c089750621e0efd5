package suite

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/handoff-proxy/handoff/bench/pin"
)

// RedisOptions configure StartRedis.
type RedisOptions struct {
	// Binary is redis-server. Empty means "redis-server" from PATH.
	Binary string
	// Dir is redis-server's working directory (nothing is persisted).
	// Required.
	Dir string
	// Pin runs redis-server on these CPUs: the load side's, like the
	// backend, so that the proxy's core does only the proxy's work.
	Pin pin.Options
}

// StartRedis starts a throw-away redis-server on a free 127.0.0.1 port
// (no RDB, no AOF) and waits until it answers PING. The returned stop
// function terminates it and waits.
func StartRedis(ctx context.Context, o RedisOptions) (string, func(), error) {
	bin := o.Binary
	if bin == "" {
		bin = "redis-server"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("pick redis port: %w", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	log, err := os.Create(o.Dir + "/redis.log")
	if err != nil {
		return "", nil, fmt.Errorf("redis log: %w", err)
	}
	defer log.Close() // the child keeps its own copy
	cmd := pin.Command(context.Background(), o.Pin, bin,
		"--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no", "--dir", o.Dir)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(10 * time.Second)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			_ = cmd.Process.Kill()
			<-done
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := ping(ctx, addr)
		if err == nil {
			return addr, stop, nil
		}
		select {
		case <-done:
			return "", nil, errors.New("redis-server exited (log " + o.Dir + "/redis.log)")
		case <-ctx.Done():
			stop()
			return "", nil, fmt.Errorf("redis-server at %s: %w (last: %w)", addr, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// ping sends an inline PING and expects +PONG (RESP, redis.io/docs/reference/protocol-spec).
func ping(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("dial redis: %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return fmt.Errorf("ping redis: %w", err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("ping redis: %w", err)
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("ping redis: answer %s", strconv.Quote(line))
	}
	return nil
}
