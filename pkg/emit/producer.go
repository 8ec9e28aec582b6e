package emit

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
)

// NewProducer returns a client configured to produce output records without
// losing them: acks from all in-sync replicas, idempotent writes (franz-go's
// default), unlimited retries of retriable errors, and a small linger so
// triggers leave at once under low load. opts come after these defaults.
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
