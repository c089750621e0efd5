// Package procstat reads CPU time, memory and open file descriptors of a
// process and its descendants from Linux /proc (proc(5)).
//
// It owns parsing /proc/PID/stat and /proc/PID/status; it must not know what
// the process is (proxy, backend or load generator).
package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// ErrFormat is returned (wrapped) when a /proc file does not parse.
var ErrFormat = errors.New("unexpected /proc format")

// Stat is the part of /proc/PID/stat the harness uses.
type Stat struct {
	PID  int
	PPID int
	// UTime and STime are CPU time in clock ticks (proc(5) fields 14, 15).
	UTime, STime uint64
}

// ParseStat parses the contents of /proc/PID/stat. The comm field (2) may
// contain spaces and parentheses, so the fields after it are found from the
// last ')' (proc(5): "the filename of the executable, in parentheses").
func ParseStat(b []byte) (Stat, error) {
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 1 || end < open {
		return Stat{}, fmt.Errorf("stat: no comm field: %w", ErrFormat)
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return Stat{}, fmt.Errorf("stat: pid: %w", ErrFormat)
	}
	// Fields after comm start at field 3 (state).
	rest := bytes.Fields(b[end+1:])
	const (
		ppidIdx  = 4 - 3
		utimeIdx = 14 - 3
		stimeIdx = 15 - 3
	)
	if len(rest) <= stimeIdx {
		return Stat{}, fmt.Errorf("stat: %d fields after comm: %w", len(rest), ErrFormat)
	}
	s := Stat{PID: pid}
	if s.PPID, err = strconv.Atoi(string(rest[ppidIdx])); err != nil {
		return Stat{}, fmt.Errorf("stat: ppid: %w", ErrFormat)
	}
	if s.UTime, err = strconv.ParseUint(string(rest[utimeIdx]), 10, 64); err != nil {
		return Stat{}, fmt.Errorf("stat: utime: %w", ErrFormat)
	}
	if s.STime, err = strconv.ParseUint(string(rest[stimeIdx]), 10, 64); err != nil {
		return Stat{}, fmt.Errorf("stat: stime: %w", ErrFormat)
	}
	return s, nil
}

// Status is the part of /proc/PID/status the harness uses.
type Status struct {
	// RSS is VmRSS in bytes: resident memory now.
	RSS int64
	// HWM is VmHWM in bytes: the peak of RSS over the process's life.
	HWM int64
	// Threads is the number of threads.
	Threads int
}

// ParseStatus parses the contents of /proc/PID/status. Kernel threads have
// no Vm* lines; their memory is reported as zero.
func ParseStatus(b []byte) (Status, error) {
	var s Status
	var sawThreads bool
	for line := range bytes.Lines(b) {
		key, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		fields := bytes.Fields(val)
		switch string(key) {
		case "VmRSS", "VmHWM":
			kb, err := parseKB(fields)
			if err != nil {
				return Status{}, fmt.Errorf("status: %s: %w", key, err)
			}
			if string(key) == "VmRSS" {
				s.RSS = kb
			} else {
				s.HWM = kb
			}
		case "Threads":
			if len(fields) != 1 {
				return Status{}, fmt.Errorf("status: Threads: %w", ErrFormat)
			}
			n, err := strconv.Atoi(string(fields[0]))
			if err != nil || n < 0 {
				return Status{}, fmt.Errorf("status: Threads: %w", ErrFormat)
			}
			s.Threads, sawThreads = n, true
		}
	}
	if !sawThreads {
		return Status{}, fmt.Errorf("status: no Threads line: %w", ErrFormat)
	}
	return s, nil
}

// parseKB parses "1234 kB" into bytes.
func parseKB(fields [][]byte) (int64, error) {
	if len(fields) != 2 || string(fields[1]) != "kB" {
		return 0, ErrFormat
	}
	n, err := strconv.ParseInt(string(fields[0]), 10, 64)
	if err != nil || n < 0 || n > 1<<40 {
		return 0, ErrFormat
	}
	return n * 1024, nil
}

// Sample is the sum over a process tree at one instant.
type Sample struct {
	// CPU is user plus system time consumed so far by every live process
	// of the tree.
	CPU time.Duration
	// RSS is the sum of VmRSS.
	RSS int64
	// HWM is the sum of each process's VmHWM. It bounds the tree's peak
	// RSS from above (the processes need not peak at the same moment);
	// for single-process peers it is exact.
	HWM int64
	// FDs is the number of open file descriptors.
	FDs int
	// Threads is the number of threads.
	Threads int
	// Procs is the number of processes in the tree.
	Procs int
}

// Reader samples process trees.
type Reader struct {
	// Root is the proc mount. Empty means "/proc".
	Root string
	// TicksPerSecond converts stat's clock ticks. Zero means 100, the
	// USER_HZ every Linux ABI exports (proc(5) says to ask
	// sysconf(_SC_CLK_TCK), which is 100 on Linux).
	TicksPerSecond int
}

func (r Reader) root() string {
	if r.Root == "" {
		return "/proc"
	}
	return r.Root
}

// Tree returns pid and all its live descendants, pid first.
func (r Reader) Tree(pid int) ([]int, error) {
	ents, err := os.ReadDir(r.root())
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	children := map[int][]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(r.root(), e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		st, err := ParseStat(b)
		if err != nil {
			continue
		}
		children[st.PPID] = append(children[st.PPID], p)
	}
	tree := []int{pid}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i]]...)
	}
	return tree, nil
}

// Sample sums stat, status and fd counts over pid's tree. Processes that
// exit while being read are skipped; pid itself must be readable.
func (r Reader) Sample(pid int) (Sample, error) {
	tree, err := r.Tree(pid)
	if err != nil {
		return Sample{}, err
	}
	tps := r.TicksPerSecond
	if tps == 0 {
		tps = 100
	}
	var s Sample
	for i, p := range tree {
		dir := filepath.Join(r.root(), strconv.Itoa(p))
		sb, err := os.ReadFile(filepath.Join(dir, "stat"))
		if err != nil {
			if i == 0 {
				return Sample{}, fmt.Errorf("read stat of %d: %w", p, err)
			}
			continue
		}
		st, err := ParseStat(sb)
		if err != nil {
			return Sample{}, fmt.Errorf("parse stat of %d: %w", p, err)
		}
		ub, err := os.ReadFile(filepath.Join(dir, "status"))
		if err != nil {
			continue
		}
		stu, err := ParseStatus(ub)
		if err != nil {
			return Sample{}, fmt.Errorf("parse status of %d: %w", p, err)
		}
		fds, err := os.ReadDir(filepath.Join(dir, "fd"))
		if err != nil {
			continue
		}
		s.CPU += time.Duration(st.UTime+st.STime) * time.Second / time.Duration(tps)
		s.RSS += stu.RSS
		s.HWM += stu.HWM
		s.Threads += stu.Threads
		s.FDs += len(fds)
		s.Procs++
	}
	return s, nil
}
