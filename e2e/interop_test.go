//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spur-crm/spur/pkg/config"
	"github.com/spur-crm/spur/pkg/emit"
	"github.com/spur-crm/spur/pkg/event"
	"github.com/spur-crm/spur/pkg/publish"
)

// interopWait is the pipeline wait of the interop tests: long enough that
// the kcat test's order, produced by a second kcat process, lands well
// within it.
const interopWait = 3 * time.Second

const interopPartitions = 6

// target is a spur deployment the interop tests talk to: `spur run` on the
// suite's Apache Kafka broker, or `spur dev` with its embedded listener.
type target struct {
	brokers []string
	topics  spurTopics
	adm     *kadm.Client
	spur    *spurProc
}

// forEachTarget runs f against `spur run` on Apache Kafka and against
// `spur dev`'s embedded broker, each a fresh process.
func forEachTarget(t *testing.T, f func(t *testing.T, tg *target)) {
	t.Run("kafka", func(t *testing.T) {
		bs := brokers(t)
		adm := admin(t)
		topics := newTopics(t, adm, interopPartitions)
		spur := startRun(t, runConfig{Name: "spur", Group: uniqueName(t, "e2e"), Topics: topics,
			Partitions: interopPartitions, Pipelines: pipelinesDir(t, interopWait)})
		spur.waitReady()
		f(t, &target{brokers: bs, topics: topics, adm: adm, spur: spur})
	})
	t.Run("dev", func(t *testing.T) {
		brokers(t) // the suite runs only with a broker
		listen := freeAddr(t)
		spur := startDev(t, devConfig{Name: "spur-dev", Listen: listen, Partitions: interopPartitions,
			Pipelines: pipelinesDir(t, interopWait)})
		spur.waitReady()
		bs := []string{listen}
		cl, err := kgo.NewClient(kgo.SeedBrokers(bs...), kgo.MetadataMinAge(50*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		topics := spurTopics{Clicks: config.DefaultClickstreamTopic, Orders: config.DefaultOrdersTopic,
			Triggers: config.DefaultTriggersTopic, DLQ: config.DefaultDLQTopic}
		f(t, &target{brokers: bs, topics: topics, adm: kadm.NewClient(cl), spur: spur})
	})
}

// TestInteropKafkaGo publishes sessions with pkg/publish (segmentio/kafka-go,
// the storefront's client) and reads spur's triggers with kafka-go's Reader
// in a consumer group of its own, as a marketing system would: against
// `spur run` on Apache Kafka and against `spur dev`.
func TestInteropKafkaGo(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg *target) {
		pub, err := publish.New(tg.brokers, publish.WithClickstreamTopic(tg.topics.Clicks), publish.WithOrdersTopic(tg.topics.Orders))
		if err != nil {
			t.Fatal(err)
		}
		defer pub.Close()
		var (
			evs  []event.Event
			want []wantCoupon
			none []string
		)
		for i := range 4 {
			c := fmt.Sprintf("kg-abandon-%d", i)
			add := publish.CartAdd(c, "sku-1", "shoes", 59.9, i+1)
			evs = append(evs, publish.ProductView(c, "", "sku-1", "shoes", 59.9, time.Second), add)
			// A new customer: 10% off one or two units, free shipping
			// for three or four (a cart worth 150 or more).
			value := 59.9 * float64(i+1)
			want = append(want, wantCoupon{c, add.EventID, add.TS.Add(interopWait),
				[]emit.CartItem{{SKU: "sku-1", Quantity: int32(i + 1)}}, value, freshOffer(value)})
		}
		evs = append(evs,
			publish.CartAdd("kg-ordered", "sku-1", "shoes", 59.9, 1),
			publish.Order("kg-ordered", "o-kg", []event.Item{{SKU: "sku-1", Price: 59.9, Quantity: 1}}),
			publish.CartAdd("kg-emptied", "sku-1", "shoes", 59.9, 1),
			publish.CartRemove("kg-emptied", "sku-1", 0))
		none = append(none, "kg-ordered", "kg-emptied")

		reader := readWithKafkaGo(t, tg.brokers, tg.topics.Triggers)
		publishOrdersAfterCarts(t, pub, evs)

		wantCustomers := map[string]bool{}
		for _, w := range want {
			wantCustomers[w.customer] = true
		}
		waitUntil(t, "the coupons, read with kafka-go", func() (string, error) {
			if err := tg.spur.checkAlive(); err != nil {
				return "", err
			}
			if n := tg.spur.consumed(); n != float64(len(evs)) {
				return fmt.Sprintf("%v of %d events applied", n, len(evs)), nil
			}
			if s := missingCustomers(quickTriggers(reader.records()), wantCustomers); s != "" {
				return s, nil
			}
			return tg.spur.busy(), nil
		})
		recs := reader.readToEnd(t, tg.adm, tg.topics.Triggers)
		checkCoupons(t, decodeTriggers(t, recs), want, none, false)
		checkNoMismatch(t, tg.spur)
	})
}

