package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spur-crm/spur/pkg/engine"
	"github.com/spur-crm/spur/pkg/event"
	"github.com/spur-crm/spur/pkg/pipeline"
	"github.com/spur-crm/spur/pkg/state"
)

// discard acknowledges every record at once.
type discard struct{}

func (discard) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	promise(r, nil)
}

// TestObservationReleasesHeldTimer drives a worker directly: a timer due by
// the clock but held back by the horizon (the orders topic was last seen
// before its deadline) fires on the observation that moves the horizon past
// it, without the clock moving again to wake the worker.
func TestObservationReleasesHeldTimer(t *testing.T) {
	clock := clockwork.NewFakeClockAt(t0)
	store, err := state.Open("db", state.WithFS(vfs.NewMem()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	dec, err := event.NewDecoder(event.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	all, err := pipeline.LoadDir("../../pipelines")
	if err != nil {
		t.Fatal(err)
	}
	var pipes []*pipeline.Pipeline
	for _, p := range all {
		if p.Name == "cart_abandonment" { // waits 10s
			pipes = append(pipes, p)
		}
	}
	// An idle worker sleeps an hour: only the observation can wake it.
	eng, err := engine.New(engine.Config{Partitions: 1, MaxWaitIdle: time.Hour}, store, dec, pipes, discard{},
		engine.WithClock(clock), engine.WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	cfg := eng.Config()
	w, err := eng.StartWorker(0, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	t.Cleanup(func() { w.Stop(ctx) })
	fired := func() float64 { return testutil.ToFloat64(eng.Metrics().TimersFired) }

	// The orders topic is caught up as of t0, and a cart waits from t0.
	if err := w.Apply(ctx, engine.Batch{Topic: cfg.OrdersTopic, HighWatermark: 0, ObservedAt: t0}); err != nil {
		t.Fatal(err)
	}
	rec := &kgo.Record{Topic: cfg.ClickstreamTopic, Key: []byte("c-1"), Value: cartAdd("e-1", "c-1", 0, "sku-1", 10), Timestamp: t0}
	if err := w.Apply(ctx, engine.Batch{Topic: cfg.ClickstreamTopic, Records: []*kgo.Record{rec}, HighWatermark: 1}); err != nil {
		t.Fatal(err)
	}
	// Past the deadline by the clock, the timer stays held: an order
	// stamped before it may still be unread.
	clock.Advance(time.Minute)
	if err := w.Apply(ctx, engine.Batch{HighWatermark: -1}); err != nil {
		t.Fatal(err)
	}
	if n := fired(); n != 0 {
		t.Fatalf("%v timers fired while the horizon held them back, want 0", n)
	}
	// Seeing the orders topic's end now releases it.
	w.Observe(engine.Batch{Topic: cfg.OrdersTopic, HighWatermark: 0, ObservedAt: clock.Now()})
	deadline := time.Now().Add(10 * time.Second)
	for fired() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%v timers fired after the observation released the held one, want 1", fired())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
