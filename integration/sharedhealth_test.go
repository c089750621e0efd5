//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Shared health in the workers scenario: active checks every
// healthInterval; the probing lease lives max(3×interval, 2s).
const (
	healthInterval = 500 * time.Millisecond
	healthLease    = 2 * time.Second
	redisURL       = "redis://127.0.0.1:6379/0"
	downFile       = "/run/backend-b-down"
)

// TestWorkersSharedHealth: the three handoff@ workers share health
// verdicts and the probing lease through a redis-server inside the
// container. One worker at a time probes; a target that fails its checks
// gets no request from any worker; stopping the lease holder hands probing
// to another worker, and the worker started again loads the verdicts
// before it is ready and does not probe.
func TestWorkersSharedHealth(t *testing.T) {
	b := newBox(t, boxOptions{})
	if _, err := b.try("test", "-x", "/usr/bin/redis-server"); err != nil {
		t.Fatalf("no redis-server in the image (integration/rootfs.sh installs it): %v", err)
	}
	b.writeFile("/etc/handoff-it-redis.conf", []byte("bind 127.0.0.1\nport 6379\nsave \"\"\nappendonly no\ndir /tmp\n"), 0o644)
	b.run("systemd-run", "--unit=it-redis", "/usr/bin/redis-server", "/etc/handoff-it-redis.conf")
	b.eventually(10*time.Second, "redis answers", func() (bool, string) {
		out, err := b.try("redis-cli", "ping")
		return strings.TrimSpace(out) == "PONG", fmt.Sprint(out, err)
	})
	// Both answer /healthz; only b's file is ever created.
	a := b.startBackend("a", 8081, "-health-file", "/run/backend-a-down")
	bad := b.startBackend("b", 8082, "-health-file", downFile)
	b.writeConfig(cfg{Target: a, Targets: []string{bad}, HealthPath: "/healthz", HealthInterval: healthInterval, RedisURL: redisURL})
	b.run("systemctl", "start", "handoff-workers.target")
	workers := []*worker{}
	for i := 1; i <= 3; i++ {
		w := &worker{b: b, n: i}
		w.pid = b.waitActive(w.unit(), "", 10*time.Second)
		workers = append(workers, w)
	}
	t.Cleanup(func() {
		for _, w := range workers {
			w.close()
		}
	})
	for _, w := range workers {
		if v := w.metric("handoff_state_backend_up"); v != 1 {
			t.Fatalf("%s: handoff_state_backend_up %v, want 1", w.unit(), v)
		}
	}

	// One prober: every worker names the same one, and only its check
	// counter moves.
	holder := b.holder(workers, bad)
	const window = 3 * time.Second
	before := checksOf(workers, bad)
	time.Sleep(window) // a measurement window
	after := checksOf(workers, bad)
	var probers []string
	probes := 0
	for i, w := range workers {
		if d := after[i] - before[i]; d > 0 {
			probers = append(probers, fmt.Sprintf("%s: %d", w.unit(), d))
			probes += d
		}
	}
	t.Logf("checks of b in %s: %v (holder %s, interval %s)", window, probers, holder.unit(), healthInterval)
	if len(probers) != 1 || after[holder.n-1] == before[holder.n-1] {
		t.Fatalf("want checks from the lease holder %s only, got %v", holder.unit(), probers)
	}

	// b fails its checks under load: every worker takes it out.
	l := b.startLoad("8 workers: shared health via Redis", loadOptions{Rate: 300})
	b.eventually(10*time.Second, "every worker sends requests to b", func() (bool, string) {
		for _, w := range workers {
			if w.target(bad).Requests == 0 {
				return false, w.unit() + " sent b nothing yet"
			}
		}
		return true, ""
	})
	flipped := time.Now()
	b.run("touch", downFile) // /run is the container's tmpfs, not the root tree
	b.eventually(5*time.Second, "b unhealthy in every worker", func() (bool, string) {
		for _, w := range workers {
			if tg := w.target(bad); tg.Health.State != "unhealthy" || tg.Health.CheckedBy != holder.id() {
				return false, fmt.Sprintf("%s: %+v", w.unit(), tg.Health)
			}
		}
		return true, ""
	})
	outAfter := time.Since(flipped)
	reqs := func() []uint64 {
		var r []uint64
		for _, w := range workers {
			r = append(r, w.target(bad).Requests)
		}
		return r
	}
	r0 := reqs()
	time.Sleep(2 * time.Second) // a window of load in which b must get nothing
	if r1 := reqs(); fmt.Sprint(r0) != fmt.Sprint(r1) {
		t.Errorf("requests to b by worker went from %v to %v after every worker knew it was down", r0, r1)
	}
	t.Logf("b failed its checks: unhealthy in all 3 workers within %dms of the flip (check interval %s); requests to b by worker frozen at %v",
		outAfter.Milliseconds(), healthInterval, r0)

	// Stop the lease holder: another worker probes within the lease time
	// (a clean stop releases it, so about one interval).
	stopped := time.Now()
	b.run("systemctl", "stop", holder.unit())
	var others []*worker
	for _, w := range workers {
		if w != holder {
			others = append(others, w)
		}
	}
	base := checksOf(others, bad)
	var next *worker
	b.eventually(healthLease+2*healthInterval+time.Second, "another worker probes", func() (bool, string) {
		now := checksOf(others, bad)
		for i, w := range others {
			if now[i] > base[i] {
				next = w
				return true, ""
			}
		}
		return false, fmt.Sprintf("checks %v", now)
	})
	handover := time.Since(stopped)
	t.Logf("%s stopped: %s probes %dms later", holder.unit(), next.unit(), handover.Milliseconds())

	// Start it again: it knows b is down as soon as it is ready, sends it
	// nothing and leaves probing to the new holder.
	b.run("systemctl", "start", holder.unit())
	holder.pid = b.waitActive(holder.unit(), holder.pid, 10*time.Second)
	holder.close()
	if tg := holder.target(bad); tg.Health.State != "unhealthy" || tg.Requests != 0 {
		t.Errorf("%s right after READY: b %+v, %d requests; want unhealthy, 0", holder.unit(), tg.Health, tg.Requests)
	}
	c0 := holder.checks(bad)
	time.Sleep(2 * time.Second) // a window of load in which it must not probe
	if c1, tg := holder.checks(bad), holder.target(bad); c1 != c0 || tg.Requests != 0 {
		t.Errorf("restarted %s: %d checks of b, %d requests to b; want 0, 0", holder.unit(), c1-c0, tg.Requests)
	}
	if h := b.holder(workers, bad); h != next {
		t.Errorf("after the restart %s probes, want %s", h.unit(), next.unit())
	}
	res := l.stop(fmt.Sprintf("1 of 3 probes (%d/%s); b out on all 3 in %dms; prober handed over in %dms",
		probes, window, outAfter.Milliseconds(), handover.Milliseconds()))
	expectClean(t, res, 1000)
}

