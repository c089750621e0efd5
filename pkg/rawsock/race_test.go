//go:build race

package rawsock

// raceEnabled: the race detector allocates, so allocation counts mean
// nothing under it.
const raceEnabled = true
