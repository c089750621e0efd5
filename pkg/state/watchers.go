package state

import "sync"

// Watchers is the set of functions a Store delivers verdicts to (its
// Watch). Every Store backend keeps one; the zero value is ready to use
// and safe for concurrent use.
type Watchers struct {
	mu     sync.Mutex
	nextID int
	fns    map[int]func(Verdict)
}

// Add registers fn and returns the func that removes it.
func (w *Watchers) Add(fn func(Verdict)) (stop func()) {
	w.mu.Lock()
	if w.fns == nil {
		w.fns = make(map[int]func(Verdict))
	}
	id := w.nextID
	w.nextID++
	w.fns[id] = fn
	w.mu.Unlock()
	return func() {
		w.mu.Lock()
		delete(w.fns, id)
		w.mu.Unlock()
	}
}

// Len counts the registered functions.
func (w *Watchers) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.fns)
}

// Snapshot returns the registered functions, to call without the lock.
func (w *Watchers) Snapshot() []func(Verdict) {
	w.mu.Lock()
	defer w.mu.Unlock()
	fns := make([]func(Verdict), 0, len(w.fns))
	for _, fn := range w.fns {
		fns = append(fns, fn)
	}
	return fns
}
