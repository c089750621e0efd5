package loadgen

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/origin"
)

func TestProbe(t *testing.T) {
	srv := httptest.NewServer(origin.Handler(origin.Options{Name: "beta"}))
	t.Cleanup(srv.Close)
	tests := []struct {
		name        string
		url         string
		wantOutcome Outcome
		wantBackend string
		minMs       float64
	}{
		{name: "root", url: srv.URL + "/", wantOutcome: OK, wantBackend: "beta"},
		{name: "sleep", url: srv.URL + "/sleep?ms=50", wantOutcome: OK, wantBackend: "beta", minMs: 50},
		{name: "bad sleep", url: srv.URL + "/sleep?ms=x", wantOutcome: Status, wantBackend: "beta"},
		{name: "refused", url: "http://" + closedAddr(t) + "/", wantOutcome: Refused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Probe(context.Background(), ProbeOptions{URL: tt.url})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%+v", res)
			if res.Outcome != tt.wantOutcome || res.OK != (tt.wantOutcome == OK) {
				t.Errorf("outcome %q ok %v, want %q", res.Outcome, res.OK, tt.wantOutcome)
			}
			if res.Backend != tt.wantBackend {
				t.Errorf("backend %q, want %q", res.Backend, tt.wantBackend)
			}
			if tt.wantOutcome == OK && res.Body != tt.wantBackend {
				t.Errorf("body %q, want %q", res.Body, tt.wantBackend)
			}
			if res.OK && (res.FirstByteMs < tt.minMs || res.FirstByteMs < res.ConnectMs) {
				t.Errorf("first byte %vms connect %vms, want first byte >= %vms and >= connect", res.FirstByteMs, res.ConnectMs, tt.minMs)
			}
		})
	}
}

func TestHoldWebSocket(t *testing.T) {
	srv := httptest.NewServer(origin.Handler(origin.Options{}))
	t.Cleanup(srv.Close)
	wsURL := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
	res, err := HoldWebSocket(context.Background(), WSOptions{URL: wsURL, Hold: 300 * time.Millisecond, Interval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || res.Echoes < 4 || res.Seconds < 0.3 {
		t.Errorf("%+v: want ok, at least 4 echoes over 300ms", res)
	}
}

func TestHoldWebSocketReportsFailure(t *testing.T) {
	tests := []struct {
		name string
		url  func() string
		want Outcome
	}{
		{name: "refused", url: func() string { return "ws://" + closedAddr(t) + "/ws" }, want: Refused},
		{name: "not a websocket", url: func() string {
			srv := httptest.NewServer(origin.Handler(origin.Options{}))
			t.Cleanup(srv.Close)
			return "ws" + strings.TrimPrefix(srv.URL, "http") + "/"
		}, want: Other},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := HoldWebSocket(context.Background(), WSOptions{URL: tt.url(), Hold: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if res.OK || res.Outcome != tt.want || res.Upgraded {
				t.Errorf("%+v: want failure %q before the upgrade", res, tt.want)
			}
		})
	}
}
