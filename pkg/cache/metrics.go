package cache

import "github.com/prometheus/client_golang/prometheus"

// Collector exposes Stats as Prometheus metrics (handoff_cache_*), for the
// lead to register on pkg/metrics' registry.
func (c *Cache) Collector() prometheus.Collector { return StatsCollector(c.Stats) }

// StatsCollector exposes what stats returns as the metrics of Collector:
// for a process whose caches come and go with its config generations and
// whose counters it sums itself.
func StatsCollector(stats func() Stats) prometheus.Collector { return collector{stats} }

type collector struct{ stats func() Stats }

var (
	descEntries = prometheus.NewDesc("handoff_cache_entries", "Entries in this process's memory tier.", nil, nil)
	descBytes   = prometheus.NewDesc("handoff_cache_bytes", "Bytes held by this process's memory tier.", nil, nil)
	descEvents  = prometheus.NewDesc("handoff_cache_events_total", "Cache outcomes by kind.", []string{"kind"}, nil)
)

func (collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descEntries
	ch <- descBytes
	ch <- descEvents
}

func (m collector) Collect(ch chan<- prometheus.Metric) {
	s := m.stats()
	ch <- prometheus.MustNewConstMetric(descEntries, prometheus.GaugeValue, float64(s.Entries))
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.GaugeValue, float64(s.Bytes))
	for kind, v := range map[string]int64{"hit": s.Hits, "miss": s.Misses, "stale": s.StaleServed,
		"revalidation": s.Revalidations, "coalesced": s.Coalesced, "store_error": s.StoreErrors} {
		ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(v), kind)
	}
}
