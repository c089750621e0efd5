// Package integration proves handoff's lifecycle claims against a real
// systemd: each test boots a fresh Debian root in systemd-nspawn, installs
// the binary and the units from systemd/, and drives scenarios (socket
// activation, idle exit, reload and binary upgrade under load, fd store,
// watchdog, workers) while the load generator counts every failed, reset
// and refused request.
//
// The tests carry the build tag "integration" and need root; run them with
// `make integration` (see integration.mk and README.md). Without the tag
// only the helpers' unit tests run.
//
// It knows handoff only from the outside: its command line, config file,
// units and HTTP behaviour, never its packages.
package integration
