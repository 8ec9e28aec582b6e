package bench

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spur-crm/spur/pkg/engine"
	"github.com/spur-crm/spur/pkg/internal/benchutil"
	"github.com/spur-crm/spur/pkg/loadgen"
	"github.com/spur-crm/spur/pkg/pipeline"
	"github.com/spur-crm/spur/pkg/state"
)

// BenchmarkWorker measures one partition worker of the engine (decode,
// state read-modify-write, cart_abandonment rule, timers, coupons, the
// Pebble commit of each step) fed generated storefront traffic in batches
// of the given size, as fetches deliver it: small batches are live traffic,
// large ones a backlog. store=mem keeps Pebble in memory; store=disk syncs
// every step's commit to a temporary directory, as `spur run` does;
// store=disk-nosync writes there without syncing, the bound of what hiding
// the sync (commit pipelining) could gain.
// Reported: ns per event and events/s.
func BenchmarkWorker(b *testing.B) {
	for _, store := range []string{"mem", "disk", "disk-nosync"} {
		for _, batch := range []int{10, 100, 1000, 10000} {
			b.Run(fmt.Sprintf("store=%s/batch=%d", store, batch), func(b *testing.B) {
				benchWorker(b, store, batch)
			})
		}
	}
}

func benchWorker(b *testing.B, store string, batch int) {
	var opts []state.Option
	dir := b.TempDir()
	switch store {
	case "mem":
		opts = append(opts, state.WithFS(vfs.NewMem()))
		dir = ""
	case "disk-nosync":
		// The upper bound of hiding the per-step fsync (commit
		// pipelining): the same store without waiting for the WAL sync.
		opts = append(opts, state.WithSync(false))
	}
	st, err := state.Open(dir, opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	p, perrs := pipeline.Parse("cart_abandonment.yaml", []byte(strings.Replace(builtinPipeline, "wait: 10s", "wait: 2s", 1)))
	if len(perrs) > 0 {
		b.Fatal(perrs)
	}
	eng := benchutil.NewEngine(b, st, []*pipeline.Pipeline{p})

	// The traffic: 20k customers, event times spread over the last 30
	// minutes (so the coupons the timers fire are not stale), one
	// partition of one.
	const customers = 20_000
	tr := benchutil.NewTraffic(b, loadgen.Config{Customers: customers, Seed: 7, Wait: 2 * time.Second, MaxSessions: 5000, NoOracle: true}, b.N, 30*time.Minute)
	cfg := tr.Config

	w, err := eng.StartWorker(0, 1)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	t0 := time.Now()
	ctx := context.Background()
	tr.Batches(batch, func(topic string, recs []*kgo.Record) {
		if len(recs) > 0 {
			if err := w.Submit(ctx, engine.Batch{Topic: topic, Records: recs, HighWatermark: -1}); err != nil {
				b.Fatal(err)
			}
		}
	})
	for {
		a := w.Applied()
		if a[cfg.ClickstreamTopic] >= tr.Next[cfg.ClickstreamTopic] && a[cfg.OrdersTopic] >= tr.Next[cfg.OrdersTopic] {
			break
		}
		if err := w.Err(); err != nil {
			b.Fatal(err)
		}
		time.Sleep(50 * time.Microsecond)
	}
	el := time.Since(t0)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "events/s")
	if err := w.Stop(ctx); err != nil {
		b.Fatal(err)
	}
}
