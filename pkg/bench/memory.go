package bench

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// MemoryResult is the result of the memory scenario.
type MemoryResult struct {
	Scenario   string  `json:"scenario"`
	Broker     string  `json:"broker"`
	Partitions int32   `json:"partitions"`
	Machine    Machine `json:"machine"`
	CacheMB    int64   `json:"cache_mb,omitempty"`

	Customers        int           `json:"customers"`
	LoadEvents       int64         `json:"load_events"`
	LoadEventsPerSec float64       `json:"load_events_per_sec"`
	Points           []MemoryPoint `json:"points"`
	// RSSMiB is the peak over the whole load; PebbleBytes the Pebble
	// directory at the end, and after a clean shutdown (memtables flushed,
	// WAL gone).
	RSSMiB            float64 `json:"rss_mib"`
	PebbleBytes       int64   `json:"pebble_bytes"`
	PebbleBytesClosed int64   `json:"pebble_bytes_closed"`
	WallSec           float64 `json:"wall_sec"`
}

// MemoryPoint is a measurement once Customers customers are applied.
type MemoryPoint struct {
	Customers        int     `json:"customers"`
	RSSMiB           float64 `json:"rss_mib"`
	PeakRSSMiB       float64 `json:"peak_rss_mib"`
	PebbleBytes      int64   `json:"pebble_bytes"`
	PebblePerCust    float64 `json:"pebble_bytes_per_customer"`
	LoadEventsPerSec float64 `json:"load_events_per_sec"`
}

func (r *runner) memory(ctx context.Context) (*MemoryResult, error) {
	cfg := r.cfg
	res := &MemoryResult{Scenario: ScenarioMemory, Broker: r.cl.describe(), Partitions: cfg.Partitions,
		Customers: cfg.Customers, CacheMB: cfg.CacheMB}
	defer func() {
		res.WallSec = time.Since(r.started).Seconds()
		r.mach.LoadEnd = loadavg()
		res.Machine = r.mach
	}()
	c, err := startChild(r.spec(r.group()))
	if err != nil {
		return nil, err
	}
	defer c.stop(time.Minute)
	mon := newMonitor(c, 100*time.Millisecond)
	defer mon.close()
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	_, err = c.waitReady(rctx, 20*time.Millisecond)
	cancel()
	if err != nil {
		return nil, err
	}
	l, err := r.newLoader()
	if err != nil {
		return nil, err
	}
	defer l.close()
	start := time.Now()
	from := 0
	for k := 1; k <= cfg.Checkpoints; k++ {
		to := cfg.Customers * k / cfg.Checkpoints
		if to <= from {
			continue
		}
		rate, err := l.load(ctx, c, mon, from, to, fmt.Sprintf("load %d/%d", k, cfg.Checkpoints))
		if err != nil {
			return res, err
		}
		from = to
		cur, peak := c.rss()
		pb := c.pebbleBytes()
		p := MemoryPoint{Customers: to, RSSMiB: float64(cur) / mib, PeakRSSMiB: float64(peak) / mib,
			PebbleBytes: pb, PebblePerCust: float64(pb) / float64(to), LoadEventsPerSec: rate}
		res.Points = append(res.Points, p)
		r.prog.logf("%d customers: RSS %.0f MiB (peak %.0f), Pebble %.1f MiB (%.0f B/customer), %s events/s",
			to, p.RSSMiB, p.PeakRSSMiB, float64(pb)/mib, p.PebblePerCust, si(rate))
	}
	res.LoadEvents = int64(l.sent)
	res.LoadEventsPerSec = l.sent / time.Since(start).Seconds()
	_, peak := c.rss()
	res.RSSMiB = float64(peak) / mib
	res.PebbleBytes = c.pebbleBytes()
	mon.close()
	if err := c.stop(time.Minute); err != nil {
		r.prog.logf("engine stop: %v", err)
	}
	res.PebbleBytesClosed = c.pebbleBytes()
	return res, nil
}

// WriteTable writes the human table.
func (res *MemoryResult) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "spur bench (memory) on %s, %d partitions\n", res.Broker, res.Partitions)
	fmt.Fprintf(w, "machine: %s\n\n", res.Machine)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "customers\tRSS MiB\tpeak RSS MiB\tPebble MiB\tPebble B/customer\tload events/s\t\n")
	for _, p := range res.Points {
		fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.1f\t%.0f\t%.0f\t\n", p.Customers, p.RSSMiB, p.PeakRSSMiB, float64(p.PebbleBytes)/mib, p.PebblePerCust, p.LoadEventsPerSec)
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d events (3 per customer: product_view, cart_add, order) in %.0f s; Pebble after a clean shutdown %.1f MiB\n",
		res.LoadEvents, res.WallSec, float64(res.PebbleBytesClosed)/mib)
}
