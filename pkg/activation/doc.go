// Package activation owns the process's contract with its service manager:
// listening sockets by name (passed by systemd, by a parent process on
// upgrade, or bound here as a fallback), sd_notify(3) messages including
// FDSTORE=1 with the file descriptors attached, and the service watchdog.
//
// It works on plain names and addresses ("host:port", "unix:/path") and must
// not know about HTTP, TLS or the config structs: the caller maps its
// configuration onto [Want] values and hands the resulting net.Listeners to
// whatever serves them.
//
// Nothing here reads the process environment at import time; every entry
// point takes an [Env] so that tests (and a parent that re-executes itself)
// can inject it.
package activation
