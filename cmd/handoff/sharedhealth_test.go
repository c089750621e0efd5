package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/state/statetest"
)

// flipBackend is an origin whose /healthz answer can be flipped. It
// records when each probe and each proxied request arrived, and through
// which handoff process (the X-Via header the test's clients set), so the
// test measures on the backend's side what the processes did.
type flipBackend struct {
	name string
	srv  *httptest.Server
	down atomic.Bool

	mu        sync.Mutex
	probes    []time.Time
	firstFail time.Time            // first failed probe since the last flip down: the verdict
	last      map[string]time.Time // X-Via -> arrival of its latest request
	count     map[string]int       // X-Via -> requests
}

func newFlipBackend(t *testing.T, name string) *flipBackend {
	t.Helper()
	b := &flipBackend{name: name, last: map[string]time.Time{}, count: map[string]int{}}
	b.srv = httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *flipBackend) serve(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	if r.URL.Path == "/healthz" {
		down := b.down.Load()
		b.mu.Lock()
		b.probes = append(b.probes, now)
		if down && b.firstFail.IsZero() {
			b.firstFail = now
		}
		b.mu.Unlock()
		if down {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		return
	}
	via := r.Header.Get("X-Via")
	b.mu.Lock()
	b.last[via] = now
	b.count[via]++
	b.mu.Unlock()
	w.Header().Set("X-Backend", b.name)
	io.WriteString(w, b.name)
}

// setDown flips the health endpoint; proxied requests are served either
// way, so only the active checks (and the verdict they share) can keep
// traffic away.
func (b *flipBackend) setDown(down bool) {
	b.mu.Lock()
	b.firstFail = time.Time{}
	b.mu.Unlock()
	b.down.Store(down)
}

// probesBetween counts probes that arrived in [from, to).
func (b *flipBackend) probesBetween(from, to time.Time) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, p := range b.probes {
		if !p.Before(from) && p.Before(to) {
			n++
		}
	}
	return n
}

// firstProbeAfter returns the first probe that arrived after t.
func (b *flipBackend) firstProbeAfter(t time.Time) (time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.probes {
		if p.After(t) {
			return p, true
		}
	}
	return time.Time{}, false
}

func (b *flipBackend) verdictAt() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.firstFail
}

func (b *flipBackend) lastFrom(via string) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last[via]
}

func (b *flipBackend) countFrom(via string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.count[via]
}

// sharedProc is one handoff process of the shared-health tests.
type sharedProc struct {
	*proc
	name  string
	http  string // proxy listener address
	admin string
}

// Shared-health timing: the lease lives max(3×interval, 2s) (package
// health), so a takeover is due within leaseTTL + probeInterval.
const (
	probeInterval = 250 * time.Millisecond
	leaseTTL      = 2 * time.Second
)

func startShared(t *testing.T, name, redisAddr string, targets ...*flipBackend) *sharedProc {
	t.Helper()
	var ts []string
	for _, b := range targets {
		ts = append(ts, fmt.Sprintf("{address: %q}", hostPort(b.srv)))
	}
	cfg := fmt.Sprintf(`
listeners: [{name: http, address: "127.0.0.1:0", protocol: http}]
admin: {listen: "127.0.0.1:0"}
log: {access: false, level: info}
state:
  redis: {url: "redis://%s/0"}
upstreams:
  web:
    targets: [%s]
    health:
      active: {type: http, path: /healthz, interval: %s, timeout: 200ms, jitter: "0%%", healthy_threshold: 1, unhealthy_threshold: 1}
routes: [{match: {}, upstream: web}]
`, redisAddr, strings.Join(ts, ", "), probeInterval)
	file := filepath.Join(t.TempDir(), name+".yaml")
	writeFile(t, file, cfg)
	p := startNoWait(t, []string{"-c", file})
	select {
	case addrs := <-p.ready:
		return &sharedProc{proc: p, name: name, http: addrs["http"], admin: addrs["admin"]}
	case err := <-p.exited:
		t.Fatalf("%s exited before serving: %v\n%s", name, err, p.output())
	case <-time.After(15 * time.Second):
		t.Fatalf("%s did not start serving\n%s", name, p.output())
	}
	return nil
}

