package server

import (
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// activity tells how long the process has had nothing to do: no open
// client connection and no request in flight. Idle exit reads it
// (idle_exit: a socket-activated handoff exits and systemd starts it again
// on the next connection, systemd.socket(5)).
type activity struct {
	now        func() time.Time
	conns      atomic.Int64
	inFlight   atomic.Int64
	lastActive atomic.Int64 // unix nanoseconds of the last time both dropped to zero
}

func newActivity(now func() time.Time) *activity {
	a := &activity{now: now}
	a.lastActive.Store(now().UnixNano())
	return a
}

func (a *activity) connOpened() { a.conns.Add(1) }

func (a *activity) connClosed() {
	if a.conns.Add(-1) == 0 {
		a.lastActive.Store(a.now().UnixNano())
	}
}

func (a *activity) requestStarted() { a.inFlight.Add(1) }

func (a *activity) requestDone() {
	if a.inFlight.Add(-1) == 0 {
		a.lastActive.Store(a.now().UnixNano())
	}
}

// idleFor says how long there has been no connection and no request.
func (a *activity) idleFor() time.Duration {
	if a.inFlight.Load() > 0 || a.conns.Load() > 0 {
		return 0
	}
	return a.now().Sub(time.Unix(0, a.lastActive.Load()))
}

// idleCheckInterval is how often the main loop compares idleFor with
// idle_exit; idle_exit is reloadable, so the check always runs.
const idleCheckInterval = 250 * time.Millisecond

// shouldExitIdle reports whether a process configured with idleExit
// (zero: never) has been idle long enough to exit.
func (a *activity) shouldExitIdle(idleExit time.Duration) bool {
	return idleExit > 0 && a.idleFor() >= idleExit
}

// connBurst is how many open connections count as a burst whose memory
// (goroutine stacks, read buffers) is worth handing back to the kernel
// once most of them are gone.
const connBurst = 1000

// releaseAfterBurst hands freed memory back to the kernel once the open
// connections, or the goroutines (idle connections park without one,
// parking.go), fell to a quarter of a peak of at least connBurst: the Go
// runtime would otherwise keep it for minutes (its scavenger returns
// memory slowly, and a garbage collection may not run for two minutes).
// Called from the main loop on every idle check.
type releaseAfterBurst struct{ conns, goroutines burstPeak }

func (r *releaseAfterBurst) check(open int64) {
	a := r.conns.fell(open)
	b := r.goroutines.fell(int64(runtime.NumGoroutine()))
	if a || b {
		debug.FreeOSMemory()
	}
}

// burstPeak follows one count's peak since the last release.
type burstPeak struct{ peak int64 }

// fell reports whether n fell to a quarter of a peak of at least
// connBurst, and then starts over from n.
func (p *burstPeak) fell(n int64) bool {
	switch {
	case n > p.peak:
		p.peak = n
	case p.peak >= connBurst && n <= p.peak/4:
		p.peak = n
		return true
	}
	return false
}
