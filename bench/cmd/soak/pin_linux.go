package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// pinSelf restricts this process (every thread, present and future) to
// cpus, a taskset(1)-style list ("1", "0-1", "1,3"); sched_setaffinity(2)
// with pid 0 applies to the calling thread only, so every thread of the
// process is set through /proc/self/task.
func pinSelf(cpus string) error {
	if cpus == "" {
		return nil
	}
	var set unix.CPUSet
	for part := range strings.SplitSeq(cpus, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return fmt.Errorf("parse cpu list %q: %w", cpus, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return fmt.Errorf("parse cpu list %q: %w", cpus, err)
			}
		}
		for c := a; c <= b; c++ {
			set.Set(c)
		}
	}
	tids, err := threadIDs()
	if err != nil {
		return err
	}
	for _, tid := range tids {
		if err := unix.SchedSetaffinity(tid, &set); err != nil {
			return fmt.Errorf("pin thread %d to cpus %s: %w", tid, cpus, err)
		}
	}
	runtime.GOMAXPROCS(set.Count())
	return nil
}

func threadIDs() ([]int, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, fmt.Errorf("list threads: %w", err)
	}
	var out []int
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, tid)
		}
	}
	return out, nil
}
