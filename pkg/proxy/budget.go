package proxy

import (
	"sync/atomic"
	"time"
)

// Retry budget: retries may add at most ratio of the requests of the
// last budgetWindow, plus budgetMinRetries in any case, so that a failing
// upstream sees at most (1+ratio) times its normal load instead of
// (1+Retries) times (Finagle's RetryBudget: 20% over 10s with a
// minimum; Envoy's retry_budget does the same with concurrency).
const (
	budgetWindow     = 10 // seconds, one bucket each
	budgetMinRetries = 10 // per window, so that a quiet upstream can retry
)

// retryBudget counts requests and retries in one-second buckets. It is
// lock-free and approximate: a bucket that starts a new second is reset by
// whoever sees it first, and a count racing with that reset may be lost,
// which only makes the budget off by a request or two.
type retryBudget struct {
	ratio   float64
	now     func() time.Time
	buckets [budgetWindow]budgetBucket
}

type budgetBucket struct {
	sec      atomic.Int64 // unix second the counts belong to
	requests atomic.Int64
	retries  atomic.Int64
}

func newRetryBudget(ratio float64, now func() time.Time) *retryBudget {
	return &retryBudget{ratio: ratio, now: now}
}

// bucket returns the bucket of second s, reset if it held an older one.
func (b *retryBudget) bucket(s int64) *budgetBucket {
	bk := &b.buckets[s%budgetWindow]
	if old := bk.sec.Load(); old != s && bk.sec.CompareAndSwap(old, s) {
		bk.requests.Store(0)
		bk.retries.Store(0)
	}
	return bk
}

// request counts one request.
func (b *retryBudget) request() {
	b.bucket(b.now().Unix()).requests.Add(1)
}

// withdraw reports whether one more retry fits the budget, and counts it
// if so.
func (b *retryBudget) withdraw() bool {
	s := b.now().Unix()
	var requests, retries int64
	for i := range b.buckets {
		bk := &b.buckets[i]
		if age := s - bk.sec.Load(); age >= 0 && age < budgetWindow {
			requests += bk.requests.Load()
			retries += bk.retries.Load()
		}
	}
	if float64(retries) >= budgetMinRetries+b.ratio*float64(requests) {
		return false
	}
	b.bucket(s).retries.Add(1)
	return true
}
