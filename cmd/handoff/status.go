package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/handoff-proxy/handoff/pkg/admin"
)

const statusUsage = `Usage: handoff status [--admin ADDR] [-c PATH] [--timeout D]

Show what the admin dashboard shows, in the terminal: the process, every
upstream with its targets' health (and who probes them), the cache and the
shared state backend, the fleet of processes sharing it and the keys
being rate limited. Exit status: 0 when every upstream has a healthy
target, 1 when one has none or the admin API cannot be reached (usable
as ExecCondition=), 2 for a bad command line.

Flags:
`

// errUnhealthy is returned, after the report was printed, when an
// upstream has no healthy target.
var errUnhealthy = errors.New("an upstream has no healthy target")

// runStatus prints the overview of a running handoff.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer, env []string) error {
	g := newTargetFlags("status", statusUsage, stderr)
	timeout := g.fs.Duration("timeout", 10*time.Second, "how long to wait for the admin API")
	if err := g.parse(args); err != nil {
		return helpOr(err, stdout, g)
	}
	if g.fs.NArg() > 0 {
		return usagef("status takes no arguments, got %q", g.fs.Args())
	}
	addr := adminAddr(g, env)
	if addr == "off" {
		return usagef("status: the admin API is off")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var ov admin.Overview
	if err := adminDo(ctx, http.MethodGet, addr, admin.PathOverview, &ov); err != nil {
		return err
	}
	if ov.Process.PID == 0 {
		return fmt.Errorf("admin API %s answers no %s (a handoff older than this command?)", addr, admin.PathOverview)
	}
	if !printStatus(stdout, ov, time.Now()) {
		return &reportedError{errUnhealthy}
	}
	return nil
}

// printStatus writes ov for people and reports whether every upstream
// has a healthy target.
func printStatus(w io.Writer, ov admin.Overview, now time.Time) bool {
	p := ov.Process
	up := "unknown"
	if !p.Started.IsZero() {
		up = admin.FormatAge(now.Sub(p.Started))
	}
	state := "up"
	if !ov.State.Up {
		state = "DOWN"
	}
	fmt.Fprintf(w, "handoff %s, pid %d, up %s, generation %d, %d open connections\n", p.Version, p.PID, up, p.Generation, p.OpenConns)
	fmt.Fprintf(w, "state backend: %s %s%s\n", ov.State.Backend, state, redisDetail(ov.State))
	fmt.Fprintf(w, "systemd: %s\n", systemdLine(p))
	if r := p.LastReload; r != nil {
		outcome := "ok"
		if r.Error != "" {
			outcome = "FAILED: " + r.Error
		}
		fmt.Fprintf(w, "last reload: %s, %s ago\n", outcome, admin.FormatAge(now.Sub(r.At)))
	}
	fmt.Fprintf(w, "traffic, last %s: %d requests, %d errors\n", admin.FormatAge(time.Duration(ov.Traffic.Seconds)*time.Second), ov.Traffic.Requests, ov.Traffic.Errors)

	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "UPSTREAM\tHEALTHY\tTARGET\tSTATE\tCHECKED BY\tLAST CHECK\tIN FLIGHT\tREQUESTS\tFAILURES")
	var bad []string
	for _, u := range ov.Upstreams {
		if u.Healthy == 0 {
			bad = append(bad, u.Name)
		}
		healthy := fmt.Sprintf("%d/%d", u.Healthy, u.Total)
		if len(u.Targets) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t-\n", u.Name, healthy)
		}
		for i, t := range u.Targets {
			name := u.Name
			if i > 0 {
				name, healthy = "", ""
			}
			label, _ := admin.TargetState(t, now)
			check := "-"
			if t.Health.LastResult != "" {
				check = t.Health.LastResult + " " + admin.FormatAge(now.Sub(t.Health.LastCheck)) + " ago"
				if t.Health.LastError != "" {
					check += ": " + oneLine(t.Health.LastError, 40)
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\n", name, healthy, t.Address, label,
				admin.CheckedBy(t, p.Holder), check, t.InFlight, t.Requests, t.Failures)
		}
	}
	tw.Flush()
	printFleet(w, ov.Fleet, now)
	printRateLimits(w, ov.RateLimits, now)

	if c := ov.Cache; c != nil {
		budget := ""
		if c.MaxMemory > 0 {
			budget = " of " + admin.FormatBytes(c.MaxMemory)
		}
		fmt.Fprintf(w, "\ncache: hit ratio %.1f%% (%d hits, %d misses), %d entries, %s%s, %d stale served, %d coalesced\n",
			100*c.HitRatio(), c.Hits, c.Misses, c.Entries, admin.FormatBytes(c.Bytes), budget, c.StaleServed, c.Coalesced)
	}
	if len(bad) > 0 {
		fmt.Fprintf(w, "\nno healthy target: %s\n", strings.Join(bad, ", "))
		return false
	}
	return true
}

// oneLine shortens s to n runes on one line, for a table cell.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
