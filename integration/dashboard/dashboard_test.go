//go:build browser

package dashboard

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// handoff builds the binary under test.
func handoff(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "handoff")
	cmd := exec.Command("go", "build", "-o", bin, "../../cmd/handoff")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build handoff: %v\n%s", err, out)
	}
	return bin
}

// start runs handoff with cfg and returns the http listener's and the
// admin API's addresses, from its "serving" log line.
func start(t *testing.T, bin, cfg string) (httpAddr, adminAddr string) {
	t.Helper()
	cmd := exec.Command(bin, "-c", cfg)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var rec struct {
				Msg       string   `json:"msg"`
				Listeners []string `json:"listeners"`
				Admin     string   `json:"admin"`
			}
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "serving" && len(rec.Listeners) > 0 {
				_, a, _ := strings.Cut(rec.Listeners[0], "://")
				ready <- [2]string{a, rec.Admin}
			}
			t.Log(sc.Text())
		}
	}()
	select {
	case a := <-ready:
		return a[0], a[1]
	case <-time.After(20 * time.Second):
		t.Fatal("handoff did not start serving")
	}
	return "", ""
}

// chromium runs headless Chromium on url with extra flags and returns its
// stdout and its log. --virtual-time-budget lets the page's script fetch
// and draw before the DOM is dumped.
func chromium(t *testing.T, url string, extra ...string) (stdout, log string) {
	t.Helper()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
		"--enable-logging=stderr", "--v=0", "--user-data-dir=" + t.TempDir(), "--no-first-run",
		"--disable-extensions", "--disable-component-update"}, extra...)
	cmd := exec.Command("chromium", append(args, url)...)
	var so, se strings.Builder
	cmd.Stdout, cmd.Stderr = &so, &se
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("chromium: %v\n%s", err, se.String())
		}
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("chromium did not finish")
	}
	return so.String(), se.String()
}

func TestDashboardInBrowser(t *testing.T) {
	if _, err := exec.LookPath("chromium"); err != nil {
		t.Skip("chromium not installed (make dashboard-test installs it)")
	}
	alpha := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "alpha")
	}))
	defer alpha.Close()
	beta := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	defer beta.Close()
	alphaAddr, betaAddr := strings.TrimPrefix(alpha.URL, "http://"), strings.TrimPrefix(beta.URL, "http://")
	cfg := filepath.Join(t.TempDir(), "handoff.yaml")
	err := os.WriteFile(cfg, fmt.Appendf(nil, `listeners: [{name: http, address: "127.0.0.1:0", protocol: http}]
admin: {listen: "127.0.0.1:0"}
log: {access: false}
cache: {max_memory: 16MiB}
upstreams:
  alpha-pool: {targets: [{address: %q}]}
  beta-pool:
    targets: [{address: %q}]
    health: {active: {type: http, path: /healthz, interval: 500ms, timeout: 200ms, healthy_threshold: 1, unhealthy_threshold: 1}}
routes:
  - {name: beta, match: {path_prefix: /beta}, upstream: beta-pool}
  - {name: limited, match: {path_prefix: /limited}, upstream: alpha-pool, rate_limit: {requests: 1, per: 1h}}
  - {name: static, match: {path_prefix: /static}, upstream: alpha-pool, cache: {enabled: true}}
  - {name: default, match: {}, upstream: alpha-pool}
`, alphaAddr, betaAddr), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	httpAddr, adminAddr := start(t, handoff(t), cfg)

	c := &http.Client{Timeout: 5 * time.Second}
	get := func(path string) int {
		resp, err := c.Get("http://" + httpAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	// Spread over a few seconds, so the sparklines have a shape.
	for i := range 40 {
		get("/static/app.css")
		get("/page/" + strconv.Itoa(i))
		if i%8 == 7 {
			time.Sleep(700 * time.Millisecond)
		}
	}
	for range 5 {
		get("/beta/x") // 503: no healthy target once the checks failed
	}
	for range 4 {
		get("/limited") // one allowed, three denied: 127.0.0.1 is limited
	}
	// Wait for the failing checks to mark beta unhealthy.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := c.Get("http://" + adminAddr + "/api/v1/upstreams")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), `"state": "unhealthy"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("beta never became unhealthy:\n%s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}

	url := "http://" + adminAddr + "/"
	dom, log := chromium(t, url, "--dump-dom")
	for _, want := range []string{"alpha-pool", "beta-pool", alphaAddr, betaAddr, "unhealthy (failing checks)", "this process", "<svg"} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered page lacks %q", want)
		}
	}
	if n := number(t, dom, `id="total-requests">(\d+)<`); n < 85 {
		t.Errorf("request count on the page = %v, want at least 85", n)
	}
	if r := number(t, dom, `id="cache-ratio">([\d.]+)%<`); r < 90 {
		t.Errorf("cache hit ratio on the page = %v%%, want at least 90%% (39 hits of 40)", r)
	}
	// The fleet lists this process (marked) from its heartbeat; the
	// Process panel says how it runs; the rate limits list who is limited.
	for _, want := range []string{`id="fleet-table"`, `class="self"`, "self-bound", "watchdog off",
		"started fresh", `<td>limited</td><th scope="row">127.0.0.1</th><td class="num">3</td>`} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered page lacks %q", want)
		}
	}
	if n := strings.Count(dom, "data-member="); n != 1 {
		t.Errorf("fleet lists %d members, want 1 (this process)", n)
	}
	if strings.Contains(dom, "Live update failed") {
		t.Error("the page's script failed to fetch the API")
	}
	ext := regexp.MustCompile(`(?:src|href|action)="((?:https?:)?//[^"]+)"`)
	for _, m := range ext.FindAllStringSubmatch(dom, -1) {
		if !strings.HasPrefix(m[1], "http://"+adminAddr) {
			t.Errorf("page loads an external resource: %s", m[1])
		}
	}
	for _, bad := range []string{"Uncaught", "Content Security Policy", "Failed to load resource", "ERR_BLOCKED"} {
		for _, line := range strings.Split(log, "\n") {
			if strings.Contains(line, bad) {
				t.Errorf("console error: %s", line)
			}
		}
	}

	shot := os.Getenv("DASHBOARD_SCREENSHOT")
	if shot == "" {
		shot = filepath.Join(os.TempDir(), "handoff-dashboard.png")
	}
	if abs, err := filepath.Abs(shot); err == nil {
		shot = abs
	}
	chromium(t, url, "--screenshot="+shot, "--window-size=1280,1600", "--hide-scrollbars")
	if st, err := os.Stat(shot); err != nil || st.Size() < 10_000 {
		t.Errorf("screenshot %s: %v (%d bytes)", shot, err, sizeOf(st))
	}
	t.Logf("screenshot: %s", shot)
	t.Logf("DOM after scripts: %d bytes", len(dom))
}

func number(t *testing.T, s, re string) float64 {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	if m == nil {
		t.Errorf("page has no match for %s", re)
		return -1
	}
	f, _ := strconv.ParseFloat(m[1], 64)
	return f
}

func sizeOf(st os.FileInfo) int64 {
	if st == nil {
		return 0
	}
	return st.Size()
}
