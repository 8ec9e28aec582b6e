package emit

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
)

// NewProducer returns a client configured to produce output records without
// losing them: acks from all in-sync replicas, idempotent writes (franz-go's
// default), unlimited retries of retriable errors, and no linger, so
// records leave at once (under load, records batch while earlier requests
// are in flight). opts come after these defaults: `spur run` adds a linger
// (--produce-linger, 5 ms), which saved an Apache Kafka broker a quarter of
// its CPU (docs/BENCHMARKS.md).
func NewProducer(opts ...kgo.Opt) (*kgo.Client, error) {
	base := []kgo.Opt{
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("emit: producer: %w", err)
	}
	return cl, nil
}

// ManualPartitions makes a producer send the records of the named topics to
// the partition each record names (a changelog record belongs to its task's
// partition) and partition every other record as NewProducer does, by a
// murmur2 hash of its key. Pass it after NewProducer's defaults.
func ManualPartitions(topics ...string) kgo.Opt {
	p := partitioner{manual: map[string]bool{}, keyed: kgo.StickyKeyPartitioner(nil), byRecord: kgo.ManualPartitioner()}
	for _, t := range topics {
		p.manual[t] = true
	}
	return kgo.RecordPartitioner(p)
}

type partitioner struct {
	manual          map[string]bool
	keyed, byRecord kgo.Partitioner
}

func (p partitioner) ForTopic(t string) kgo.TopicPartitioner {
	if p.manual[t] {
		return p.byRecord.ForTopic(t)
	}
	return p.keyed.ForTopic(t)
}

// Compression returns the option that compresses produced batches with the
// named codec (none, snappy, lz4 or zstd, Kafka's compression.type); an
// unknown name is none. Pass it after NewProducer's defaults.
func Compression(name string) kgo.Opt {
	switch name {
	case "snappy":
		return kgo.ProducerBatchCompression(kgo.SnappyCompression())
	case "lz4":
		return kgo.ProducerBatchCompression(kgo.Lz4Compression())
	case "zstd":
		return kgo.ProducerBatchCompression(kgo.ZstdCompression())
	}
	return kgo.ProducerBatchCompression(kgo.NoCompression())
}
