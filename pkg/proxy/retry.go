package proxy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"time"

	"github.com/handoff-proxy/handoff/pkg/config"
	"github.com/handoff-proxy/handoff/pkg/health"
	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// When no other target is left and the dial was refused, the same target
// is tried again, within `retries` (HAProxy retries the same server on
// conn-failure, `retries 3` a second apart by default), so that a backend
// that is still starting costs a short wait rather than a 502: 200ms,
// doubling, at most 1s, plus up to half of it as jitter, capped at 1s —
// 1.4–1.9 s over the default 3 retries. Not when an earlier target already
// gave an answer to fall back on. The retry budget bounds the extra dials
// when a lone backend is really down.
const (
	sameTargetBackoff    = 200 * time.Millisecond
	sameTargetBackoffMax = time.Second
)

// retryPolicy is an upstream's retries and retry_on.
type retryPolicy struct {
	max                         int
	onConnect, onTimeout, on5xx bool
}

func newRetryPolicy(u config.Upstream) retryPolicy {
	return retryPolicy{
		max:       max(*u.Retries, 0),
		onConnect: slices.Contains(u.RetryOn, config.RetryOnConnectFailure),
		onTimeout: slices.Contains(u.RetryOn, config.RetryOnTimeout),
		on5xx:     slices.Contains(u.RetryOn, config.RetryOnStatus5xx),
	}
}

// retryingTransport is the Handler in its role as ReverseProxy's
// RoundTripper: it picks a target per attempt, sets the outgoing URL to
// it, and retries what the upstream's retry_on names within its budget.
type retryingTransport Handler

// RoundTrip sends out to a target of the pool and retries, up to the
// pool's Retries times and within its retry budget:
//
//   - a connect failure (nothing of the request reached the target),
//     whatever the method, as long as the body was not read or can be
//     had again; on another target, or when none is left, on the same
//     one after a short backoff if its dial was refused;
//   - a timeout or a 5xx answer, for idempotent requests whose body was
//     not partly sent, on another target. When retries after a 5xx fail
//     too, the client gets that 5xx.
//
// Every attempt's outcome goes to Health, except when the client went
// away, the request's own timeout fired, the request body broke, or this
// machine ran out of a resource (isLocalError). Attempts at the same
// target spaced by backoff are one observation: Health hears how the last
// one went.
func (rt *retryingTransport) RoundTrip(out *http.Request) (*http.Response, error) {
	h := (*Handler)(rt)
	ex := exchangeFrom(out.Context())
	r := &roundTrip{h: h, ex: ex, out: out}
	if out.Body != nil {
		r.body = &bodyGuard{rc: out.Body}
	}
	h.budget.request()
	t, release, err := h.acquire(out.Context(), ex)
	if err != nil {
		return nil, r.noTarget(err)
	}
	return r.run(t, release)
}

// roundTrip is one request's way through its attempts.
type roundTrip struct {
	h    *Handler
	ex   *exchange
	out  *http.Request
	body *bodyGuard
	// held is the last 5xx response, kept for the client while another
	// target is tried; heldRelease ends its target's slot.
	held        *http.Response
	heldTarget  *upstream.Target
	heldRelease func()
}

func (r *roundTrip) run(t *upstream.Target, release func()) (*http.Response, error) {
	h, ex := r.h, r.ex
	same := 0 // tries of t in a row after its dial was refused
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			h.obs.Retry(h.pool.Name)
			if ex.info != nil {
				ex.info.Retries++
			}
		}
		if same == 0 {
			ex.tried = append(ex.tried, t)
		}
		if ex.info != nil {
			ex.info.Target = t.Address
		}
		a := h.send(r.out, t, r.body)
		if a.err == nil {
			h.health.Report(t, health.Result{Outcome: health.Success, Status: a.res.StatusCode})
			next, nrel := r.after5xx(a, attempt)
			if next == nil {
				r.dropHeld()
				ex.target, ex.release = t, release
				return a.res, nil
			}
			r.dropHeld()
			r.held, r.heldTarget, r.heldRelease = a.res, t, release
			t, release, same = next, nrel, 0
			continue
		}
		if err := r.notTheTargets(a.err, t, same > 0); err != nil {
			release()
			return r.fallback(err)
		}
		next, nrel, again := r.afterFailure(a, t, attempt, same)
		if again {
			same++
			if err := r.backoff(same); err != nil {
				release()
				h.health.Report(t, health.Result{Outcome: health.ConnectFailed})
				return r.fallback(fmt.Errorf("%w: %w", err, a.err))
			}
			continue
		}
		release()
		if next == nil {
			return r.fallback(a.err)
		}
		t, release, same = next, nrel, 0
	}
}

// notTheTargets returns a non-nil error when the failure of an attempt at
// t is not t's fault, so that it is neither reported nor retried: the
// client went away, the request body broke, the request's own timeout
// fired, or this machine is out of a resource. pending reports whether an
// earlier connect failure of t awaits its report.
func (r *roundTrip) notTheTargets(err error, t *upstream.Target, pending bool) error {
	err = r.notTheTargetsErr(err, t)
	if err != nil && pending {
		// Whatever ended the tries of the same target, its dial was
		// refused before.
		r.h.health.Report(t, health.Result{Outcome: health.ConnectFailed})
	}
	return err
}

func (r *roundTrip) notTheTargetsErr(err error, t *upstream.Target) error {
	h, ex := r.h, r.ex
	var bodyErr *requestBodyError
	switch {
	case ex.client.Err() != nil:
		// The client went away: nobody is waiting for a retry.
		return fmt.Errorf("%w: %w", errClientGone, err)
	case errors.As(err, &bodyErr) || r.out.Context().Err() != nil:
		return err
	case isLocalError(err):
		ex.logged = true
		h.log.Error("out of a local resource, not the target's fault", "upstream", h.pool.Name, "target", t.Address, "error", err)
		h.obs.UpstreamError(h.pool.Name, t.Address, KindLocal)
		return &localError{err: err}
	}
	return nil
}

