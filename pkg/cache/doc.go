// Package cache is handoff's shared HTTP cache (RFC 9111, with RFC 5861
// stale-while-revalidate/stale-if-error and RFC 9211 Cache-Status). Its core
// (Cache-Control parsing, storability, freshness, Age, keys, Vary and the
// decision whether to serve, revalidate or forward) works on small
// protocol-free views, so that the net/http adapter in this package (Handler)
// and a fast HTTP/1.1 path call the same code.
//
// It owns the semantics and the coalescing of misses; where entries live is
// the store.Store it is given (memory, Redis, or both). It must not know
// about routes, upstreams or how a request is forwarded: it wraps whatever
// http.Handler forwards.
package cache
