//go:build e2e

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BrokersEnv names the environment variable with the comma-separated broker
// list; kafka.mk sets it.
const BrokersEnv = "SPUR_KAFKA_BROKERS"

// waitFor bounds every poll in this package: topic creation, consumption.
const waitFor = 30 * time.Second

// brokers returns the brokers of the end-to-end suite, or skips the test.
func brokers(t *testing.T) []string {
	t.Helper()
	v := strings.TrimSpace(os.Getenv(BrokersEnv))
	if v == "" {
		t.Skip("set SPUR_KAFKA_BROKERS=host:port or run `make test-kafka` to run the end-to-end suite on Apache Kafka")
	}
	var bs []string
	for _, b := range strings.Split(v, ",") {
		if b = strings.TrimSpace(b); b != "" {
			bs = append(bs, b)
		}
	}
	return bs
}

// franzClient returns a franz-go client closed at the end of the test.
func franzClient(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers(t)...)}, opts...)...)
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// admin returns an admin client whose metadata answers are at most 50ms old:
// kadm serves Metadata from franz-go's cache, which by default keeps even a
// "no such topic" answer for 5s and would slow every wait for a new topic.
func admin(t *testing.T) *kadm.Client {
	t.Helper()
	return kadm.NewClient(franzClient(t, kgo.MetadataMinAge(50*time.Millisecond)))
}

var unsafeTopicChars = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// topicName returns a topic name unique to this test and run, readable in the
// broker log: e2e.<test name>.<role>.<random>.
func topicName(t *testing.T, role string) string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := unsafeTopicChars.ReplaceAllString(t.Name(), "_")
	if len(name) > 120 {
		name = name[:120]
	}
	return fmt.Sprintf("e2e.%s.%s.%s", name, role, hex.EncodeToString(b[:]))
}

// createTopic creates a topic with the given partitions, waits until every
// partition has a leader, and deletes the topic when the test ends.
func createTopic(t *testing.T, adm *kadm.Client, topic string, partitions int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if rs, err := adm.DeleteTopics(ctx, topic); err != nil || rs.Error() != nil {
			t.Logf("delete topic %s: %v %v", topic, err, rs.Error())
		}
	})
	poll(t, ctx, "topic "+topic+" to have a leader for every partition", func() (bool, error) {
		md, err := adm.Metadata(ctx, topic)
		if err != nil {
			return false, nil // retry until the deadline
		}
		td, ok := md.Topics[topic]
		if !ok || td.Err != nil || len(td.Partitions) != int(partitions) {
			return false, nil
		}
		for _, pd := range td.Partitions {
			if pd.Err != nil || pd.Leader < 0 {
				return false, nil
			}
		}
		return true, nil
	})
}

// poll calls cond until it returns true, an error, or ctx ends; the test
// fails in the last two cases.
func poll(t *testing.T, ctx context.Context, what string, cond func() (bool, error)) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		done, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if done {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting for %s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}

// endOffsets returns each partition's end offset (its record count, as these
// topics are new and never compacted or truncated).
func endOffsets(t *testing.T, adm *kadm.Client, topic string) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	offs, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = offs.Error()
	}
	if err != nil {
		t.Fatalf("list end offsets of %s: %v", topic, err)
	}
	out := map[int32]int64{}
	offs.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// murmur2Partition is the partition franz-go's default partitioner (and the
// Java client's) picks for a keyed record: murmur2(key) mod n. It is computed
// with franz-go's own hasher rather than a copy of the algorithm.
func murmur2Partition(key []byte, n int) int32 {
	return int32(kgo.StickyKeyPartitioner(nil).ForTopic("").Partition(&kgo.Record{Key: key}, n))
}

// consumeFranz reads n records from the start of topic with franz-go, failing
// the test if they do not arrive within waitFor.
func consumeFranz(t *testing.T, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := franzClient(t,
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records from %s before the deadline", len(recs), n, topic)
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.Fatalf("fetch %s/%d: %v", topic, p, err)
		})
		recs = append(recs, fs.Records()...)
	}
	if len(recs) != n {
		t.Fatalf("consumed %d records from %s, want %d", len(recs), topic, n)
	}
	return recs
}
