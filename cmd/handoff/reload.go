package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/handoff-proxy/handoff/pkg/config"
)

// runReload reloads a running handoff. It is what ExecReload= runs, so it
// needs no /bin/kill (absent on a minimal Debian). It asks the admin API to
// reload and waits for the outcome, so `systemctl reload` fails visibly on
// a broken config; when the admin API is off or unreachable and a PID is
// given, it falls back to SIGHUP, which reloads the same way.
func runReload(ctx context.Context, args []string, stdout, stderr io.Writer, env []string) error {
	g := newGlobalFlags("reload", stderr)
	timeout := g.fs.Duration("timeout", 90*time.Second, "how long to wait for the reload")
	if err := g.parse(args); err != nil {
		if err == pflag.ErrHelp {
			fmt.Fprintln(stdout, "Usage: handoff reload [--admin ADDR] [-c PATH] [PID]")
			g.fs.SetOutput(stdout)
			g.fs.PrintDefaults()
			return nil
		}
		return err
	}
	var pid int
	switch g.fs.NArg() {
	case 0:
	case 1:
		p, err := strconv.Atoi(g.fs.Arg(0))
		if err != nil || p <= 1 {
			return usagef("reload: %q is not a process id", g.fs.Arg(0))
		}
		pid = p
	default:
		return usagef("reload takes at most one PID, got %q", g.fs.Args())
	}

	addr := g.admin
	if addr == "" {
		// Learn the admin address the way serve does; a config that does
		// not load is reported by the reload itself, so fall back to the
		// default address here.
		opts := g.loadOptions(env, nil)
		opts.AssumeActivated = true
		if loaded, err := config.Load(opts); err == nil {
			addr = loaded.Config.Admin.Listen
		} else {
			addr = config.Default().Admin.Listen
		}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if addr != "off" {
		err := reloadViaAdmin(ctx, addr, stdout)
		if err == nil || pid == 0 {
			return err
		}
		var failed *reloadFailed
		if errors.As(err, &failed) {
			return err
		}
		fmt.Fprintf(stderr, "handoff: admin API unreachable (%v); sending SIGHUP to %d\n", err, pid)
	}
	if pid == 0 {
		return usagef("reload: admin API is off: give the PID to signal")
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return fmt.Errorf("find process %d: %w", pid, err)
	}
	if err := p.Signal(syscall.SIGHUP); err != nil {
		return fmt.Errorf("signal %d: %w", pid, err)
	}
	return nil
}

type reloadFailed struct{ msg string }

func (e *reloadFailed) Error() string { return "reload failed, old config still serving: " + e.msg }

func unixTransport(path string) *http.Transport {
	return &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
}

func reloadViaAdmin(ctx context.Context, addr string, stdout io.Writer) error {
	url := "http://" + addr + "/api/v1/reload"
	client := &http.Client{Transport: &http.Transport{}}
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		url = "http://admin/api/v1/reload"
		client.Transport = unixTransport(path)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return fmt.Errorf("build reload request: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("reload via admin API %s: %w", addr, err)
	}
	defer resp.Body.Close()
	var res struct {
		Generation    uint64   `json:"generation"`
		Error         string   `json:"error"`
		StaticChanges []string `json:"static_changes"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return fmt.Errorf("reload via admin API %s: status %s: %w", addr, resp.Status, err)
	}
	if res.Error != "" {
		return &reloadFailed{res.Error}
	}
	fmt.Fprintf(stdout, "reloaded (generation %d)\n", res.Generation)
	if len(res.StaticChanges) > 0 {
		fmt.Fprintf(stdout, "static keys changed, effective after restart or upgrade: %s\n", strings.Join(res.StaticChanges, ", "))
	}
	return nil
}
