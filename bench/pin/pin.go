// Package pin builds commands that run on a chosen set of CPUs, so that the
// proxy under test and the load generator never compete for the same core.
//
// It owns only the taskset(1) prefix; it must not know what the commands are.
package pin

import (
	"context"
	"os/exec"
	"strconv"
)

// Options say where and how to run a pinned command.
type Options struct {
	// CPUs is a taskset(1) CPU list ("0", "1", "0-1"). Empty means no
	// pinning: the command runs as given.
	CPUs string
	// Taskset is the path of taskset(1). Empty means "taskset" from PATH.
	Taskset string
	// Nice is the nice(1) adjustment, -20 (favoured) to 19. Zero means
	// the harness's own priority. On a machine shared with other work a
	// negative value keeps the measurement from being preempted.
	Nice int
}

// Command returns an exec.Cmd that runs name with args on opts.CPUs at
// opts.Nice. taskset(1) and nice(1) exec the program, so the returned command's PID is the
// program's PID, which is what the harness samples in /proc.
func Command(ctx context.Context, opts Options, name string, args ...string) *exec.Cmd {
	argv := append([]string{name}, args...)
	if opts.CPUs != "" {
		ts := opts.Taskset
		if ts == "" {
			ts = "taskset"
		}
		argv = append([]string{ts, "-c", opts.CPUs}, argv...)
	}
	if opts.Nice != 0 {
		// nice(1) execs its argument too: the PID stays the program's.
		argv = append([]string{"nice", "-n", strconv.Itoa(opts.Nice)}, argv...)
	}
	return exec.CommandContext(ctx, argv[0], argv[1:]...)
}
