package state

import (
	"context"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCollectorExportsPebbleMetrics(t *testing.T) {
	s, err := Open("db", WithFS(vfs.NewMem()))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st := s.NewStep(0)
	c, _ := st.Customer("c-1")
	c.Events = 1
	if err := st.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := s.DB().Flush(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.Collector())
	n, err := testutil.GatherAndCount(reg, "spur_pebble_l0_files", "spur_pebble_disk_bytes", "spur_pebble_write_stalls_total", "spur_pebble_compaction_debt_bytes")
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Fatalf("gathered %d of 4 metrics", n)
	}
	if got := testutil.ToFloat64(gatherOne(t, reg, "spur_pebble_l0_files")); got < 1 {
		t.Errorf("l0 files after a flush = %v, want >= 1", got)
	}
	phases := histogramCounts(t, reg, "spur_pebble_commit_seconds")
	for _, p := range []string{"total", "semaphore", "memtable_stall", "l0_stall", "wal_rotation", "sync"} {
		if phases[p] != 1 {
			t.Errorf("commit phase %q observed %d times, want 1 (one synced step committed)", p, phases[p])
		}
	}
}

func TestCollectorCountsCustomerReadsBySource(t *testing.T) {
	s, err := Open("db", WithFS(vfs.NewMem()), WithSync(false))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cache := NewCache(1 << 20)
	for _, id := range []string{"new", "new", "old"} { // new, cached, new
		st := s.NewStep(0).WithCache(cache)
		c, err := st.Customer(id)
		if err != nil {
			t.Fatal(err)
		}
		c.Events++
		if err := st.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	st := s.NewStep(0) // no cache: read from Pebble
	if _, err := st.Customer("old"); err != nil {
		t.Fatal(err)
	}
	st.Abort()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() == "spur_customer_reads_total" {
			for _, m := range mf.GetMetric() {
				got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	if got["cache"] != 1 || got["store"] != 1 || got["absent"] != 2 {
		t.Errorf("customer reads by source = %v, want cache 1, store 1, absent 2", got)
	}
}

func gatherOne(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x", Help: "x"}, func() float64 { return mf.GetMetric()[0].GetGauge().GetValue() })
		}
	}
	t.Fatalf("%s not gathered", name)
	return nil
}

// histogramCounts gathers reg and returns the sample count of each series
// of the histogram name, by the value of its one label.
func histogramCounts(t *testing.T, reg *prometheus.Registry, name string) map[string]uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				got[m.GetLabel()[0].GetValue()] = m.GetHistogram().GetSampleCount()
			}
		}
	}
	return got
}

// TestCollectorTimesBackgroundWork: every finished flush and compaction is
// observed under its kind.
func TestCollectorTimesBackgroundWork(t *testing.T) {
	s, err := Open("db", WithFS(vfs.NewMem()), WithSync(false))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.Collector())
	counts := func() map[string]uint64 { return histogramCounts(t, reg, "spur_pebble_background_seconds") }
	if got := counts(); got["flush"] != 0 || got["compaction"] != 0 {
		t.Fatalf("background work before any: %v", got)
	}
	// Two flushed tables of overlapping keys, then a manual compaction of
	// their range.
	for round := range 2 {
		st := s.NewStep(0)
		for i := range 10 {
			c, err := st.Customer(fmt.Sprintf("c-%d", i))
			if err != nil {
				t.Fatal(err)
			}
			c.Events = uint64(round + 1)
		}
		if err := st.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := s.DB().Flush(); err != nil {
			t.Fatal(err)
		}
	}
	lo, hi := Bounds(0, KindCustomer)
	if err := s.DB().Compact(context.Background(), lo, hi, false); err != nil {
		t.Fatal(err)
	}
	got := counts()
	if got["flush"] < 2 {
		t.Errorf("flushes observed: %d, want at least the 2 asked for", got["flush"])
	}
	if got["compaction"] < 1 {
		t.Errorf("compactions observed: %d, want at least the 1 asked for", got["compaction"])
	}
}
