package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/handoff-proxy/handoff/pkg/upstream"
)

// poolCollector reads the live pools at scrape time, so the gauges follow
// reloads without anyone updating them: a removed upstream or target
// simply stops being reported.
type poolCollector struct {
	pools    func() []*upstream.Pool
	now      func() time.Time
	targets  *prometheus.Desc
	inFlight *prometheus.Desc
	healthy  *prometheus.Desc
}

func newPoolCollector(pools func() []*upstream.Pool, now func() time.Time) *poolCollector {
	return &poolCollector{
		pools: pools,
		now:   now,
		targets: prometheus.NewDesc(
			prometheus.BuildFQName(namespace, "upstream", "targets"),
			"Targets of the upstream by state: healthy (may be picked) or unhealthy (ejected).",
			[]string{"upstream", "state"}, nil),
		inFlight: prometheus.NewDesc(
			prometheus.BuildFQName(namespace, "upstream", "target_in_flight"),
			"Requests currently sent to the target.",
			[]string{"upstream", "target"}, nil),
		healthy: prometheus.NewDesc(
			prometheus.BuildFQName(namespace, "upstream", "target_healthy"),
			"1 while the target may be picked (its active checks pass and it is not ejected), 0 while not.",
			[]string{"upstream", "target"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.targets
	ch <- c.inFlight
	ch <- c.healthy
}

// Collect implements prometheus.Collector. A name or address seen twice is
// reported once: the registry rejects duplicate series, and the same
// address in one pool shares one runtime state anyway.
func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	if c.pools == nil {
		return
	}
	now := c.now()
	seenPool := make(map[string]bool)
	for _, p := range c.pools() {
		if p == nil || seenPool[p.Name] {
			continue
		}
		seenPool[p.Name] = true
		healthy := p.Healthy(now)
		name := label(p.Name)
		ch <- prometheus.MustNewConstMetric(c.targets, prometheus.GaugeValue, float64(healthy), name, "healthy")
		ch <- prometheus.MustNewConstMetric(c.targets, prometheus.GaugeValue, float64(len(p.Targets())-healthy), name, "unhealthy")
		seenTarget := make(map[string]bool)
		for _, t := range p.Targets() {
			if seenTarget[t.Address] {
				continue
			}
			seenTarget[t.Address] = true
			ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(t.InFlight()), name, label(t.Address))
			up := 0.0
			if t.Available(now) {
				up = 1
			}
			ch <- prometheus.MustNewConstMetric(c.healthy, prometheus.GaugeValue, up, name, label(t.Address))
		}
	}
}