func (p *sharedProc) pid() int { return p.cmd.Process.Pid }

// targetHealth returns the admin API's view of target addr in upstream web.
func (p *sharedProc) targetHealth(c *http.Client, addr string) (state, checkedBy string, err error) {
	resp, err := c.Get("http://" + p.admin + "/api/v1/upstreams")
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	var body struct {
		Upstreams []struct {
			Name    string `json:"name"`
			Targets []struct {
				Address string `json:"address"`
				Health  struct {
					State     string `json:"state"`
					CheckedBy string `json:"checked_by"`
				} `json:"health"`
			} `json:"targets"`
		} `json:"upstreams"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", "", fmt.Errorf("decode upstreams: %w", err)
	}
	for _, u := range body.Upstreams {
		for _, tg := range u.Targets {
			if u.Name == "web" && tg.Address == addr {
				return tg.Health.State, tg.Health.CheckedBy, nil
			}
		}
	}
	return "", "", fmt.Errorf("target %s not in /api/v1/upstreams", addr)
}

// metric returns the value of an unlabelled metric from /metrics.
func (p *sharedProc) metric(c *http.Client, name string) (string, error) {
	resp, err := c.Get("http://" + p.admin + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("%s not in /metrics", name)
}

// eventually polls cond every 20 ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %s", what, d, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// loadResult counts what a load run saw.
type loadResult struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []string
}

func (r *loadResult) fail(msg string) {
	r.failed.Add(1)
	r.mu.Lock()
	if len(r.errs) < 10 {
		r.errs = append(r.errs, msg)
	}
	r.mu.Unlock()
}

// runLoad sends perProc requests per second through each process (4
// clients each, X-Via naming the process) until ctx ends; the returned
// function waits for the clients and returns the counts.
func runLoad(ctx context.Context, c *http.Client, procs []*sharedProc, perProc int) func() *loadResult {
	res := &loadResult{}
	var wg sync.WaitGroup
	const clients = 4
	every := time.Duration(clients) * time.Second / time.Duration(perProc)
	for _, p := range procs {
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tick := time.NewTicker(every)
				defer tick.Stop()
				for {
					select {
					case <-ctx.Done():
						return
					case <-tick.C:
					}
					req, _ := http.NewRequest(http.MethodGet, "http://"+p.http+"/load", nil)
					req.Header.Set("X-Via", p.name)
					resp, err := c.Do(req)
					if err != nil {
						res.fail(fmt.Sprintf("%s: %v", p.name, err))
						continue
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						res.fail(fmt.Sprintf("%s: status %d from %s", p.name, resp.StatusCode, resp.Header.Get("X-Backend")))
						continue
					}
					res.ok.Add(1)
				}
			}()
		}
	}
	return func() *loadResult { wg.Wait(); return res }
}

// TestSharedHealthRedis runs real handoff processes on one real Redis and
// measures what the issue promises of shared health: N processes probe
// like one, a verdict reaches every process within a second, a process
// started later never sends traffic to a target known down, the prober
// role survives kill -9 of its holder within the lease time, and a Redis
// outage fails no request and heals when Redis is back.
func TestSharedHealthRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four handoff processes and a redis-server (about 30 s)")
	}
	statetest.RequireRedis(t)
	redis := statetest.StartRedis(t)
	a, b := newFlipBackend(t, "a"), newFlipBackend(t, "b")
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	admin := &http.Client{Timeout: 2 * time.Second}

	// (a) Probe load: one process alone, then three, over the same window.
	const window = 3 * time.Second
	p1 := startShared(t, "p1", redis.Addr, a, b)
	eventually(t, 5*time.Second, "p1 probes a", func() (bool, string) {
		_, ok := a.firstProbeAfter(time.Time{})
		return ok, "no probe yet"
	})
	from := time.Now()
	time.Sleep(window) // a measurement window, not a wait for a condition
	one := a.probesBetween(from, time.Now())
	p2 := startShared(t, "p2", redis.Addr, a, b)
	p3 := startShared(t, "p3", redis.Addr, a, b)
	from = time.Now()
	time.Sleep(window)
	three := a.probesBetween(from, time.Now())
	t.Logf("(a) probes of a in %s: %d with 1 process, %d with 3 processes (interval %s)", window, one, three, probeInterval)
	if want := int(window / probeInterval); one < want/2 {
		t.Fatalf("(a) only %d probes in %s from one process; want about %d", one, window, want)
	}
	if three > one+one/2+1 {
		t.Errorf("(a) %d probes with 3 processes vs %d with 1: every process probes", three, one)
	}
	procs := []*sharedProc{p1, p2, p3}

	// (b) b fails its checks: time from the verdict until no process sends it a request.
	ctx, stop := context.WithCancel(context.Background())
	wait := runLoad(ctx, c, procs, 100)
	eventually(t, 5*time.Second, "every process sends to b before it fails", func() (bool, string) {
		for _, p := range procs {
			if b.countFrom(p.name) == 0 {
				return false, p.name + " sent b nothing"
			}
		}
		return true, ""
	})
	b.setDown(true)
	eventually(t, 5*time.Second, "a verdict on b", func() (bool, string) {
		return !b.verdictAt().IsZero(), "no failed probe of b yet"
	})
	verdict := b.verdictAt()
	// Quiet for a second: no process sent b a request for 1 s.
	eventually(t, 10*time.Second, "no process sends to b", func() (bool, string) {
		for _, p := range procs {
			if l := b.lastFrom(p.name); time.Since(l) < time.Second || time.Since(verdict) < time.Second {
				return false, fmt.Sprintf("%s sent b a request %s ago", p.name, time.Since(l))
			}
		}
		return true, ""
	})
	stop()
	t.Logf("(b) b's verdict applied (from each process's log): %s", appliedAfter(procs, hostPort(b.srv), verdict))
	if r := wait(); r.failed.Load() > 0 {
		t.Errorf("(b) %d of %d requests failed while b was being taken out: %v", r.failed.Load(), r.failed.Load()+r.ok.Load(), r.errs)
	}
	var worst time.Duration
	var per []string
	for _, p := range procs {
		d := b.lastFrom(p.name).Sub(verdict)
		per = append(per, fmt.Sprintf("%s %+dms", p.name, d.Milliseconds()))
		worst = max(worst, d)
	}
	t.Logf("(b) last request to b relative to its verdict (negative: before it): %s", strings.Join(per, ", "))
	if worst >= time.Second {
		t.Errorf("(b) a process sent b requests %s after the verdict; want < 1s", worst)
	}

	// (c) A fourth process started while b is down sends it nothing.
	p4 := startShared(t, "p4", redis.Addr, a, b)
	for i := range 40 {
		req, _ := http.NewRequest(http.MethodGet, "http://"+p4.http+"/late", nil)
		req.Header.Set("X-Via", p4.name)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("(c) request %d through p4: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("(c) request %d through p4: status %d", i, resp.StatusCode)
		}
	}
	n4 := b.countFrom(p4.name)
	t.Logf("(c) p4, started while b was down: %d of 40 requests to b", n4)
	if n4 != 0 {
		t.Errorf("(c) p4 sent b %d of 40 requests although the others knew it was down", n4)
	}
	procs = append(procs, p4)

	// (d) kill -9 the lease holder; another process takes over probing.
	holder := findHolder(t, admin, procs, hostPort(b.srv))
	t.Logf("(d) lease holder: %s (pid %d)", holder.name, holder.pid())
	killed := time.Now()
	_ = holder.cmd.Process.Kill()
	holder.wait(5 * time.Second)
	reaped := time.Now()
	var resumed time.Time
	eventually(t, 2*leaseTTL+time.Second, "another process probes", func() (bool, string) {
		pa, oka := a.firstProbeAfter(reaped)
		pb, okb := b.firstProbeAfter(reaped)
		switch {
		case oka && okb:
			resumed = minTime(pa, pb)
		case oka:
			resumed = pa
		case okb:
			resumed = pb
		default:
			return false, "no probe since the holder was killed"
		}
		return true, ""
	})
	takeover := resumed.Sub(killed)
	var alive []*sharedProc
	for _, p := range procs {
		if p != holder {
			alive = append(alive, p)
		}
	}
	next := findHolder(t, admin, alive, hostPort(b.srv))
	t.Logf("(d) probes resumed %dms after kill -9 of the holder, by %s (lease %s + interval %s = %s)",
		takeover.Milliseconds(), next.name, leaseTTL, probeInterval, leaseTTL+probeInterval)
	// A little slack for scheduling on a loaded machine: the bound itself
	// is the lease's expiry plus one retry interval.
	if limit := leaseTTL + probeInterval + 250*time.Millisecond; takeover > limit {
		t.Errorf("(d) takeover took %s; want <= %s", takeover, limit)
	}

	// (e) Redis stops under load: nothing fails, every process says so in
	// its metrics; Redis comes back: the processes share verdicts again.
	b.setDown(false)
	eventually(t, 5*time.Second, "b healthy everywhere", func() (bool, string) {
		for _, p := range alive {
			if st, _, err := p.targetHealth(admin, hostPort(b.srv)); err != nil || st != "healthy" {
				return false, fmt.Sprintf("%s: %s %v", p.name, st, err)
			}
		}
		return true, ""
	})
	outage(t, c, admin, redis, alive)

	// After the restart: one process probes again, and a new verdict
	// reaches every process through Redis.
	eventually(t, 3*leaseTTL, "a single prober after Redis came back", func() (bool, string) {
		to := time.Now()
		n := a.probesBetween(to.Add(-2*time.Second), to)
		return n <= int(2*time.Second/probeInterval)+2, fmt.Sprintf("%d probes of a in the last 2s", n)
	})
	ctx, stop = context.WithCancel(context.Background())
	loadStart := time.Now()
	wait = runLoad(ctx, c, alive, 40)
	eventually(t, 5*time.Second, "every process sends to b again", func() (bool, string) {
		for _, p := range alive {
			if !b.lastFrom(p.name).After(loadStart) {
				return false, p.name + " sent b nothing yet"
			}
		}
		return true, ""
	})
	b.setDown(true)
	eventually(t, 5*time.Second, "a verdict on b after Redis came back", func() (bool, string) {
		return !b.verdictAt().IsZero(), "no failed probe of b yet"
	})
	verdict = b.verdictAt()
	prober := findHolder(t, admin, alive, hostPort(b.srv))
	eventually(t, 10*time.Second, "every process applies the new verdict", func() (bool, string) {
		for _, p := range alive {
			st, by, err := p.targetHealth(admin, hostPort(b.srv))
			if err != nil || st != "unhealthy" || by != holderOf(prober) {
				return false, fmt.Sprintf("%s: state %s checked_by %s %v", p.name, st, by, err)
			}
			if l := b.lastFrom(p.name); time.Since(l) < time.Second || time.Since(verdict) < time.Second {
				return false, fmt.Sprintf("%s sent b a request %s ago", p.name, time.Since(l))
			}
		}
		return true, ""
	})
	stop()
	t.Logf("(e) b's verdict applied after Redis came back: %s", appliedAfter(alive, hostPort(b.srv), verdict))
	if r := wait(); r.failed.Load() > 0 {
		t.Errorf("(e) %d requests failed after Redis came back: %v", r.failed.Load(), r.errs)
	}
	worst, per = -time.Hour, nil
	for _, p := range alive {
		d := b.lastFrom(p.name).Sub(verdict)
		per = append(per, fmt.Sprintf("%s %+dms", p.name, d.Milliseconds()))
		worst = max(worst, d)
	}
	t.Logf("(e) after Redis came back: verdict by %s applied by all %d processes (checked_by in each admin API); last request to b relative to the verdict: %s",
		prober.name, len(alive), strings.Join(per, ", "))
	if worst >= time.Second {
		t.Errorf("(e) a process sent b requests %s after the verdict; want < 1s", worst)
	}
}

// outage stops Redis under a few hundred requests a second across procs,
// checks that none fails and that handoff_state_backend_up goes to 0,
// then restarts Redis on the same port and waits for it to go back to 1.
func outage(t *testing.T, c, admin *http.Client, redis *statetest.Redis, procs []*sharedProc) {
	t.Helper()
	const perProc = 100
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	began := time.Now()
	wait := runLoad(ctx, c, procs, perProc)
	time.Sleep(time.Second) // load before the outage, a measurement window
	redis.Stop()
	down := time.Now()
	backendUp := func(want string) func() (bool, string) {
		return func() (bool, string) {
			for _, p := range procs {
				if v, err := p.metric(admin, "handoff_state_backend_up"); err != nil || v != want {
					return false, fmt.Sprintf("%s: handoff_state_backend_up %q %v", p.name, v, err)
				}
			}
			return true, ""
		}
	}
	eventually(t, 5*time.Second, "handoff_state_backend_up 0 everywhere", backendUp("0"))
	noticed := time.Since(down)
	time.Sleep(2 * time.Second) // load during the outage, a measurement window
	stop()
	r := wait()
	took := time.Since(began)
	total := r.ok.Load() + r.failed.Load()
	t.Logf("(e) Redis stopped under load: %d requests in %.1fs (%.0f req/s) across %d processes, %d failed; handoff_state_backend_up 0 everywhere %dms after the stop",
		total, took.Seconds(), float64(total)/took.Seconds(), len(procs), r.failed.Load(), noticed.Milliseconds())
	if r.failed.Load() > 0 {
		t.Errorf("(e) %d of %d requests failed with Redis down: %v", r.failed.Load(), total, r.errs)
	}
	redis.Restart()
	restarted := time.Now()
	eventually(t, 15*time.Second, "handoff_state_backend_up 1 everywhere", backendUp("1"))
	t.Logf("(e) Redis restarted: handoff_state_backend_up 1 everywhere %dms later", time.Since(restarted).Milliseconds())
}

// findHolder polls the admin APIs until every process names the same
// live process as the one that checked target addr, and returns it.
func findHolder(t *testing.T, admin *http.Client, procs []*sharedProc, addr string) *sharedProc {
	t.Helper()
	var found *sharedProc
	eventually(t, 10*time.Second, "one process holds the probing lease", func() (bool, string) {
		found = nil
		var seen []string
		for _, p := range procs {
			_, by, err := p.targetHealth(admin, addr)
			if err != nil {
				return false, err.Error()
			}
			seen = append(seen, p.name+"="+by)
			var h *sharedProc
			for _, q := range procs {
				if by == holderOf(q) {
					h = q
				}
			}
			if h == nil || (found != nil && h != found) {
				return false, "checked_by: " + strings.Join(seen, " ")
			}
			found = h
		}
		return true, ""
	})
	return found
}

// holderOf is how handoff names p in leases and verdicts (host:pid).
func holderOf(p *sharedProc) string {
	host, _ := os.Hostname()
	return host + ":" + strconv.Itoa(p.pid())
}

// appliedAfter reads from each process's log when it acted on a verdict
// that target addr is down, reached after verdict: the prober logs
// "target unhealthy", the others "shared health verdict applied". It
// returns, per process, the delay after the verdict.
func appliedAfter(procs []*sharedProc, addr string, verdict time.Time) string {
	var out []string
	for _, p := range procs {
		got := "never"
		for _, line := range strings.Split(p.output(), "\n") {
			var rec struct {
				Time    time.Time `json:"time"`
				Msg     string    `json:"msg"`
				Target  string    `json:"target"`
				Healthy *bool     `json:"healthy"`
			}
			if json.Unmarshal([]byte(line), &rec) != nil || rec.Target != addr || rec.Time.Before(verdict.Add(-time.Millisecond)) {
				continue
			}
			if rec.Msg == "target unhealthy" || (rec.Msg == "shared health verdict applied" && rec.Healthy != nil && !*rec.Healthy) {
				got = fmt.Sprintf("%.1fms (%s)", float64(rec.Time.Sub(verdict).Microseconds())/1000, rec.Msg)
				break
			}
		}
		out = append(out, p.name+" "+got)
	}
	return strings.Join(out, ", ")
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
