// Package systemd holds handoff's systemd units (handoff.socket,
// handoff-https.socket, handoff-admin.socket, handoff.service, the
// handoff@.service worker template with handoff-admin@.socket and
// handoff-workers.target), the sysusers.d entry and the example config.
// They are the one source of truth that packages install.
//
// The Go code here is only their tests (units_test.go): structural checks
// and the hardening score. The tests that boot them under a real systemd
// live in integration/.
package systemd
