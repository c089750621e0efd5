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

	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/server"
	"github.com/handoff-proxy/handoff/pkg/upgrade"
)

// runReload reloads a running handoff. It is what ExecReload= runs, so it
// needs no /bin/kill (absent on a minimal Debian). It asks the admin API to
// reload and waits for the outcome, so `systemctl reload` fails visibly on
// a broken config; when the admin API is off or unreachable and a PID is
// given, it falls back to SIGHUP, which reloads the same way.
func runReload(ctx context.Context, args []string, stdout, stderr io.Writer, env []string) error {
	t, err := parseTarget(ctx, "reload", 90*time.Second, args, stdout, stderr, env)
	if t == nil {
		return err
	}
	defer t.cancel()
	ctx, addr, pid := t.ctx, t.addr, t.pid
	if pid != 0 && binaryReplaced(ctx, addr, pid) {
		// A package upgrade renamed a new binary over the running one:
		// `systemctl reload` then means "run the new binary", without
		// dropping a connection (see handoff upgrade).
		fmt.Fprintf(stdout, "binary of %d was replaced on disk: upgrading instead of reloading\n", pid)
		return upgradeProcess(ctx, addr, pid, stdout, stderr)
	}
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
	return signalPID(pid, syscall.SIGHUP)
}

func signalPID(pid int, sig syscall.Signal) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return fmt.Errorf("find process %d: %w", pid, err)
	}
	if err := p.Signal(sig); err != nil {
		return fmt.Errorf("signal %d: %w", pid, err)
	}
	return nil
}

// pidArg reads the optional PID argument ($MAINPID in ExecReload=).
func pidArg(g *globalFlags) (int, error) {
	switch g.fs.NArg() {
	case 0:
		return 0, nil
	case 1:
		p, err := strconv.Atoi(g.fs.Arg(0))
		if err != nil || p <= 1 {
			return 0, usagef("%q is not a process id", g.fs.Arg(0))
		}
		return p, nil
	default:
		return 0, usagef("at most one PID, got %q", g.fs.Args())
	}
}

// adminAddr is --admin, else the admin address the config gives, learned
// the way serve does. A config that does not load is reported by the
// reload itself, so it falls back to the default address here.
func adminAddr(g *globalFlags, env []string) string {
	if g.admin != "" {
		return g.admin
	}
	opts, err := g.loadOptions(env)
	if err != nil {
		return config.Default().Admin.Listen
	}
	opts.AssumeActivated = true
	if loaded, err := config.Load(opts); err == nil {
		return loaded.Config.Admin.Listen
	}
	return config.Default().Admin.Listen
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
	var res struct {
		Generation    uint64   `json:"generation"`
		Error         string   `json:"error"`
		StaticChanges []string `json:"static_changes"`
	}
	if err := adminPost(ctx, addr, "/api/v1/reload", &res); err != nil {
		return err
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

// adminPost POSTs to the admin API at addr ("host:port" or "unix:/path")
// and decodes the JSON answer into out, whatever the status.
func adminPost(ctx context.Context, addr, path string, out any) error {
	return adminDo(ctx, http.MethodPost, addr, path, out)
}

// adminDo sends a request without a body to the admin API at addr and
// decodes the JSON answer into out, whatever the status.
func adminDo(ctx context.Context, method, addr, path string, out any) error {
	url := "http://" + addr + path
	tr := &http.Transport{}
	if sock, ok := strings.CutPrefix(addr, "unix:"); ok {
		// The admin API refuses state changes for a Host that is not an
		// IP address or localhost (DNS rebinding, see admin.Guard).
		url = "http://localhost" + path
		tr = unixTransport(sock)
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	if method == http.MethodPost {
		// A non-simple request: admin.Guard refuses state changes a
		// browser could send without a CORS preflight.
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return fmt.Errorf("admin API %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("admin API %s%s: status %s: %w", addr, path, resp.Status, err)
	}
	return nil
}

// binaryReplaced reports whether the executable of pid was deleted or
// replaced on disk since it started (upgrade.BinaryReplaced). ExecReload=
// of a unit with PrivateUsers=yes runs in a user namespace of its own and
// may not read the main process's /proc/PID/exe, even as the same user
// (ptrace(2) access mode checking): then the process itself answers
// through the admin API. An answer that cannot be had means "not
// replaced", and the reload goes ahead.
func binaryReplaced(ctx context.Context, addr string, pid int) bool {
	replaced, err := upgrade.BinaryReplaced(pid)
	if err == nil || addr == "off" {
		return replaced
	}
	var st server.UpgradeState
	if err := adminDo(ctx, http.MethodGet, addr, "/api/v1/upgrade", &st); err != nil {
		return false
	}
	return st.Supported && st.BinaryReplaced
}

// runUpgrade makes a running handoff replace itself with the binary on
// disk, keeping every listening socket open.
func runUpgrade(ctx context.Context, args []string, stdout, stderr io.Writer, env []string) error {
	t, err := parseTarget(ctx, "upgrade", 2*time.Minute, args, stdout, stderr, env)
	if t == nil {
		return err
	}
	defer t.cancel()
	return upgradeProcess(t.ctx, t.addr, t.pid, stdout, stderr)
}

// target is the running handoff that reload and upgrade act on.
type target struct {
	ctx    context.Context // bounded by --timeout
	cancel context.CancelFunc
	addr   string // admin API address, or "off"
	pid    int    // 0 when not given
}

// parseTarget parses the command line shared by reload and upgrade:
// [--admin ADDR] [-c PATH] [--timeout D] [PID]. A nil target with a nil
// error means help was printed.
func parseTarget(ctx context.Context, name string, timeout time.Duration, args []string, stdout, stderr io.Writer, env []string) (*target, error) {
	usage := reloadUsage
	if name == "upgrade" {
		usage = upgradeUsage
	}
	g := newTargetFlags(name, usage, stderr)
	d := g.fs.Duration("timeout", timeout, "how long to wait for the outcome")
	if err := g.parse(args); err != nil {
		return nil, helpOr(err, stdout, g)
	}
	pid, err := pidArg(g)
	if err != nil {
		return nil, err
	}
	t := &target{addr: adminAddr(g, env), pid: pid}
	t.ctx, t.cancel = context.WithTimeout(ctx, *d)
	return t, nil
}

func upgradeProcess(ctx context.Context, addr string, pid int, stdout, stderr io.Writer) error {
	if addr != "off" {
		var res struct {
			PID   int    `json:"pid"`
			Error string `json:"error"`
		}
		err := adminPost(ctx, addr, "/api/v1/upgrade", &res)
		if err == nil {
			if res.Error != "" {
				return fmt.Errorf("upgrade failed, old process still serving: %s", res.Error)
			}
			fmt.Fprintf(stdout, "upgraded: new process %d is serving\n", res.PID)
			return nil
		}
		if pid == 0 {
			return err
		}
		fmt.Fprintf(stderr, "handoff: admin API unreachable (%v); sending SIGUSR2 to %d\n", err, pid)
	}
	if pid == 0 {
		return usagef("upgrade: admin API is off: give the PID to signal")
	}
	return signalPID(pid, syscall.SIGUSR2)
}
