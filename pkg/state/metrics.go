package state

import (
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// storeMetrics counts Pebble events that metrics snapshots do not keep.
type storeMetrics struct {
	stalls     atomic.Int64
	stallNanos atomic.Int64
	stallStart atomic.Int64
	// commit is the time synced step commits spend, by where (Pebble's
	// BatchCommitStats), in commitPhases order: it tells a slow fsync from
	// a write stall.
	commit    [len(commitPhases)]prometheus.Observer
	commitVec *prometheus.HistogramVec
	// reads counts the customer records steps loaded, by where from.
	reads [3]atomic.Int64
	// background is the wall time of Pebble's flushes and compactions, in
	// backgroundKinds order: the work that shares the cores with the
	// workers when their lag peaks.
	background    [len(backgroundKinds)]prometheus.Observer
	backgroundVec *prometheus.HistogramVec
}

// Where a step's customer record came from.
const (
	readCache  = iota // the worker's customer cache
	readStore         // Pebble
	readAbsent        // Pebble, which had none (a new customer)
)

var readSources = [...]string{readCache: "cache", readStore: "store", readAbsent: "absent"}

var commitPhases = [...]string{"total", "semaphore", "memtable_stall", "l0_stall", "wal_rotation", "sync"}

// Kinds of Pebble's background work.
const (
	bgFlush = iota
	bgCompaction
)

var backgroundKinds = [...]string{bgFlush: "flush", bgCompaction: "compaction"}

func newStoreMetrics() *storeMetrics {
	m := &storeMetrics{commitVec: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "spur_pebble_commit_seconds",
		Help: "Time a synced step commit spent, by phase: total; semaphore (waiting for the commit pipeline's slots); memtable_stall and l0_stall (write stalls); wal_rotation; sync (publishing and the WAL fsync). Unsynced commits (acknowledgements only) are not counted.",
		// 50 µs to about 3 s.
		Buckets: prometheus.ExponentialBuckets(50e-6, 2, 17),
	}, []string{"phase"})}
	for i, p := range commitPhases {
		m.commit[i] = m.commitVec.WithLabelValues(p)
	}
	m.backgroundVec = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "spur_pebble_background_seconds",
		Help: "Wall time of Pebble's finished background jobs, by kind: flush (a full memtable written to L0) and compaction (files rewritten into a lower level). Their CPU is taken from the partition workers: lag peaks at high load follow them.",
		// 1 ms to about 16 s.
		Buckets: prometheus.ExponentialBuckets(1e-3, 2, 15),
	}, []string{"kind"})
	for i, k := range backgroundKinds {
		m.background[i] = m.backgroundVec.WithLabelValues(k)
	}
	return m
}

func (m *storeMetrics) listener() *pebble.EventListener {
	return &pebble.EventListener{
		WriteStallBegin: func(pebble.WriteStallBeginInfo) {
			m.stalls.Add(1)
			m.stallStart.Store(time.Now().UnixNano())
		},
		WriteStallEnd: func() {
			if s := m.stallStart.Swap(0); s != 0 {
				m.stallNanos.Add(time.Now().UnixNano() - s)
			}
		},
		FlushEnd: func(i pebble.FlushInfo) {
			if !i.Ingest {
				m.background[bgFlush].Observe(i.TotalDuration.Seconds())
			}
		},
		CompactionEnd: func(i pebble.CompactionInfo) {
			m.background[bgCompaction].Observe(i.TotalDuration.Seconds())
		},
	}
}

// observeCommit records a synced commit's stats.
func (m *storeMetrics) observeCommit(s pebble.BatchCommitStats) {
	for i, d := range [len(commitPhases)]time.Duration{s.TotalDuration, s.SemaphoreWaitDuration, s.MemTableWriteStallDuration,
		s.L0ReadAmpWriteStallDuration, s.WALRotationDuration, s.CommitWaitDuration} {
		m.commit[i].Observe(d.Seconds())
	}
}

var (
	descL0Sublevels = prometheus.NewDesc("spur_pebble_l0_sublevels", "Sublevels in L0 (read amplification of L0); growth means compactions fall behind.", nil, nil)
	descL0Files     = prometheus.NewDesc("spur_pebble_l0_files", "Sstables in L0.", nil, nil)
	descReadAmp     = prometheus.NewDesc("spur_pebble_read_amplification", "Read amplification across levels.", nil, nil)
	descDebt        = prometheus.NewDesc("spur_pebble_compaction_debt_bytes", "Estimated bytes to compact for the LSM to reach a stable state.", nil, nil)
	descDisk        = prometheus.NewDesc("spur_pebble_disk_bytes", "Disk space used by the store.", nil, nil)
	descMemtable    = prometheus.NewDesc("spur_pebble_memtable_bytes", "Bytes allocated by memtables.", nil, nil)
	descCacheHits   = prometheus.NewDesc("spur_pebble_block_cache_hits_total", "Block cache hits.", nil, nil)
	descCacheMisses = prometheus.NewDesc("spur_pebble_block_cache_misses_total", "Block cache misses.", nil, nil)
	descStalls      = prometheus.NewDesc("spur_pebble_write_stalls_total", "Times Pebble delayed writes (too many L0 files or memtables).", nil, nil)
	descStallSecs   = prometheus.NewDesc("spur_pebble_write_stall_seconds_total", "Time writes spent stalled.", nil, nil)
	descReads       = prometheus.NewDesc("spur_customer_reads_total", "Customer records loaded by steps, by source: cache (the worker's encoded records, --customer-cache-mb), store (a Pebble read), absent (a Pebble read that found none: a new customer). A customer deleted and recreated within one step is not counted again.", []string{"source"}, nil)
)

// Collector exports the store's Pebble metrics. Register it on the
// Registerer the caller owns.
func (s *Store) Collector() prometheus.Collector { return storeCollector{s} }

type storeCollector struct{ s *Store }

func (c storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descL0Sublevels, descL0Files, descReadAmp, descDebt, descDisk, descMemtable, descCacheHits, descCacheMisses, descStalls, descStallSecs, descReads} {
		ch <- d
	}
	c.s.metrics.commitVec.Describe(ch)
	c.s.metrics.backgroundVec.Describe(ch)
}

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.s.db.Metrics()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(descL0Sublevels, float64(m.Levels[0].Sublevels))
	gauge(descL0Files, float64(m.Levels[0].TablesCount))
	gauge(descReadAmp, float64(m.ReadAmp()))
	gauge(descDebt, float64(m.Compact.EstimatedDebt))
	gauge(descDisk, float64(m.DiskSpaceUsage()))
	gauge(descMemtable, float64(m.MemTable.Size))
	counter(descCacheHits, float64(m.BlockCache.Hits))
	counter(descCacheMisses, float64(m.BlockCache.Misses))
	counter(descStalls, float64(c.s.metrics.stalls.Load()))
	counter(descStallSecs, time.Duration(c.s.metrics.stallNanos.Load()).Seconds())
	for i, src := range readSources {
		ch <- prometheus.MustNewConstMetric(descReads, prometheus.CounterValue, float64(c.s.metrics.reads[i].Load()), src)
	}
	c.s.metrics.commitVec.Collect(ch)
	c.s.metrics.backgroundVec.Collect(ch)
}
