package soak

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Thresholds decide the verdict. Zero fields take the defaults below.
type Thresholds struct {
	// RSSSlopePctPerMin is the largest growth of RSS allowed over the
	// second half of the load, as a least-squares slope in percent of the
	// mean RSS per minute. Zero means 1 (%/min). The limit applied is
	// never below twice the slope's standard error: a slope that cannot be
	// told from zero is not a leak (the same holds for goroutines).
	RSSSlopePctPerMin float64 `json:"rss_slope_pct_per_min"`
	// GoroutineSlopePctPerMin is the same for goroutines. Zero means 1.
	GoroutineSlopePctPerMin float64 `json:"goroutine_slope_pct_per_min"`
	// GoroutineSlopeFloor is the goroutine growth per minute always
	// allowed, whatever the mean (a handful of goroutines moving with the
	// load is noise, not a leak). Zero means 0.5 per minute.
	GoroutineSlopeFloor float64 `json:"goroutine_slope_floor_per_min"`
	// SettleSlack is how many goroutines and fds above the baseline still
	// count as "back to baseline". Zero means 2.
	SettleSlack int `json:"settle_slack"`
}

func (t Thresholds) withDefaults() Thresholds {
	if t.RSSSlopePctPerMin == 0 {
		t.RSSSlopePctPerMin = 1
	}
	if t.GoroutineSlopePctPerMin == 0 {
		t.GoroutineSlopePctPerMin = 1
	}
	if t.GoroutineSlopeFloor == 0 {
		t.GoroutineSlopeFloor = 0.5
	}
	if t.SettleSlack == 0 {
		t.SettleSlack = 2
	}
	return t
}

// settled reports whether s is back to the baseline b within the slack.
func (t Thresholds) settled(b Sample, s Sample) bool {
	slack := float64(t.SettleSlack)
	if s.FDs > b.FDs+t.SettleSlack {
		return false
	}
	return b.Goroutines < 0 || s.Goroutines <= b.Goroutines+slack
}

// Verdict is the judgement of a soak.
type Verdict struct {
	// Pass reports whether every criterion held.
	Pass bool `json:"pass"`
	// Problems lists the criteria that failed, in words.
	Problems   []string   `json:"problems,omitempty"`
	Thresholds Thresholds `json:"thresholds"`

	// Over the second half of the load phase:
	MeanRSSBytes         float64 `json:"mean_rss_bytes"`
	RSSSlopePctPerMin    float64 `json:"rss_slope_pct_per_min"`
	MeanGoroutines       float64 `json:"mean_goroutines"`
	GoroutineSlopePerMin float64 `json:"goroutine_slope_per_min"`
	// GoroutineLimitPerMin is the allowed slope for this mean and noise.
	GoroutineLimitPerMin float64 `json:"goroutine_limit_per_min"`
	// RSSLimitPctPerMin is the allowed RSS slope for this noise.
	RSSLimitPctPerMin float64 `json:"rss_limit_pct_per_min"`

	Baseline Sample `json:"baseline"`
	Final    Sample `json:"final"`
	// SettledAfter is how long after the load the proxy was back to
	// baseline; negative when it never was.
	SettledAfter time.Duration `json:"settled_after_ns"`

	Requests int64 `json:"requests"`
	Failures int64 `json:"failures"`
}

// baselineOf is the median (per field) of the last three baseline samples.
func baselineOf(ss []Sample) Sample {
	var b []Sample
	for _, s := range ss {
		if s.Phase == PhaseBaseline {
			b = append(b, s)
		}
	}
	if len(b) == 0 {
		return Sample{Goroutines: -1}
	}
	b = b[max(0, len(b)-3):]
	med := func(f func(Sample) float64) float64 {
		xs := make([]float64, len(b))
		for i, s := range b {
			xs[i] = f(s)
		}
		slices.Sort(xs)
		return xs[len(xs)/2]
	}
	out := b[len(b)-1]
	out.RSS = int64(med(func(s Sample) float64 { return float64(s.RSS) }))
	out.FDs = int(med(func(s Sample) float64 { return float64(s.FDs) }))
	out.Goroutines = med(func(s Sample) float64 { return s.Goroutines })
	return out
}