// TestInteropKcat publishes raw JSON lines with kcat (librdkafka, a non-Go
// client, with the murmur2 partitioner the contract asks of it), including a
// line that is not JSON, and reads the triggers and the dead letter back
// with kcat too: against `spur run` on Apache Kafka and against `spur dev`.
func TestInteropKcat(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat not installed: `make kafka-kcat` installs it (Debian package kcat)")
	}
	forEachTarget(t, func(t *testing.T, tg *target) {
		now := time.Now()
		line := func(id, typ, customer string, d time.Duration, extra string) (string, time.Time) {
			ts := ms(now.Add(d))
			return fmt.Sprintf(`%s:{"event_id":%q,"type":%q,"ts":%q,"customer_id":%q,"channel":"pos"%s}`,
				customer, id, typ, ts.Format(time.RFC3339Nano), customer, extra), ts
		}
		const item = `,"sku":"sku-9","category":"bags","price":20,"quantity":1`
		var (
			clicks []string
			want   []wantCoupon
		)
		for i := range 3 {
			c := fmt.Sprintf("kc-abandon-%d", i)
			v, _ := line(c+"-view", "product_view", c, -100*time.Millisecond, `,"sku":"sku-9","price":20,"dwell_ms":1200`)
			a, ts := line(c+"-add", "cart_add", c, 0, item)
			clicks = append(clicks, v, a)
			want = append(want, wantCoupon{c, c + "-add", ts.Add(interopWait), []emit.CartItem{{SKU: "sku-9", Quantity: 1}}, 20, freshOffer(20)})
		}
		add, _ := line("kc-emptied-add", "cart_add", "kc-emptied", -100*time.Millisecond, item)
		rm, _ := line("kc-emptied-rm", "cart_remove", "kc-emptied", 0, `,"sku":"sku-9"`)
		ordAdd, _ := line("kc-ordered-add", "cart_add", "kc-ordered", 0, item)
		const garbage = "kc-bad:this line is not JSON {"
		clicks = append(clicks, add, rm, ordAdd, garbage)
		none := []string{"kc-emptied", "kc-ordered"}

		// kcat returns once the broker has acknowledged every line: the
		// order is appended after its cart_add (see publishOrdersAfterCarts).
		kcatProduce(t, kcat, tg, tg.topics.Clicks, clicks)
		order, _ := line("kc-ordered-order", "order", "kc-ordered", 10*time.Millisecond,
			`,"order_id":"o-kc","total":20,"items":[{"sku":"sku-9","price":20,"quantity":1}]`)
		kcatProduce(t, kcat, tg, tg.topics.Orders, []string{order})
		total := len(clicks) + 1

		wantCustomers := map[string]bool{}
		for _, w := range want {
			wantCustomers[w.customer] = true
		}
		var trs []*kgo.Record
		waitUntil(t, "the coupons, read with kcat", func() (string, error) {
			if err := tg.spur.checkAlive(); err != nil {
				return "", err
			}
			if n := tg.spur.consumed(); n != float64(total) {
				return fmt.Sprintf("%v of %d records applied", n, total), nil
			}
			if s := tg.spur.busy(); s != "" {
				return s, nil
			}
			var err error
			if trs, err = kcatConsume(kcat, tg.brokers, tg.topics.Triggers); err != nil {
				return "kcat: " + err.Error(), nil
			}
			return missingCustomers(quickTriggers(trs), wantCustomers), nil
		})
		// kcat -e read to the end of every partition, after spur had
		// nothing pending: these are all the triggers.
		checkCoupons(t, decodeTriggers(t, trs), want, none, false)

		dl, err := kcatConsume(kcat, tg.brokers, tg.topics.DLQ)
		if err != nil {
			t.Fatalf("kcat: %v", err)
		}
		if len(dl) != 1 {
			t.Fatalf("%d dead letters, want 1: %v", len(dl), dl)
		}
		key, value, _ := strings.Cut(garbage, ":")
		h := map[string]string{}
		for _, kv := range dl[0].Headers {
			h[kv.Key] = string(kv.Value)
		}
		if string(dl[0].Key) != key || string(dl[0].Value) != value || h[emit.HeaderError] != "malformed_json" ||
			h[emit.HeaderTopic] != tg.topics.Clicks || h[emit.HeaderOffset] == "" || h[emit.HeaderPartition] == "" {
			t.Errorf("dead letter key %q value %q headers %v, want the kcat line byte for byte, spur-error malformed_json, source %s",
				dl[0].Key, dl[0].Value, h, tg.topics.Clicks)
		}
		checkNoMismatch(t, tg.spur)
	})
}

