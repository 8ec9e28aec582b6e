package bench

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// RestartResult is the result of the restart scenario.
type RestartResult struct {
	Scenario   string  `json:"scenario"`
	Broker     string  `json:"broker"`
	Partitions int32   `json:"partitions"`
	Machine    Machine `json:"machine"`
	Wait       string  `json:"wait"`

	Customers        int     `json:"customers"`
	LoadEvents       int64   `json:"load_events"`
	LoadEventsPerSec float64 `json:"load_events_per_sec"`
	RSSMiB           float64 `json:"rss_mib"` // peak while loading
	PebbleBytes      int64   `json:"pebble_bytes"`

	// First crash: SIGKILL, then an immediate restart on the same data dir.
	// A probe event published right after the kill measures when the engine
	// applies input again.
	KillToReadyMS      float64 `json:"kill_to_ready_ms"`
	KillToFirstEventMS float64 `json:"kill_to_first_event_ms"`
	StartToReadyMS     float64 `json:"start_to_ready_ms"`

	// Second crash: Overdue carts armed, SIGKILL, down until every one of
	// their deadlines has passed, restart. Fire times count from the
	// restart (process start) to the coupon's record timestamp.
	Overdue             int      `json:"overdue"`
	DowntimeMS          float64  `json:"downtime_ms"`
	OverdueStartToReady float64  `json:"overdue_start_to_ready_ms"`
	OverdueFireMS       Latency  `json:"overdue_fire_ms"`
	OverdueLatenessMS   Lateness `json:"overdue_lateness_ms"`
	OverdueSeen         int      `json:"overdue_seen"`
	OverdueMissing      int      `json:"overdue_missing"`
	OverdueFiredEarly   int      `json:"overdue_fired_before_kill"`
	Duplicates          int      `json:"duplicates"`
	// UnexpectedTriggers are triggers of no overdue cart: every loaded
	// customer ordered what they carted, so none may get a coupon.
	UnexpectedTriggers   int     `json:"unexpected_triggers"`
	TriggerTimestampType string  `json:"trigger_timestamp_type"`
	WallSec              float64 `json:"wall_sec"`
}

