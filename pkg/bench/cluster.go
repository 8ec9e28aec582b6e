package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spur-crm/spur/pkg/devbroker"
)

// topics are the four topics of one run.
type topics struct {
	Clickstream, Orders, Triggers, DLQ string
}

func (t topics) all() []string { return []string{t.Clickstream, t.Orders, t.Triggers, t.DLQ} }

func (t topics) inputs() []string { return []string{t.Clickstream, t.Orders} }

// cluster is the broker of a run, with the run's topics created.
type cluster struct {
	brokers  []string
	embedded *devbroker.Broker
	admCl    *kgo.Client
	adm      *kadm.Client
	runID    string
	topics   topics
	created  bool
}

// describe names the broker for reports.
func (c *cluster) describe() string {
	if c.embedded != nil {
		return "embedded (kfake) " + c.brokers[0]
	}
	return "kafka " + strings.Join(c.brokers, ",")
}

// benchSegmentBytes is the embedded broker's segment size in the bench.
const benchSegmentBytes = 8 << 20

// openCluster starts the embedded broker (no brokers given) or connects to
// the given ones, and creates the run's topics under names unique to the
// run, so that runs on a shared cluster never meet. The triggers topic is
// created with LogAppendTime, so that a trigger's record timestamp is the
// moment the broker appended it.
func openCluster(ctx context.Context, brokers []string, partitions int32) (*cluster, error) {
	var id [4]byte
	rand.Read(id[:])
	c := &cluster{brokers: brokers, runID: hex.EncodeToString(id[:])}
	if len(brokers) == 0 {
		// In memory, so segments small enough that growing one does
		// not stall the broker (see devbroker.Config.SegmentBytes).
		b, err := devbroker.Start(devbroker.Config{Listen: "127.0.0.1:0", SegmentBytes: benchSegmentBytes})
		if err != nil {
			return nil, err
		}
		c.embedded = b
		c.brokers = []string{b.Addr()}
	}
	prefix := "spurbench-" + c.runID + "."
	c.topics = topics{
		Clickstream: prefix + "shop.clickstream",
		Orders:      prefix + "shop.orders",
		Triggers:    prefix + "spur.triggers",
		DLQ:         prefix + "spur.dlq",
	}
	var err error
	c.admCl, err = kgo.NewClient(kgo.SeedBrokers(c.brokers...))
	if err != nil {
		c.close()
		return nil, err
	}
	c.adm = kadm.NewClient(c.admCl)
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	maxBytes := fmt.Sprint(devbroker.DefaultMaxMessageBytes)
	for _, t := range c.topics.all() {
		cfg := map[string]*string{"max.message.bytes": &maxBytes}
		if t == c.topics.Triggers {
			lat := "LogAppendTime"
			cfg["message.timestamp.type"] = &lat
		}
		resp, err := c.adm.CreateTopic(cctx, partitions, -1, cfg, t)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			c.close()
			return nil, fmt.Errorf("bench: create topic %s on %s: %w", t, strings.Join(c.brokers, ","), err)
		}
	}
	c.created = true
	// Wait until every topic's partitions have a leader, as a fresh topic
	// on Apache Kafka takes a moment.
	for {
		md, err := c.adm.Metadata(cctx, c.topics.all()...)
		ok := err == nil
		if ok {
			for _, t := range c.topics.all() {
				td, found := md.Topics[t]
				if !found || td.Err != nil || len(td.Partitions) != int(partitions) {
					ok = false
					break
				}
				for _, p := range td.Partitions {
					if p.Err != nil || p.Leader < 0 {
						ok = false
					}
				}
			}
		}
		if ok {
			return c, nil
		}
		select {
		case <-cctx.Done():
			c.close()
			return nil, fmt.Errorf("bench: topics not ready: %w", errors.Join(err, cctx.Err()))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// producer returns a client that produces input as a storefront would:
// keyed by customer with the murmur2 partitioner, acks from all replicas.
func (c *cluster) producer(opts ...kgo.Opt) (*kgo.Client, error) {
	base := []kgo.Opt{
		kgo.SeedBrokers(c.brokers...),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerBatchMaxBytes(1 << 20),
		kgo.MaxBufferedRecords(100_000),
	}
	return kgo.NewClient(append(base, opts...)...)
}

// endOffsets returns the end offset of every partition of the topics.
func (c *cluster) endOffsets(ctx context.Context, ts ...string) (map[string]map[int32]int64, error) {
	ends, err := c.adm.ListEndOffsets(ctx, ts...)
	if err != nil {
		return nil, err
	}
	out := map[string]map[int32]int64{}
	var ferr error
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			ferr = o.Err
			return
		}
		if out[o.Topic] == nil {
			out[o.Topic] = map[int32]int64{}
		}
		out[o.Topic][o.Partition] = o.Offset
	})
	return out, ferr
}

// trimCommitted deletes the input records before the offsets the group has
// committed, so that the embedded broker, which keeps its log in memory,
// does not grow with a long load. The engine commits only what it has
// applied, so nothing it still needs goes.
func (c *cluster) trimCommitted(ctx context.Context, group string) error {
	committed, err := c.adm.FetchOffsets(ctx, group)
	if err != nil {
		return err
	}
	var offs kadm.Offsets
	committed.Each(func(o kadm.OffsetResponse) {
		if o.Err == nil && o.At > 0 && (o.Topic == c.topics.Clickstream || o.Topic == c.topics.Orders) {
			offs.AddOffset(o.Topic, o.Partition, o.At, -1)
		}
	})
	if len(offs) == 0 {
		return nil
	}
	resp, err := c.adm.DeleteRecords(ctx, offs)
	if err != nil {
		return err
	}
	return resp.Error()
}

// close deletes the run's topics from an external cluster and stops the
// embedded broker.
func (c *cluster) close() {
	if c.embedded == nil && c.created && c.adm != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c.adm.DeleteTopics(ctx, c.topics.all()...)
		cancel()
	}
	if c.admCl != nil {
		c.admCl.Close()
	}
	if c.embedded != nil {
		c.embedded.Close()
	}
}

// deleteGroup removes a consumer group from an external cluster.
func (c *cluster) deleteGroup(group string) {
	if c.embedded != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.adm.DeleteGroups(ctx, group)
}
