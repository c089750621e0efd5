package admin

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDashboardFleet: the fleet, Redis, systemd and rate-limit facts reach
// both the page and the overview JSON.
func TestDashboardFleet(t *testing.T) {
	o := Options{
		Now: func() time.Time { return base },
		Process: func() ProcessInfo {
			return ProcessInfo{Version: "v1", Holder: "a:1", Upgrades: 2, UpgradesDone: 1,
				Systemd: SystemdInfo{Notify: true, SocketActivated: true, WatchdogSeconds: 30, FDStored: 2}}
		},
		Listeners: func() []ListenerInfo {
			return []ListenerInfo{{Name: "web", Address: "[::]:80", Protocol: "http", Source: SourceSystemd}}
		},
		State: func() StateInfo { return StateInfo{Backend: "redis", Up: true, LatencyMS: 0.42, LastBeat: base} },
		Fleet: func() []MemberInfo {
			return []MemberInfo{
				{ID: "a:1", Version: "v1", LastBeat: base.Add(-2 * time.Second), Self: true},
				{ID: "b:2", Version: "v1", LastBeat: base.Add(-4 * time.Second), Generation: 3},
			}
		},
		RateLimits: func() []RateLimitInfo {
			return []RateLimitInfo{{Route: "api", Key: "192.0.2.7", Denied: 17, Last: base.Add(-time.Second)}}
		},
	}
	srv := serve(t, o)
	page := do(t, srv, http.MethodGet, PathDashboard)
	for _, want := range []string{
		`data-member="a:1" class="self"`, "this process", `data-member="b:2"`, "4s ago",
		"Redis up", "0.4 ms", "systemd socket", "socket-activated", "watchdog every 30s", "fd store 2 fds",
		"started by upgrade #2; 1 handed over", "192.0.2.7", ">17<",
	} {
		if !strings.Contains(page.body, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	var ov Overview
	if err := json.Unmarshal([]byte(do(t, srv, http.MethodGet, PathOverview).body), &ov); err != nil {
		t.Fatal(err)
	}
	if len(ov.Fleet) != 2 || !ov.Fleet[0].Self || ov.State.LatencyMS != 0.42 || len(ov.RateLimits) != 1 ||
		ov.Listeners[0].Source != SourceSystemd || !ov.Process.Systemd.SocketActivated {
		t.Fatalf("overview %+v", ov)
	}
}