// Evaluate judges samples: steady RSS and goroutines over the second half
// of the load, goroutines and fds back to baseline after it, no failed
// request.
func Evaluate(ss []Sample, th Thresholds) Verdict {
	th = th.withDefaults()
	v := Verdict{Thresholds: th, SettledAfter: -1, Baseline: baselineOf(ss)}
	var load []Sample
	var loadEnd time.Duration
	for _, s := range ss {
		if s.Phase == PhaseLoad {
			load = append(load, s)
			loadEnd = s.At
		}
	}
	if len(ss) > 0 {
		v.Final = ss[len(ss)-1]
		v.Requests, v.Failures = v.Final.Requests, v.Final.Failures
	}
	if len(load) < 4 {
		v.Problems = append(v.Problems, fmt.Sprintf("only %d load samples: too short to judge", len(load)))
	} else {
		half := load[len(load)/2:]
		xs := make([]float64, len(half))
		rss := make([]float64, len(half))
		gor := make([]float64, len(half))
		for i, s := range half {
			xs[i] = s.At.Minutes()
			rss[i] = float64(s.RSS)
			gor[i] = s.Goroutines
		}
		// A slope within two standard errors of zero is not told apart
		// from noise (short soaks, bursty load): the limit is never
		// tighter than that.
		v.MeanRSSBytes = mean(rss)
		v.RSSLimitPctPerMin = th.RSSSlopePctPerMin
		if v.MeanRSSBytes > 0 {
			b, se := slope(xs, rss)
			v.RSSSlopePctPerMin = b / v.MeanRSSBytes * 100
			v.RSSLimitPctPerMin = math.Max(th.RSSSlopePctPerMin, 2*se/v.MeanRSSBytes*100)
		}
		if v.RSSSlopePctPerMin > v.RSSLimitPctPerMin {
			v.Problems = append(v.Problems, fmt.Sprintf("RSS grows %.2f%%/min over the second half of the load (limit %.2f%%/min)", v.RSSSlopePctPerMin, v.RSSLimitPctPerMin))
		}
		if v.Baseline.Goroutines >= 0 {
			v.MeanGoroutines = mean(gor)
			var se float64
			v.GoroutineSlopePerMin, se = slope(xs, gor)
			v.GoroutineLimitPerMin = max(th.GoroutineSlopeFloor, v.MeanGoroutines*th.GoroutineSlopePctPerMin/100, 2*se)
			if v.GoroutineSlopePerMin > v.GoroutineLimitPerMin {
				v.Problems = append(v.Problems, fmt.Sprintf("goroutines grow %.2f/min over the second half of the load (limit %.2f/min)", v.GoroutineSlopePerMin, v.GoroutineLimitPerMin))
			}
		}
	}
	for _, s := range ss {
		if s.Phase == PhaseSettle && th.settled(v.Baseline, s) {
			v.SettledAfter = s.At - loadEnd
			break
		}
	}
	if v.SettledAfter < 0 {
		v.Problems = append(v.Problems, fmt.Sprintf("not back to baseline after the load: goroutines %.0f (baseline %.0f), fds %d (baseline %d), slack %d",
			v.Final.Goroutines, v.Baseline.Goroutines, v.Final.FDs, v.Baseline.FDs, th.SettleSlack))
	}
	if v.Failures > 0 {
		v.Problems = append(v.Problems, fmt.Sprintf("%d of %d requests failed", v.Failures, v.Requests))
	}
	if v.Requests == 0 {
		v.Problems = append(v.Problems, "no request completed")
	}
	v.Pass = len(v.Problems) == 0
	return v
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// slope is the least-squares slope of ys over xs and its standard error.
func slope(xs, ys []float64) (b, se float64) {
	mx, my := mean(xs), mean(ys)
	var num, den float64
	for i := range xs {
		num += (xs[i] - mx) * (ys[i] - my)
		den += (xs[i] - mx) * (xs[i] - mx)
	}
	if den == 0 {
		return 0, 0
	}
	b = num / den
	if len(xs) > 2 {
		var rss float64
		for i := range xs {
			r := ys[i] - my - b*(xs[i]-mx)
			rss += r * r
		}
		se = math.Sqrt(rss / float64(len(xs)-2) / den)
	}
	return b, se
}
