package health

import (
	"testing"
	"time"
)

func TestActiveJudgeThresholds(t *testing.T) {
	th := Thresholds{Healthy: 2, Unhealthy: 3}
	j := activeJudge{healthy: true}
	steps := []struct {
		pass    bool
		healthy bool
		changed bool
	}{
		{false, true, false}, {false, true, false}, {true, true, false}, // a pass resets the failure run
		{false, true, false}, {false, true, false}, {false, false, true}, // third failure in a row
		{true, false, false}, {false, false, false}, {true, false, false}, {true, true, true}, // two passes in a row
	}
	for i, s := range steps {
		changed := j.observe(s.pass, th)
		if j.healthy != s.healthy || changed != s.changed {
			t.Fatalf("step %d (pass=%v): healthy %v changed %v, want %v %v", i, s.pass, j.healthy, changed, s.healthy, s.changed)
		}
	}
}

func TestActiveJudgeThresholdOfOne(t *testing.T) {
	j := activeJudge{healthy: true}
	if !j.observe(false, Thresholds{Healthy: 1, Unhealthy: 1}) || j.healthy {
		t.Fatal("one failure with unhealthy_threshold 1 did not flip")
	}
	if !j.observe(true, Thresholds{Healthy: 1, Unhealthy: 1}) || !j.healthy {
		t.Fatal("one pass with healthy_threshold 1 did not flip")
	}
}

func TestPassiveJudge(t *testing.T) {
	spec := PassiveSpec{ConsecutiveFailures: 3, TimeoutCounts: true, BaseEjection: 5 * time.Second, MaxEjection: 30 * time.Second}
	now := time.Unix(1_700_000_000, 0)
	var j passiveJudge
	fail := Result{Outcome: ConnectFailed}
	ok := Result{Outcome: Success, Status: 200}
	for i := range 2 {
		if until := j.observe(fail, spec, now, nil); !until.IsZero() {
			t.Fatalf("failure %d ejected before the third", i+1)
		}
	}
	if until := j.observe(ok, spec, now, nil); !until.IsZero() {
		t.Fatal("a success ejected")
	}
	// The success reset the run: three more failures are needed.
	var until time.Time
	for range 3 {
		until = j.observe(fail, spec, now, nil)
	}
	if got := until.Sub(now); got != 5*time.Second {
		t.Fatalf("first ejection %v, want base 5s", got)
	}
	// Failures while ejected do not extend it.
	if u := j.observe(fail, spec, now.Add(time.Second), nil); !u.IsZero() {
		t.Fatal("a failure during the ejection extended it")
	}
	// Each repeated ejection doubles, capped at max: 10s, 20s, 30s, 30s.
	want := []time.Duration{10 * time.Second, 20 * time.Second, 30 * time.Second, 30 * time.Second}
	for i, w := range want {
		now = until // the trial after the ejection
		for range 3 {
			until = j.observe(fail, spec, now, nil)
		}
		if got := until.Sub(now); got != w {
			t.Fatalf("ejection %d: %v, want %v", i+2, got, w)
		}
	}
	// Never ejected for good: after the last ejection the target is
	// eligible again, and a long healthy stretch forgets the count.
	now = until.Add(30 * time.Second)
	j.observe(ok, spec, now, nil)
	for range 3 {
		until = j.observe(fail, spec, now, nil)
	}
	if got := until.Sub(now); got != 5*time.Second {
		t.Fatalf("after a healthy stretch of max_ejection: %v, want the base 5s again", got)
	}
}

func TestPassiveJudgeJitter(t *testing.T) {
	spec := PassiveSpec{ConsecutiveFailures: 1, BaseEjection: 10 * time.Second}
	now := time.Unix(1_700_000_000, 0)
	var j passiveJudge
	half := func() float64 { return 0.5 }
	until := j.observe(Result{Outcome: ConnectFailed}, spec, now, half)
	if got := until.Sub(now); got != 10*time.Second {
		t.Fatalf("first ejection: %v, want exactly the base 10s", got)
	}
	until = j.observe(Result{Outcome: ConnectFailed}, spec, until, half)
	if got := until.Sub(now.Add(10 * time.Second)); got != 21*time.Second {
		t.Fatalf("second ejection with jitter 0.5: %v, want 20s + 5%% = 21s", got)
	}
}

func TestPassiveFailureKinds(t *testing.T) {
	tests := []struct {
		name string
		spec PassiveSpec
		r    Result
		want bool
	}{
		{name: "connect", r: Result{Outcome: ConnectFailed}, want: true},
		{name: "reset", r: Result{Outcome: Failed}, want: true},
		{name: "timeout not counted", r: Result{Outcome: Timeout}, want: false},
		{name: "timeout counted", spec: PassiveSpec{TimeoutCounts: true}, r: Result{Outcome: Timeout}, want: true},
		{name: "503 not counted", r: Result{Outcome: Success, Status: 503}, want: false},
		{name: "503 counted", spec: PassiveSpec{Status5xx: true}, r: Result{Outcome: Success, Status: 503}, want: true},
		{name: "404 never", spec: PassiveSpec{Status5xx: true}, r: Result{Outcome: Success, Status: 404}, want: false},
	}
	for _, tt := range tests {
		if got := tt.spec.failure(tt.r); got != tt.want {
			t.Errorf("%s: failure = %v, want %v", tt.name, got, tt.want)
		}
	}
}
