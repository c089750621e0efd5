// Package config owns handoff's configuration: its schema (types.go), the
// built-in defaults, loading and merging the layers (defaults < main file
// < conf.d drop-ins < HANDOFF_* environment < command-line flags) with
// koanf, validation that reports every problem at once with its file,
// line and key, and the split between the static half (needs a restart or
// handoff) and the dynamic half (hot-reloadable).
//
// koanf is an implementation detail: no koanf type appears in this
// package's API. The package reads files and the environment it is given,
// nothing else; it does not know how listeners are bound, how requests
// are routed or proxied, or how a reload is carried out, and it keeps no
// state and starts no goroutines.
package config
