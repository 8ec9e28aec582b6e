//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spur-crm/spur/pkg/event"
	"github.com/spur-crm/spur/pkg/publish"
)

const partitions = 6

// storefrontEvents returns a day of shopping for a few customers and
// anonymous visitors: every event type, several events per key, and orders
// for some customers so that both topics get traffic.
func storefrontEvents() []event.Event {
	var evs []event.Event
	for i := range 12 {
		c := fmt.Sprintf("c-%d", i)
		a := fmt.Sprintf("a-%d", i)
		evs = append(evs,
			publish.PageView("", a),
			publish.ProductView("", a, "sku-1", "shoes", 59.9, 2*time.Second),
			publish.Identify(c, a),
			publish.Search(c, "", "red shoes"),
			publish.CartAdd(c, "sku-1", "shoes", 59.9, 2),
			publish.CartRemove(c, "sku-1", 1),
			publish.CheckoutStart(c),
		)
		if i%3 == 0 {
			evs = append(evs,
				publish.Order(c, "o-"+c, []event.Item{{SKU: "sku-1", Category: "shoes", Price: 59.9, Quantity: 1}}),
				publish.Feedback(c, 5, ""),
			)
		}
		if i == 11 {
			evs = append(evs, publish.Forget(c))
		}
	}
	return evs
}

// TestPublishPartitionsLikeFranzGo publishes with pkg/publish (kafka-go),
// reads back with kafka-go's Reader, and checks that every record is intact
// and sits on the partition franz-go's default partitioner picks for its key:
// kafka-go's Murmur2Balancer, franz-go and the Java client agree, so a
// customer's clickstream and orders are co-partitioned for spur.
func TestPublishPartitionsLikeFranzGo(t *testing.T) {
	bs := brokers(t)
	adm := admin(t)
	clicks, orders, probe := topicName(t, "clickstream"), topicName(t, "orders"), topicName(t, "franz")
	for _, topic := range []string{clicks, orders, probe} {
		createTopic(t, adm, topic, partitions)
	}

	p, err := publish.New(bs, publish.WithClickstreamTopic(clicks), publish.WithOrdersTopic(orders))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	evs := storefrontEvents()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	// Two calls: one event, then the rest, as a storefront would mix them.
	if err := p.Publish(ctx, evs[0]); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if err := p.Publish(ctx, evs[1:]...); err != nil {
		t.Fatalf("Publish: %v", err)
	}

	// What franz-go's default partitioner really does with each key, on the
	// broker: produce the keys with a default client and note the partitions.
	franzPartition := map[string]int32{}
	producer := franzClient(t, kgo.DefaultProduceTopic(probe))
	for _, ev := range evs {
		key := ev.Subject()
		if _, done := franzPartition[key]; done {
			continue
		}
		r, err := producer.ProduceSync(ctx, &kgo.Record{Key: []byte(key), Value: []byte("probe")}).First()
		if err != nil {
			t.Fatalf("franz-go produce: %v", err)
		}
		franzPartition[key] = r.Partition
		if want := murmur2Partition([]byte(key), partitions); r.Partition != want {
			t.Fatalf("franz-go put key %q on partition %d, murmur2 says %d", key, r.Partition, want)
		}
	}

	// Expected records per topic and partition, in publish order.
	type rec struct{ key, id string }
	want := map[string]map[int32][]rec{clicks: {}, orders: {}}
	for _, ev := range evs {
		topic := p.Topic(ev.Type)
		part := franzPartition[ev.Subject()]
		want[topic][part] = append(want[topic][part], rec{ev.Subject(), ev.EventID})
	}
	byID := map[string]event.Event{}
	for _, ev := range evs {
		byID[ev.EventID] = ev
	}

	dec, err := event.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{clicks, orders} {
		ends := endOffsets(t, adm, topic)
		for part := int32(0); part < partitions; part++ {
			wantRecs := want[topic][part]
			if ends[part] != int64(len(wantRecs)) {
				t.Errorf("%s/%d holds %d records, want %d", topic, part, ends[part], len(wantRecs))
				continue
			}
			got := readPartition(t, bs, topic, part, len(wantRecs))
			for i, m := range got {
				w := wantRecs[i]
				var ev event.Event
				if err := dec.Decode(m.Value, &ev); err != nil {
					t.Errorf("%s/%d@%d: spur's decoder rejects %s: %v", topic, part, m.Offset, m.Value, err)
					continue
				}
				if string(m.Key) != w.key || ev.EventID != w.id {
					t.Errorf("%s/%d@%d: key %q event %q, want key %q event %q (publish order per key)",
						topic, part, m.Offset, m.Key, ev.EventID, w.key, w.id)
					continue
				}
				orig := byID[ev.EventID]
				if ev.Type != orig.Type || !ev.TS.Equal(orig.TS) || ev.Subject() != orig.Subject() ||
					ev.SKU != orig.SKU || ev.Total != orig.Total || len(ev.Items) != len(orig.Items) {
					t.Errorf("%s/%d@%d: decoded %+v, published %+v", topic, part, m.Offset, ev, orig)
				}
				if d := m.Time.Sub(time.Now()); d > time.Minute || d < -time.Minute {
					t.Errorf("%s/%d@%d: record timestamp %v is not the publish time", topic, part, m.Offset, m.Time)
				}
			}
		}
	}
}

