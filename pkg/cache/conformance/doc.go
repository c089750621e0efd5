// Package conformance holds the harness that measures the cache with the
// public HTTP caching test suite (npm http-cache-tests) next to nginx,
// Varnish and HAProxy: conformance.mk (make conformance), the scorer, the
// peers' configs and the committed baseline. cmd/cacheproxy is a stand-in
// proxy (pkg/cache over httputil.ReverseProxy) until handoff's own config
// enables caching.
//
// It must not be imported by handoff itself.
package conformance