// worker is one handoff@N instance, reached through its admin socket.
type worker struct {
	b   *box
	n   int
	pid string
	c   *http.Client
}

func (w *worker) unit() string { return fmt.Sprintf("handoff@%d.service", w.n) }

// id is how the worker names itself in leases and verdicts (host:pid);
// the host part is the container's, so only the pid is compared.
func (w *worker) id() string { return w.pid }

// client talks to the worker's admin socket from the host, through the
// container's root (/proc/PID/root), without keep-alives so that nothing
// outlives a call.
func (w *worker) client() *http.Client {
	if w.c == nil {
		sock := fmt.Sprintf("/proc/%d/root/run/handoff-admin/%d.sock", w.b.m.Leader, w.n)
		w.c = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
		}}
	}
	return w.c
}

func (w *worker) close() {
	if w.c != nil {
		w.c.CloseIdleConnections()
		w.c = nil
	}
}

func (w *worker) get(path string) []byte {
	w.b.t.Helper()
	resp, err := w.client().Get("http://admin" + path)
	if err != nil {
		w.b.t.Fatalf("%s admin %s: %v", w.unit(), path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		w.b.t.Fatalf("%s admin %s: %d %v: %s", w.unit(), path, resp.StatusCode, err, body)
	}
	return body
}

// targetView is a target as the admin API shows it.
type targetView struct {
	Address  string `json:"address"`
	Requests uint64 `json:"requests"`
	Health   struct {
		State     string `json:"state"`
		CheckedBy string `json:"checked_by"`
	} `json:"health"`
}

// target returns the worker's view of addr in upstream app.
func (w *worker) target(addr string) targetView {
	w.b.t.Helper()
	var body struct {
		Upstreams []struct {
			Name    string       `json:"name"`
			Targets []targetView `json:"targets"`
		} `json:"upstreams"`
	}
	if err := json.Unmarshal(w.get("/api/v1/upstreams"), &body); err != nil {
		w.b.t.Fatalf("%s: decode upstreams: %v", w.unit(), err)
	}
	for _, u := range body.Upstreams {
		for _, tg := range u.Targets {
			if u.Name == "app" && tg.Address == addr {
				_, pid, _ := strings.Cut(tg.Health.CheckedBy, ":")
				tg.Health.CheckedBy = pid
				return tg
			}
		}
	}
	w.b.t.Fatalf("%s: no target %s in app", w.unit(), addr)
	return targetView{}
}

// metric sums the samples of name (all labels) whose labels contain
// every one of labels.
func (w *worker) metric(name string, labels ...string) float64 {
	w.b.t.Helper()
	sum := 0.0
	for line := range strings.Lines(string(w.get("/metrics"))) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			w.b.t.Fatalf("%s: metric line %q: %v", w.unit(), line, err)
		}
		sum += v
	}
	return sum
}

// checks counts the active checks of addr this worker ran.
func (w *worker) checks(addr string) int {
	return int(w.metric("handoff_health_checks_total", `target="`+addr+`"`))
}

func checksOf(ws []*worker, addr string) []int {
	var out []int
	for _, w := range ws {
		out = append(out, w.checks(addr))
	}
	return out
}

// holder waits until every worker names the same one of them as the
// process whose checks of addr it knows, and returns it.
func (b *box) holder(ws []*worker, addr string) *worker {
	b.t.Helper()
	var found *worker
	b.eventually(10*time.Second, "one worker holds the probing lease", func() (bool, string) {
		found = nil
		var seen []string
		for _, w := range ws {
			by := w.target(addr).Health.CheckedBy
			seen = append(seen, w.unit()+"="+by)
			var h *worker
			for _, x := range ws {
				if x.id() == by {
					h = x
				}
			}
			if h == nil || (found != nil && h != found) {
				return false, strings.Join(seen, " ")
			}
			found = h
		}
		return true, ""
	})
	return found
}
