package acmetest

import "go.uber.org/goleak"

// IgnoreGoroutines lists the goroutines certmagic keeps for the life of
// the process, outside any Manager's Close, for goleak.VerifyTestMain:
// its process-wide job queue workers (they end once the queue drains), a
// rate limiter per ACME account kept in a package-level map, and the
// refresh of FileStorage lock files (it notices a release only on its next
// 5 s tick).
func IgnoreGoroutines() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreAnyFunction("github.com/caddyserver/certmagic.(*jobManager).worker"),
		goleak.IgnoreAnyFunction("github.com/caddyserver/certmagic.(*RingBufferRateLimiter).loop"),
		goleak.IgnoreAnyFunction("github.com/caddyserver/certmagic.keepLockfileFresh"),
	}
}
