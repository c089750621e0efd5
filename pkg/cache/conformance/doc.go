// Package conformance holds the harness that measures the cache with the
// public HTTP caching test suite (npm http-cache-tests) next to nginx,
// Varnish and HAProxy: conformance.mk (make conformance), the scorer, the
// peers' configs and the committed baseline. It measures the real handoff
// binary; cmd/cacheproxy (pkg/cache over a bare httputil.ReverseProxy) is
// a stand-in that CONFORMANCE_STANDIN=1 adds to the table, to tell the
// cache's score from the proxy's.
//
// It must not be imported by handoff itself.
package conformance