// afterFailure reports the failed attempt a at t and decides what comes
// next: another target with a slot taken on it, the same target again
// (again) after its dial was refused, or nothing.
func (r *roundTrip) afterFailure(a attempt, t *upstream.Target, attempt, same int) (next *upstream.Target, release func(), again bool) {
	h, ex := r.h, r.ex
	kind := kindOf(a.err, a.connectFailed)
	var may bool
	switch {
	case a.connectFailed:
		may = h.policy.onConnect && canResendUnsent(r.out, r.body)
	case kind == KindTimeout:
		may = h.policy.onTimeout && canResendSent(r.out, r.body, a)
	}
	if may && attempt < h.policy.max {
		next, release, _ = h.tryPick(ex)
		again = next == nil && a.refused && r.held == nil
		if (next != nil || again) && !h.budget.withdraw() {
			if release != nil {
				release()
			}
			next, release, again = nil, nil, false
		}
	}
	if next != nil && r.body != nil && r.body.n.Load() > 0 {
		// The transport read the body although the attempt failed:
		// start over from GetBody (canResend* checked it is set).
		rc, err := r.out.GetBody()
		if err != nil {
			release()
			next, release = nil, nil
		} else {
			r.body = &bodyGuard{rc: rc}
		}
	}
	if again {
		// Reported when the tries of t end (notTheTargets, or here).
		h.log.Debug("upstream connect failed, trying the same target again", "upstream", h.pool.Name, "target", t.Address, "error", a.err)
		return nil, nil, true
	}
	h.health.Report(t, health.Result{Outcome: outcomeOf(kind, a.connectFailed)})
	ex.logged = true
	h.log.Warn("upstream request failed", "upstream", h.pool.Name, "target", t.Address, "error", a.err, "retry", next != nil)
	h.obs.UpstreamError(h.pool.Name, t.Address, kind)
	return next, release, false
}

// after5xx decides whether a 5xx answer in a is retried, and on which
// target (with a slot taken on it).
func (r *roundTrip) after5xx(a attempt, attempt int) (*upstream.Target, func()) {
	h := r.h
	if !h.policy.on5xx || a.res.StatusCode < 500 || attempt >= h.policy.max || !canResendSent(r.out, r.body, a) {
		return nil, nil
	}
	next, release, _ := h.tryPick(r.ex)
	if next == nil {
		return nil, nil
	}
	if !h.budget.withdraw() {
		release()
		return nil, nil
	}
	if r.body != nil && r.body.n.Load() > 0 {
		rc, err := r.out.GetBody()
		if err != nil {
			release()
			return nil, nil
		}
		r.body = &bodyGuard{rc: rc}
	}
	h.log.Warn("upstream answered 5xx", "upstream", h.pool.Name, "target", r.ex.tried[len(r.ex.tried)-1].Address, "status", a.res.StatusCode, "retry", true)
	return next, release
}

// backoff waits before the n-th try of the same target, or returns the
// context's error when the request ends first.
func (r *roundTrip) backoff(n int) error {
	timer := time.NewTimer(sameTargetDelay(n))
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-r.out.Context().Done():
		if r.ex.client.Err() != nil {
			return errClientGone
		}
		return r.out.Context().Err()
	}
}

// sameTargetDelay is the wait before the n-th try of a target whose dial
// was refused: sameTargetBackoff doubling, with up to half as jitter,
// at most sameTargetBackoffMax.
func sameTargetDelay(n int) time.Duration {
	d := min(sameTargetBackoff<<(n-1), sameTargetBackoffMax)
	return min(d+rand.N(d/2+1), sameTargetBackoffMax)
}

// fallback ends the request with err, or with the 5xx response held from
// an earlier attempt when there is one (the client gets the last
// response when the retries after it fail).
func (r *roundTrip) fallback(err error) (*http.Response, error) {
	if r.held == nil || errors.Is(err, errClientGone) || r.ex.client.Err() != nil {
		r.dropHeld()
		return nil, err
	}
	r.ex.target, r.ex.release = r.heldTarget, r.heldRelease
	if r.ex.info != nil {
		r.ex.info.Target = r.heldTarget.Address
	}
	res := r.held
	r.held, r.heldRelease = nil, nil
	return res, nil
}

// dropHeld closes the held 5xx response, if any, and ends its slot.
func (r *roundTrip) dropHeld() {
	if r.held != nil {
		r.held.Body.Close()
		r.heldRelease()
		r.held, r.heldRelease = nil, nil
	}
}

// noTarget reports that the request's first attempt found no target.
func (r *roundTrip) noTarget(err error) error {
	h, ex := r.h, r.ex
	switch {
	case ex.client.Err() != nil:
		return fmt.Errorf("%w: %w", errClientGone, err)
	case r.out.Context().Err() != nil:
		return err
	}
	ex.logged = true
	kind := KindNoTarget
	if errors.Is(err, errCapacity) {
		kind = KindCapacity
	}
	h.log.Warn("no upstream target", "upstream", h.pool.Name, "error", err)
	h.obs.UpstreamError(h.pool.Name, "", kind)
	return err
}

// outcomeOf maps a failure (see kindOf) to what Health hears. A connect
// failure is one even when it was a dial timeout.
func outcomeOf(kind string, connectFailed bool) health.Outcome {
	switch {
	case connectFailed:
		return health.ConnectFailed
	case kind == KindTimeout:
		return health.Timeout
	}
	return health.Failed
}
