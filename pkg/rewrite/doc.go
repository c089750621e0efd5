// Package rewrite owns the per-route request and response edits an
// operator configures: header templates with variables ({client_ip},
// {host}, {request_id}, {scheme}, …), header set/add/remove, redirect
// targets, static responses and path rewrites (strip_prefix, add_prefix,
// and an RE2 regular expression). Everything is parsed once, at config
// load, into values that are safe to use from many goroutines.
//
// It decides what a header or path becomes; it must not know about
// routes, upstreams or how a request is forwarded. Variables are given
// by the caller through a Vars function, so this package never looks at
// connection state itself.
package rewrite
