package nspawn

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ParseShow parses `systemctl show` output: one KEY=VALUE per line, the
// value running to the end of the line (it may contain '='). Lines without
// '=' are ignored.
func ParseShow(out string) map[string]string {
	props := map[string]string{}
	for line := range strings.Lines(out) {
		line = strings.TrimRight(line, "\r\n")
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			continue
		}
		props[k] = v
	}
	return props
}

// ownerFile records, in each machine directory, which process owns it and
// the container it booted, for ReapStale.
const ownerFile = "owner"

// Owner identifies the process that booted a machine and the machine's
// init. Start times are proc(5) starttime values, so a recycled pid is
// not mistaken for the original process.
type Owner struct {
	Pid         int
	Start       uint64
	Leader      int
	LeaderStart uint64
}

// String is the owner file's format, which ParseOwner reads.
func (o Owner) String() string {
	return fmt.Sprintf("pid=%d start=%d leader=%d leader_start=%d\n", o.Pid, o.Start, o.Leader, o.LeaderStart)
}

// errOwner reports a malformed owner file.
var errOwner = errors.New("malformed owner file")

// ParseOwner parses an owner file: space-separated key=value pairs, pid
// required and positive, the others optional. Unknown keys are ignored.
func ParseOwner(s string) (Owner, error) {
	var o Owner
	for _, f := range strings.Fields(s) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return Owner{}, fmt.Errorf("%w: field %q", errOwner, f)
		}
		var err error
		switch k {
		case "pid":
			o.Pid, err = strconv.Atoi(v)
		case "start":
			o.Start, err = strconv.ParseUint(v, 10, 64)
		case "leader":
			o.Leader, err = strconv.Atoi(v)
		case "leader_start":
			o.LeaderStart, err = strconv.ParseUint(v, 10, 64)
		}
		if err != nil {
			return Owner{}, fmt.Errorf("%w: %s: %w", errOwner, k, err)
		}
	}
	if o.Pid <= 0 || o.Leader < 0 {
		return Owner{}, fmt.Errorf("%w: pid %d leader %d", errOwner, o.Pid, o.Leader)
	}
	return o, nil
}

func writeOwner(dir string, o Owner) error {
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(o.String()), 0o644); err != nil {
		return fmt.Errorf("nspawn: write owner file: %w", err)
	}
	return nil
}

// ProcStartTime returns the starttime of pid (field 22 of
// /proc/PID/stat, proc(5)).
func ProcStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("nspawn: read stat of %d: %w", pid, err)
	}
	return ParseStatStartTime(string(b))
}

// errStat reports a malformed /proc/PID/stat line.
var errStat = errors.New("malformed /proc/PID/stat")

// ParseStatStartTime extracts starttime from a /proc/PID/stat line.
// proc(5): field 2, comm, is in parentheses and may itself contain spaces
// and parentheses, so fields are counted after the last ')'.
func ParseStatStartTime(stat string) (uint64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("%w: no comm", errStat)
	}
	// After ')' come fields 3 (state) onwards; starttime is field 22.
	fields := strings.Fields(stat[i+1:])
	const idx = 22 - 3
	if len(fields) <= idx {
		return 0, fmt.Errorf("%w: %d fields after comm", errStat, len(fields))
	}
	v, err := strconv.ParseUint(fields[idx], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: starttime: %w", errStat, err)
	}
	return v, nil
}