func (r *runner) restart(ctx context.Context) (*RestartResult, error) {
	cfg := r.cfg
	res := &RestartResult{Scenario: ScenarioRestart, Broker: r.cl.describe(), Partitions: cfg.Partitions,
		Wait: cfg.Wait.String(), Customers: cfg.Customers, Overdue: cfg.Overdue}
	defer func() {
		res.WallSec = time.Since(r.started).Seconds()
		r.mach.LoadEnd = loadavg()
		res.Machine = r.mach
	}()
	reader, err := startTriggerReader(r.cl.brokers, r.cl.topics.Triggers)
	if err != nil {
		return nil, err
	}
	defer reader.close()

	// Build the state.
	c, err := startChild(r.spec(r.group()))
	if err != nil {
		return nil, err
	}
	mon := newMonitor(c, 100*time.Millisecond)
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	_, err = c.waitReady(rctx, 20*time.Millisecond)
	cancel()
	if err != nil {
		mon.close()
		c.stop(10 * time.Second)
		return nil, err
	}
	l, err := r.newLoader()
	if err != nil {
		mon.close()
		c.stop(10 * time.Second)
		return nil, err
	}
	defer l.close()
	res.LoadEventsPerSec, err = l.load(ctx, c, mon, 0, cfg.Customers, "load")
	mon.close()
	if err != nil {
		c.stop(10 * time.Second)
		return res, err
	}
	res.LoadEvents = int64(l.sent)
	_, peak := c.rss()
	res.RSSMiB = float64(peak) / mib
	res.PebbleBytes = c.pebbleBytes()
	r.prog.logf("loaded %d customers (%d events, %s/s); engine peak RSS %.0f MiB, Pebble %.1f MiB",
		cfg.Customers, res.LoadEvents, si(res.LoadEventsPerSec), res.RSSMiB, float64(res.PebbleBytes)/mib)

	probe, err := r.cl.producer(kgo.ProducerLinger(0))
	if err != nil {
		c.stop(10 * time.Second)
		return res, err
	}
	defer probe.Close()

	// Crash 1: kill -9, restart at once.
	r.prog.set("crash 1", func() string { return "kill -9, restart, waiting for ready and the probe event" })
	killed := c.kill()
	now := time.Now()
	pv := fmt.Sprintf(`{"event_id":"probe-1","type":"page_view","ts":%q,"customer_id":"c-1","channel":"web"}`, now.UTC().Format(time.RFC3339Nano))
	if err := probe.ProduceSync(ctx, &kgo.Record{Topic: r.cl.topics.Clickstream, Key: []byte("c-1"), Value: []byte(pv), Timestamp: now}).FirstErr(); err != nil {
		return res, err
	}
	c, err = startChild(r.spec(r.group()))
	if err != nil {
		return res, err
	}
	ready, first, err := r.watchRestart(ctx, c, 1)
	if err != nil {
		c.stop(10 * time.Second)
		return res, err
	}
	res.KillToReadyMS = ms(ready.Sub(killed))
	res.KillToFirstEventMS = ms(first.Sub(killed))
	res.StartToReadyMS = ms(ready.Sub(c.started))
	r.prog.logf("crash 1: ready %.0f ms after kill -9 (%.0f ms after start), first event applied after %.0f ms",
		res.KillToReadyMS, res.StartToReadyMS, res.KillToFirstEventMS)

	// Crash 2: arm Overdue carts, kill -9, stay down past their deadlines.
	r.prog.set("crash 2", func() string { return fmt.Sprintf("arming %d carts", cfg.Overdue) })
	armAt := time.Now()
	recs := make([]*kgo.Record, 0, cfg.Overdue)
	for i := range cfg.Overdue {
		id := customerID(i)
		v := `{"event_id":"overdue-` + strconv.Itoa(i) + `","type":"cart_add","ts":"` + armAt.UTC().Format(time.RFC3339Nano) +
			`","customer_id":"` + id + `","channel":"web","sku":"sku-overdue","category":"shoes","price":19.9,"quantity":1}`
		recs = append(recs, &kgo.Record{Topic: r.cl.topics.Clickstream, Key: []byte(id), Value: []byte(v), Timestamp: armAt})
	}
	if err := probe.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		c.stop(10 * time.Second)
		return res, err
	}
	deadline := armAt.Truncate(time.Millisecond).Add(cfg.Wait)
	err = r.waitFor(ctx, "the engine to arm the carts", c, cfg.DrainTimeout, 20*time.Millisecond, func() bool {
		m, err := c.scrape()
		return err == nil && m[mConsumed] >= float64(1+cfg.Overdue) && m[mTimers] >= float64(cfg.Overdue)
	})
	if err != nil {
		c.stop(10 * time.Second)
		return res, err
	}
	killed = c.kill()
	if killed.After(deadline) {
		r.prog.logf("warning: the carts were armed only %v after publishing, past their %v wait: some fired before the kill; use a longer --wait",
			killed.Sub(armAt).Round(time.Millisecond), cfg.Wait)
	}
	down := time.Until(deadline.Add(time.Second))
	r.prog.set("down", func() string { return fmt.Sprintf("engine down until the %d carts are overdue", cfg.Overdue) })
	if down > 0 {
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(down):
		}
	}
	c, err = startChild(r.spec(r.group()))
	if err != nil {
		return res, err
	}
	defer c.stop(30 * time.Second)
	res.DowntimeMS = ms(c.started.Sub(killed))
	r.prog.set("overdue", func() string {
		return fmt.Sprintf("coupons %d/%d", reader.countCause("overdue-"), cfg.Overdue)
	})
	rctx, cancel = context.WithTimeout(ctx, time.Minute)
	readyAt, err := c.waitReady(rctx, 5*time.Millisecond)
	cancel()
	if err != nil {
		return res, err
	}
	res.OverdueStartToReady = ms(readyAt.Sub(c.started))
	err = r.waitFor(ctx, "the overdue coupons", c, cfg.DrainTimeout, 20*time.Millisecond, func() bool {
		return reader.countCause("overdue-") >= cfg.Overdue
	})
	if err != nil {
		r.prog.logf("%v", err)
	}
	// Give re-sends a moment to show up as duplicates.
	time.Sleep(500 * time.Millisecond)
	seen, dups, _, tsType := reader.snapshot()
	res.Duplicates, res.TriggerTimestampType = dups, tsType
	fire, late := newHist(), newHist()
	for _, s := range seen {
		if !strings.HasPrefix(s.cause, "overdue-") {
			res.UnexpectedTriggers++
			if res.UnexpectedTriggers <= 5 {
				r.prog.logf("unexpected trigger: customer=%s qualified_at=%s cause=%s emitted_at=%s",
					s.customer, s.qualifiedAt.Format(time.RFC3339Nano), s.cause, s.emittedAt.Format(time.RFC3339Nano))
			}
			continue
		}
		res.OverdueSeen++
		if s.appendedAt.Before(c.started) {
			res.OverdueFiredEarly++
			continue
		}
		fire.record(s.appendedAt.Sub(c.started))
		late.record(s.appendedAt.Sub(s.qualifiedAt))
	}
	res.OverdueMissing = max(0, cfg.Overdue-res.OverdueSeen)
	res.OverdueFireMS, res.OverdueLatenessMS = fire.latency(), late.lateness()
	r.prog.logf("crash 2: down %.1fs; ready %.0f ms after start; %d overdue coupons, the last %.0f ms after start",
		res.DowntimeMS/1000, res.OverdueStartToReady, res.OverdueSeen, res.OverdueFireMS.Max)
	return res, nil
}

