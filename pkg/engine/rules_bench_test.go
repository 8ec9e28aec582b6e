package engine_test

import (
	"context"
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
	eng := benchutil.NewEngine(b, st, pipes)
	tr := benchutil.NewTraffic(b, loadgen.Config{Customers: 5000, Seed: 11, Wait: 10 * time.Second, MaxSessions: 2000, NoOracle: true}, b.N, 20*time.Minute)
	w, err := eng.StartWorker(0, 1)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	tr.Batches(500, func(topic string, recs []*kgo.Record) {
		if err := w.Apply(ctx, engine.Batch{Topic: topic, Records: recs, HighWatermark: tr.Next[topic]}); err != nil {
			b.Fatal(err)
		}
	})
	b.StopTimer()
	if err := w.Stop(ctx); err != nil {
		b.Fatal(err)
	}
}
