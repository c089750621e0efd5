package admin

import "time"

// MemberInfo is one handoff process seen through the shared state store's
// heartbeats (this one included).
type MemberInfo struct {
	// ID is the process's holder ID (host:pid), as in health.checked_by.
	ID      string    `json:"id"`
	Version string    `json:"version,omitempty"`
	Started time.Time `json:"started,omitzero"`
	// LastBeat is when its last heartbeat was sent.
	LastBeat   time.Time `json:"last_heartbeat,omitzero"`
	Listeners  []string  `json:"listeners,omitempty"`
	Generation uint64    `json:"generation"`
	Upgrades   int       `json:"upgrades,omitempty"`
	// Self marks this process.
	Self bool `json:"self,omitempty"`
}

// SystemdInfo says how systemd runs the process. The zero value means not
// under systemd (or not told).
type SystemdInfo struct {
	// Notify reports whether NOTIFY_SOCKET was set (sd_notify(3)).
	Notify bool `json:"notify"`
	// SocketActivated reports whether any listener was passed in rather
	// than bound here (see ListenerInfo.Source).
	SocketActivated bool `json:"socket_activated"`
	// WatchdogSeconds is WatchdogSec= (WATCHDOG_USEC); zero means no
	// watchdog.
	WatchdogSeconds float64 `json:"watchdog_seconds"`
	// FDStored counts the listener fds this process keeps in systemd's
	// fd store (FDSTORE=1); zero means the fd store is not used.
	FDStored int `json:"fd_stored"`
}

// RateLimitInfo is one key a rate limit denied recently.
type RateLimitInfo struct {
	// Route names the route (or its match) whose limit denied.
	Route string `json:"route"`
	// Key is what the limit counts by (a client address, a header).
	Key string `json:"key"`
	// Denied counts the denials of Key since it entered the top list.
	Denied uint64 `json:"denied"`
	// Last is when Key was last denied.
	Last time.Time `json:"last,omitzero"`
}

// Listener sources.
const (
	SourceSystemd = "systemd"
	SourceSelf    = "self"
)