// watchRestart polls a restarted child until it is ready and has applied
// want events, and returns both moments.
func (r *runner) watchRestart(ctx context.Context, c *child, want float64) (ready, first time.Time, err error) {
	deadline := time.Now().Add(r.cfg.DrainTimeout)
	for ready.IsZero() || first.IsZero() {
		if err := c.alive(); err != nil {
			return ready, first, err
		}
		if time.Now().After(deadline) {
			return ready, first, fmt.Errorf("bench: the restarted engine was not ready and applying within %v", r.cfg.DrainTimeout)
		}
		if ready.IsZero() && c.ready() {
			ready = time.Now()
		}
		if first.IsZero() {
			if m, err := c.scrape(); err == nil && m[mConsumed] >= want {
				first = time.Now()
			}
		}
		select {
		case <-ctx.Done():
			return ready, first, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return ready, first, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// WriteTable writes the human table.
func (res *RestartResult) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "spur bench (restart) on %s, %d partitions, wait %s\n", res.Broker, res.Partitions, res.Wait)
	fmt.Fprintf(w, "machine: %s\n\n", res.Machine)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "state\t%d customers (%d events loaded at %.0f/s), Pebble %.1f MiB, peak RSS %.0f MiB\n",
		res.Customers, res.LoadEvents, res.LoadEventsPerSec, float64(res.PebbleBytes)/mib, res.RSSMiB)
	fmt.Fprintf(tw, "kill -9 → ready (/readyz)\t%.0f ms (process start → ready %.0f ms)\n", res.KillToReadyMS, res.StartToReadyMS)
	fmt.Fprintf(tw, "kill -9 → first event applied\t%.0f ms\n", res.KillToFirstEventMS)
	fmt.Fprintf(tw, "overdue timers\t%d carts, engine down %.1f s, restart → ready %.0f ms\n", res.Overdue, res.DowntimeMS/1000, res.OverdueStartToReady)
	fmt.Fprintf(tw, "restart → overdue coupon appended\tp50 %.0f ms, p99 %.0f ms, max %.0f ms (%d seen, %d missing, %d fired before the kill, %d duplicates)\n",
		res.OverdueFireMS.P50, res.OverdueFireMS.P99, res.OverdueFireMS.Max, res.OverdueSeen, res.OverdueMissing, res.OverdueFiredEarly, res.Duplicates)
	fmt.Fprintf(tw, "unexpected triggers\t%d (every loaded customer ordered their cart: want 0)\n", res.UnexpectedTriggers)
	fmt.Fprintf(tw, "deadline → coupon appended\tp50 %.0f ms, p99 %.0f ms, max %.0f ms (%s)\n",
		res.OverdueLatenessMS.P50, res.OverdueLatenessMS.P99, res.OverdueLatenessMS.Max, res.TriggerTimestampType)
	fmt.Fprintf(tw, "run\t%.0f s\n", res.WallSec)
	tw.Flush()
}
