package changelog

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the restorer's Prometheus metrics.
type Metrics struct {
	Restores         *prometheus.CounterVec // mode
	RestoreRecords   prometheus.Counter
	RestoreDuration  prometheus.Histogram
	Restoring        *prometheus.GaugeVec // partition
	RestoreRemaining *prometheus.GaugeVec // partition
	Unfinished       prometheus.Counter
}

// NewMetrics creates and registers the restorer's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Restores: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spur_changelog_restores_total",
			Help: "Partitions prepared on assignment, by mode: none (up to date), own (own unacknowledged records found on the topic), tail (warm restart), full (no or diverged local state), seed (existing state mirrored to an empty topic).",
		}, []string{"mode"}),
		RestoreRecords: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "spur_changelog_restore_records_total", Help: "Changelog records read by restores.",
		}),
		RestoreDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "spur_changelog_restore_duration_seconds", Help: "Time to prepare a partition on assignment, restore included.",
			Buckets: prometheus.ExponentialBuckets(0.005, 4, 10),
		}),
		Restoring: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "spur_changelog_restoring", Help: "1 while a partition is being restored from the changelog.",
		}, []string{"partition"}),
		RestoreRemaining: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "spur_changelog_restore_remaining_records", Help: "Changelog offsets a restoring partition has still to read.",
		}, []string{"partition"}),
		Unfinished: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "spur_changelog_unfinished_step_records_total", Help: "Changelog records of steps whose end never reached the topic (their producer died): not applied, and superseded by current values.",
		}),
	}
	reg.MustRegister(m.Restores, m.RestoreRecords, m.RestoreDuration, m.Restoring, m.RestoreRemaining, m.Unfinished)
	return m
}
