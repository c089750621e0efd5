package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/handoff-proxy/handoff/pkg/admin"
)

// redisDetail is the Redis round trip and error for the state line.
func redisDetail(s admin.StateInfo) string {
	if s.Backend != "redis" {
		return ""
	}
	d := fmt.Sprintf(", heartbeat round trip %.1f ms", s.LatencyMS)
	if s.Error != "" {
		d += ", last error: " + oneLine(s.Error, 60)
	}
	return d
}

// systemdLine says how systemd runs the process and how it got there.
func systemdLine(p admin.ProcessInfo) string {
	sd := p.Systemd
	parts := []string{"notify off"}
	if sd.Notify {
		parts[0] = "notify on"
	}
	if sd.SocketActivated {
		parts = append(parts, "socket-activated")
	} else {
		parts = append(parts, "self-bound sockets")
	}
	if sd.WatchdogSeconds > 0 {
		parts = append(parts, fmt.Sprintf("watchdog every %gs", sd.WatchdogSeconds))
	} else {
		parts = append(parts, "watchdog off")
	}
	if sd.FDStored > 0 {
		parts = append(parts, fmt.Sprintf("fd store %d fds", sd.FDStored))
	} else {
		parts = append(parts, "fd store unused")
	}
	started := "started fresh"
	if p.Upgrades > 0 {
		started = fmt.Sprintf("started by upgrade #%d", p.Upgrades)
	}
	return fmt.Sprintf("%s; %s, %d upgrades handed over", strings.Join(parts, ", "), started, p.UpgradesDone)
}

// printFleet lists the processes seen through the state store.
func printFleet(w io.Writer, fleet []admin.MemberInfo, now time.Time) {
	fmt.Fprintln(w)
	if len(fleet) == 0 {
		fmt.Fprintln(w, "fleet: no heartbeat yet")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FLEET\tVERSION\tUP\tLAST HEARTBEAT\tGENERATION\tLISTENERS")
	for _, m := range fleet {
		id, up := m.ID, "-"
		if m.Self {
			id += " (this process)"
		}
		if !m.Started.IsZero() {
			up = admin.FormatAge(now.Sub(m.Started))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s ago\t%d\t%s\n", id, m.Version, up, admin.FormatAge(now.Sub(m.LastBeat)),
			m.Generation, strings.Join(m.Listeners, ", "))
	}
	tw.Flush()
}

// printRateLimits lists the keys being limited, if any.
func printRateLimits(w io.Writer, keys []admin.RateLimitInfo, now time.Time) {
	if len(keys) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RATE LIMITED\tKEY\tDENIED\tLAST")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s ago\n", k.Route, k.Key, k.Denied, admin.FormatAge(now.Sub(k.Last)))
	}
	tw.Flush()
}