// readPartition reads n records from the start of topic/partition with
// kafka-go's Reader (no consumer group: one reader per partition).
func readPartition(t *testing.T, bs []string, topic string, partition int32, n int) []kafka.Message {
	t.Helper()
	if n == 0 {
		return nil
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   bs,
		Topic:     topic,
		Partition: int(partition),
		MinBytes:  1,
		MaxBytes:  1 << 20,
		MaxWait:   200 * time.Millisecond,
	})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	msgs := make([]kafka.Message, 0, n)
	for len(msgs) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read %s/%d: %d of %d records: %v", topic, partition, len(msgs), n, err)
		}
		if m.Partition != int(partition) || m.Offset != int64(len(msgs)) {
			t.Fatalf("read %s/%d@%d, want %s/%d@%d", m.Topic, m.Partition, m.Offset, topic, partition, len(msgs))
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// TestPublishToMissingTopic checks that the publisher never creates topics
// (a topic made with the broker's default partition count would silently
// break co-partitioning) and that its error names the topic and event.
func TestPublishToMissingTopic(t *testing.T) {
	bs := brokers(t)
	adm := admin(t)
	clicks, missing := topicName(t, "clickstream"), topicName(t, "missing")
	createTopic(t, adm, clicks, 1)

	p, err := publish.New(bs, publish.WithClickstreamTopic(clicks), publish.WithOrdersTopic(missing),
		publish.WithMaxAttempts(3))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	order := publish.Order("c-1", "o-1", []event.Item{{SKU: "sku-1", Price: 10, Quantity: 1}})
	err = p.Publish(ctx, order)
	var perr *publish.Error
	if !errors.As(err, &perr) || perr.Topic != missing || perr.EventID != order.EventID || perr.Invalid {
		t.Fatalf("Publish to a missing topic: %v, want a *publish.Error for %s", err, missing)
	}
	if !errors.Is(err, kafka.UnknownTopicOrPartition) {
		t.Errorf("error %v does not wrap UnknownTopicOrPartition", err)
	}
	md, err := adm.Metadata(ctx, missing)
	if err != nil {
		t.Fatal(err)
	}
	if td, ok := md.Topics[missing]; ok && td.Err == nil {
		t.Errorf("topic %s exists after Publish: it must never be auto-created", missing)
	}
	// The clickstream topic works with the same publisher.
	if err := p.Publish(ctx, publish.CheckoutStart("c-1")); err != nil {
		t.Errorf("Publish to %s: %v", clicks, err)
	}
}

// TestKcatProducesFranzGoReads produces raw JSON lines with the kcat CLI
// (librdkafka), reads them back with franz-go, and checks bytes, keys,
// per-key order, and that spur's decoder accepts what a non-Go storefront
// sends. With librdkafka's murmur2_random partitioner the keys land where
// franz-go and Java put them; with librdkafka's default (CRC32) they do not,
// which is why spur counts and can repartition mis-keyed records.
func TestKcatProducesFranzGoReads(t *testing.T) {
	bs := brokers(t)
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat not installed: `make kafka-kcat` installs it (Debian package kcat)")
	}
	adm := admin(t)

	type line struct{ key, value string }
	var lines []line
	ts := time.Now().UTC().Truncate(time.Millisecond)
	for i := range 24 {
		c := fmt.Sprintf("c-%d", i%8)
		ts = ts.Add(time.Millisecond)
		lines = append(lines, line{c, fmt.Sprintf(
			`{"event_id":"kcat-%d","type":"cart_add","ts":%q,"customer_id":%q,"channel":"pos","sku":"sku-%d","price":9.5,"quantity":1}`,
			i, ts.Format(time.RFC3339Nano), c, i)})
	}
	var input bytes.Buffer
	for _, l := range lines {
		fmt.Fprintf(&input, "%s:%s\n", l.key, l.value)
	}

	dec, err := event.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}

	produce := func(t *testing.T, topic string, extra ...string) []*kgo.Record {
		t.Helper()
		createTopic(t, adm, topic, partitions)
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		args := append([]string{"-P", "-b", strings.Join(bs, ","), "-t", topic, "-K:", "-X", "acks=all"}, extra...)
		cmd := exec.CommandContext(ctx, kcat, args...)
		cmd.Stdin = bytes.NewReader(input.Bytes())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kcat %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		recs := consumeFranz(t, topic, len(lines))
		// Per partition, records come in offset order; per key, they must
		// come in the order kcat read them.
		byKey := map[string][]string{}
		for _, r := range recs {
			var ev event.Event
			if err := dec.Decode(r.Value, &ev); err != nil {
				t.Errorf("%s/%d@%d: spur's decoder rejects %s: %v", r.Topic, r.Partition, r.Offset, r.Value, err)
			} else if ev.Subject() != string(r.Key) {
				t.Errorf("%s/%d@%d: key %q, customer %q", r.Topic, r.Partition, r.Offset, r.Key, ev.Subject())
			}
			byKey[string(r.Key)] = append(byKey[string(r.Key)], string(r.Value))
		}
		wantByKey := map[string][]string{}
		for _, l := range lines {
			wantByKey[l.key] = append(wantByKey[l.key], l.value)
		}
		for k, want := range wantByKey {
			if got := byKey[k]; strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("key %q: values\n%s\nwant (byte for byte, in order)\n%s", k, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		}
		return recs
	}

	t.Run("murmur2_random", func(t *testing.T) {
		recs := produce(t, topicName(t, "kcat"), "-X", "topic.partitioner=murmur2_random")
		for _, r := range recs {
			if want := murmur2Partition(r.Key, partitions); r.Partition != want {
				t.Errorf("kcat (murmur2_random) put key %q on partition %d, franz-go picks %d", r.Key, r.Partition, want)
			}
		}
	})

	t.Run("librdkafka default partitioner", func(t *testing.T) {
		recs := produce(t, topicName(t, "kcat"))
		moved := map[string]bool{}
		for _, r := range recs {
			if r.Partition != murmur2Partition(r.Key, partitions) {
				moved[string(r.Key)] = true
			}
		}
		// Not a property of spur, but the reason the murmur2 subtest means
		// something: a different hash does scatter these keys.
		if len(moved) == 0 {
			t.Errorf("librdkafka's default partitioner agreed with murmur2 on every key; the murmur2 check above proves nothing with these keys")
		}
		t.Logf("librdkafka's default (CRC32) partitioner put %d of 8 customers on another partition than franz-go would", len(moved))
	})
}
