// Package l4 owns byte streams: the TCP relay between a client and an
// upstream target (half-close, idle and connect timeouts, retry before the
// first byte, zero-copy splice on Linux), TCP mirroring to shadow targets,
// stream replication from inputs to outputs, and the PROXY protocol
// (v1 and v2, accepted from trusted peers and sent to targets).
//
// It does not know about config files, HTTP or how targets are balanced:
// the caller hands it a Picker, an Observer and plain options.
package l4
