package main

import (
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/handoff-proxy/handoff/pkg/activation"
	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/server"
	"github.com/handoff-proxy/handoff/pkg/upgrade"
)

// envUpgrades counts the upgrades that led to a process: each upgrade
// hands its child one more than it was given. It is only for the
// dashboard; a bad value counts as zero.
const envUpgrades = upgrade.EnvCount

// upgradeCount reads envUpgrades.
func upgradeCount(getenv func(string) string) int {
	n, err := strconv.Atoi(getenv(envUpgrades))
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// withUpgradeCount returns env with envUpgrades set to n.
func withUpgradeCount(env []string, n int) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, envUpgrades+"=") {
			out = append(out, kv)
		}
	}
	return append(out, envUpgrades+"="+strconv.Itoa(n))
}

// systemdFacts gathers what the dashboard shows about systemd: which
// listeners were passed in, whether sd_notify and the watchdog are on
// (sd_watchdog_enabled(3)), and how many fds the fd store holds (stored,
// which storeListeners' caller updates).
func systemdFacts(cfg *config.Config, set *activation.Set, n *activation.Notifier, getenv func(string) string,
	stored *atomic.Int64, log *slog.Logger) server.Systemd {
	sd := server.Systemd{Passed: map[string]bool{}, Notify: n.Enabled(),
		FDStored: func() int { return int(stored.Load()) }}
	for _, l := range cfg.Listeners {
		sd.Passed[l.Name] = set.FromSystemd(l.Name)
	}
	wd, err := activation.NewWatchdog(activation.WatchdogOptions{Env: activation.Env{Getenv: getenv},
		Pinger: n})
	if err != nil { // startWatchdog says so at Warn
		log.Debug("dashboard: cannot read the watchdog interval", "error", err)
	} else {
		sd.WatchdogSeconds = wd.Interval().Seconds()
	}
	return sd
}