// checkNoMismatch checks that every record arrived on the partition spur
// expects for its key (murmur2, as the Java client and franz-go hash).
func checkNoMismatch(t *testing.T, p *spurProc) {
	t.Helper()
	if got := p.mustScrape().sum("spur_key_partition_mismatch_total"); got != 0 {
		t.Errorf("spur_key_partition_mismatch_total = %v: the client partitioned keys unlike murmur2", got)
	}
}

// kcatProduce produces "key:value" lines to topic with kcat, acks=all and
// librdkafka's murmur2 partitioner, and checks that they all landed (kcat
// exits 0 even when a delivery fails).
func kcatProduce(t *testing.T, kcat string, tg *target, topic string, lines []string) {
	t.Helper()
	before := endOffsets(t, tg.adm, topic)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	args := []string{"-P", "-b", strings.Join(tg.brokers, ","), "-t", topic, "-K:",
		"-X", "partitioner=murmur2_random", "-X", "acks=all"}
	cmd := exec.CommandContext(ctx, kcat, args...)
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("kcat %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	after := endOffsets(t, tg.adm, topic)
	var n int64
	for p, o := range after {
		n += o - before[p]
	}
	if n != int64(len(lines)) {
		t.Fatalf("kcat produced %d records to %s, want %d", n, topic, len(lines))
	}
}

// kcatConsume reads a whole topic with kcat (-e: exit at the end of every
// partition), as records.
func kcatConsume(kcat string, bs []string, topic string) ([]*kgo.Record, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, "-C", "-b", strings.Join(bs, ","), "-t", topic, "-o", "beginning", "-e", "-q", "-J")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, stderr.Bytes())
	}
	var recs []*kgo.Record
	for _, l := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var m struct {
			Topic     string   `json:"topic"`
			Partition int32    `json:"partition"`
			Offset    int64    `json:"offset"`
			Headers   []string `json:"headers"`
			Key       *string  `json:"key"`
			Payload   *string  `json:"payload"`
		}
		if err := json.Unmarshal(l, &m); err != nil {
			return nil, fmt.Errorf("kcat -J line %q: %w", l, err)
		}
		r := &kgo.Record{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}
		if m.Key != nil {
			r.Key = []byte(*m.Key)
		}
		if m.Payload != nil {
			r.Value = []byte(*m.Payload)
		}
		for i := 0; i+1 < len(m.Headers); i += 2 {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: m.Headers[i], Value: []byte(m.Headers[i+1])})
		}
		recs = append(recs, r)
	}
	slices.SortFunc(recs, func(a, b *kgo.Record) int {
		if a.Partition != b.Partition {
			return int(a.Partition - b.Partition)
		}
		return int(a.Offset - b.Offset)
	})
	return recs, nil
}

// kafkaGoReader collects a topic with kafka-go's Reader in a consumer group
// of its own, in the background.
type kafkaGoReader struct {
	mu   sync.Mutex
	recs []*kgo.Record
	next map[int32]int64
}

func readWithKafkaGo(t *testing.T, bs []string, topic string) *kafkaGoReader {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:     bs,
		GroupID:     uniqueName(t, "e2e-kafka-go"),
		Topic:       topic,
		StartOffset: kafka.FirstOffset,
		MinBytes:    1,
		MaxBytes:    1 << 20,
		MaxWait:     200 * time.Millisecond,
	})
	kr := &kafkaGoReader{next: map[int32]int64{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				return // ctx cancelled at the end of the test
			}
			rec := &kgo.Record{Topic: m.Topic, Partition: int32(m.Partition), Offset: m.Offset, Key: m.Key, Value: m.Value}
			for _, h := range m.Headers {
				rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
			}
			kr.mu.Lock()
			kr.recs = append(kr.recs, rec)
			kr.next[rec.Partition] = m.Offset + 1
			kr.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		r.Close()
	})
	return kr
}

func (kr *kafkaGoReader) records() []*kgo.Record {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	return slices.Clone(kr.recs)
}

// readToEnd waits until the reader has read every record the topic holds.
func (kr *kafkaGoReader) readToEnd(t *testing.T, adm *kadm.Client, topic string) []*kgo.Record {
	t.Helper()
	ends := endOffsets(t, adm, topic)
	waitUntil(t, "kafka-go to read "+topic+" to its end", func() (string, error) {
		kr.mu.Lock()
		defer kr.mu.Unlock()
		for p, end := range ends {
			if end > 0 && kr.next[p] < end {
				return fmt.Sprintf("partition %d read to %d of %d", p, kr.next[p], end), nil
			}
		}
		return "", nil
	})
	return kr.records()
}
