package benchutil

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spur-crm/spur/pkg/engine"
	"github.com/spur-crm/spur/pkg/event"
	"github.com/spur-crm/spur/pkg/loadgen"
	"github.com/spur-crm/spur/pkg/pipeline"
	"github.com/spur-crm/spur/pkg/state"
)

// AckProducer acknowledges every record at once: a benchmark that uses it
// measures the engine, not a broker.
type AckProducer struct{}

// Produce acknowledges r.
func (AckProducer) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	promise(r, nil)
}

// NewEngine builds an engine with the default configuration on st, running
// pipes, producing to an AckProducer and registering its metrics with a
// registry of its own. It fails tb on any error.
func NewEngine(tb testing.TB, st *state.Store, pipes []*pipeline.Pipeline) *engine.Engine {
	tb.Helper()
	dec, err := event.NewDecoder()
	if err != nil {
		tb.Fatal(err)
	}
	// The customer cache of spur run's default (--customer-cache-mb 64).
	eng, err := engine.New(engine.Config{CustomerCacheBytes: 64 << 20}, st, dec, pipes, AckProducer{}, engine.WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		tb.Fatal(err)
	}
	return eng
}

// Traffic is generated storefront traffic for partition 0 of one, as
// records of the input topics with offsets from 0 per topic.
type Traffic struct {
	Records []*kgo.Record
	// Next is, per topic, the offset after its last record: the number of
	// its records and its high watermark.
	Next map[string]int64
	// Config is the generator's configuration with its defaults filled in,
	// which names the topics.
	Config loadgen.Config
}

// NewTraffic generates n records with cfg, their event times spread evenly
// over the span that ends now. It fails tb on any error.
func NewTraffic(tb testing.TB, cfg loadgen.Config, n int, span time.Duration) *Traffic {
	tb.Helper()
	gen, err := loadgen.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	start := time.Now().Add(-span)
	step := span / time.Duration(max(n, 1))
	tr := &Traffic{Records: make([]*kgo.Record, n), Next: map[string]int64{}, Config: gen.Config()}
	for i := range tr.Records {
		r := gen.Next(start.Add(time.Duration(i) * step))
		tr.Records[i] = &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Timestamp: r.TS, Partition: 0, Offset: tr.Next[r.Topic]}
		tr.Next[r.Topic]++
	}
	return tr
}

// Batches cuts the records into batches of size, as fetches deliver them,
// and calls fn with each batch's records of each input topic in turn,
// clickstream first; recs is empty where a batch has none of a topic.
func (tr *Traffic) Batches(size int, fn func(topic string, recs []*kgo.Record)) {
	topics := []string{tr.Config.ClickstreamTopic, tr.Config.OrdersTopic}
	for lo := 0; lo < len(tr.Records); lo += size {
		hi := min(lo+size, len(tr.Records))
		byTopic := map[string][]*kgo.Record{}
		for _, r := range tr.Records[lo:hi] {
			byTopic[r.Topic] = append(byTopic[r.Topic], r)
		}
		for _, t := range topics {
			fn(t, byTopic[t])
		}
	}
}
