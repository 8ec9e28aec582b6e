package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spur-crm/spur/pkg/engine"
	"github.com/spur-crm/spur/pkg/event"
	"github.com/spur-crm/spur/pkg/loadgen"
	"github.com/spur-crm/spur/pkg/pipeline"
	"github.com/spur-crm/spur/pkg/state"
)

type instantAck struct{}

func (instantAck) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	promise(r, nil)
}

// BenchmarkRules measures what the pipelines cost per event: the same
// generated traffic (decode, state, commit, in-memory Pebble) applied with
// no pipeline and with the shipped pipelines/ set. The difference of the two
// ns/event figures is the per-event cost of rule evaluation (conditions,
// counters, tags, timers and the triggers they emit).
//
//	go test -run XXX -bench BenchmarkRules -benchtime 20000x ./pkg/engine/
func BenchmarkRules(b *testing.B) {
	shipped, err := pipeline.LoadDir("../../pipelines")
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		pipes []*pipeline.Pipeline
	}{{"pipelines=none", nil}, {"pipelines=shipped", shipped}} {
		b.Run(c.name, func(b *testing.B) { benchRules(b, c.pipes) })
	}
}

func benchRules(b *testing.B, pipes []*pipeline.Pipeline) {
	st, err := state.Open("", state.WithFS(vfs.NewMem()))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	dec, err := event.NewDecoder()
	if err != nil {
		b.Fatal(err)
	}
	eng, err := engine.New(engine.Config{}, st, dec, pipes, instantAck{}, engine.WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		b.Fatal(err)
	}
	gen, err := loadgen.New(loadgen.Config{Customers: 5000, Seed: 11, Wait: 10 * time.Second, MaxSessions: 2000, NoOracle: true})
	if err != nil {
		b.Fatal(err)
	}
	cfg := gen.Config()
	start := time.Now().Add(-20 * time.Minute)
	step := 20 * time.Minute / time.Duration(max(b.N, 1))
	next := map[string]int64{}
	recs := make([]*kgo.Record, b.N)
	for i := range recs {
		r := gen.Next(start.Add(time.Duration(i) * step))
		recs[i] = &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Timestamp: r.TS, Offset: next[r.Topic]}
		next[r.Topic]++
	}
	w, err := eng.StartWorker(0, 1)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	const batch = 500
	for lo := 0; lo < len(recs); lo += batch {
		hi := min(lo+batch, len(recs))
		byTopic := map[string][]*kgo.Record{}
		for _, r := range recs[lo:hi] {
			byTopic[r.Topic] = append(byTopic[r.Topic], r)
		}
		for _, t := range []string{cfg.ClickstreamTopic, cfg.OrdersTopic} {
			if err := w.Apply(ctx, engine.Batch{Topic: t, Records: byTopic[t], HighWatermark: next[t]}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	if err := w.Stop(ctx); err != nil {
		b.Fatal(err)
	}
}
