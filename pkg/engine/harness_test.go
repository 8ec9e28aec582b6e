package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"

	"github.com/spur-crm/spur/pkg/changelog"
	"github.com/spur-crm/spur/pkg/devbroker"
	"github.com/spur-crm/spur/pkg/emit"
	"github.com/spur-crm/spur/pkg/engine"
	"github.com/spur-crm/spur/pkg/event"
	"github.com/spur-crm/spur/pkg/ingest"
	"github.com/spur-crm/spur/pkg/pipeline"
	"github.com/spur-crm/spur/pkg/state"
)

const (
	clickstream = "shop.clickstream"
	orders      = "shop.orders"
	triggers    = "spur.triggers"
	dlq         = "spur.dlq"
	partitions  = 4
)

// t0 is the harness's starting time; events are stamped relative to it.
var t0 = time.Date(2026, 11, 23, 5, 0, 0, 0, time.UTC)

// harness is the in-process tier: the embedded broker, Pebble on disk, the
// real engine and consumer group, and a fake clock that the test advances.
type harness struct {
	t      testing.TB
	dir    string
	broker *devbroker.Broker
	clock  *clockwork.FakeClock
	client *kgo.Client // the test's own producer and admin

	store    *state.Store
	producer *kgo.Client
	consumer *ingest.Consumer
	metrics  *engine.Metrics
	eng      *engine.Engine
	cancel   context.CancelFunc
	// consumerOpts are added to the engine's consumer client (hooks).
	consumerOpts []kgo.Opt
	// pipelines, when set, replace the shipped cart_abandonment.
	pipelines []*pipeline.Pipeline
	done      chan error
	// changelog, when set, mirrors state to this topic and restores from
	// it; stateDir names the data dir's state directory (default "state").
	changelog string
	stateDir  string
	restorer  *changelog.Restorer
	// txn turns transactions on (with the changelog); txnHook is called
	// at each phase of every transaction; fencedPause is the consumer's.
	txn         bool
	txnHook     func(part int32, phase engine.TxnPhase, outputs int) error
	fencedPause time.Duration
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	dir := t.TempDir()
	b, err := devbroker.Start(devbroker.Config{
		Listen:  "127.0.0.1:0",
		DataDir: filepath.Join(dir, "broker"),
		Topics:  map[string]int32{clickstream: partitions, orders: partitions, triggers: partitions, dlq: partitions},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ProducerLinger(0), kgo.ProducerBatchMaxBytes(devbroker.DefaultMaxMessageBytes))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	h := &harness{t: t, dir: dir, broker: b, clock: clockwork.NewFakeClockAt(t0), client: cl}
	return h
}

// start starts the engine on the harness's data dir.
func (h *harness) start() {
	h.t.Helper()
	t := h.t
	var err error
	if h.stateDir == "" {
		h.stateDir = "state"
	}
	var storeOpts []state.Option
	if h.txn {
		storeOpts = append(storeOpts, state.WithLocalOutbox())
	}
	h.store, err = state.Open(filepath.Join(h.dir, h.stateDir), storeOpts...)
	if err != nil {
		t.Fatal(err)
	}
	pipes := h.pipelines
	if pipes == nil {
		pipes = cartAbandonment(t)
	}
	dec, err := event.NewDecoder(event.WithClock(h.clock))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	log := zaptest.NewLogger(t)
	h.producer, err = emit.NewProducer(kgo.SeedBrokers(h.broker.Addr()), kgo.ProducerBatchMaxBytes(devbroker.DefaultMaxMessageBytes), emit.ManualPartitions(h.changelog))
	if err != nil {
		t.Fatal(err)
	}
	var consumerOpts []ingest.Option
	if h.changelog != "" {
		if _, err := ingest.EnsureTopics(context.Background(), kadm.NewClient(h.client), ingest.TopicSpec{Inputs: []string{clickstream, orders}, Changelog: h.changelog}, false); err != nil {
			t.Fatal(err)
		}
		h.restorer, err = changelog.New(changelog.Config{Topic: h.changelog, ClientOpts: []kgo.Opt{kgo.SeedBrokers(h.broker.Addr())}}, h.store,
			changelog.WithRegisterer(reg), changelog.WithLogger(log), changelog.WithClock(h.clock))
		if err != nil {
			t.Fatal(err)
		}
		consumerOpts = append(consumerOpts, ingest.WithRestorer(h.restorer))
	}
	engOpts := []engine.Option{engine.WithClock(h.clock), engine.WithRegisterer(reg), engine.WithLogger(log)}
	if h.txn {
		engOpts = append(engOpts, engine.WithTransactions(func(part int32) (*kgo.Client, error) {
			return emit.NewProducer(kgo.SeedBrokers(h.broker.Addr()), kgo.ProducerBatchMaxBytes(devbroker.DefaultMaxMessageBytes),
				emit.ManualPartitions(h.changelog), kgo.TransactionalID(engine.TransactionalID(txnGroup, part)))
		}))
		if h.txnHook != nil {
			engOpts = append(engOpts, engine.WithTxnHook(h.txnHook))
		}
	}
	eng, err := engine.New(engine.Config{Staleness: time.Hour, Partitions: partitions, ChangelogTopic: h.changelog, AwaitInputEnds: true}, h.store, dec, pipes, h.producer, engOpts...)
	if err != nil {
		t.Fatal(err)
	}
	h.metrics = eng.Metrics()
	h.eng = eng
	h.consumer, err = ingest.New(ingest.Config{Brokers: []string{h.broker.Addr()}, Group: txnGroup, Partitions: partitions, ClientOpts: h.consumerOpts, FencedPause: h.fencedPause}, eng, append(consumerOpts, ingest.WithLogger(log))...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- h.consumer.Run(ctx) }()
}

// stop shuts the engine down cleanly.
func (h *harness) stop() {
	h.t.Helper()
	h.cancel()
	if err := <-h.done; err != nil {
		h.t.Fatalf("engine: %v", err)
	}
	h.release()
}

// release closes what start opened, once the consumer has returned.
func (h *harness) release() {
	h.t.Helper()
	h.producer.Close()
	if h.restorer != nil {
		h.restorer.Close()
	}
	if err := h.store.Close(); err != nil {
		h.t.Fatal(err)
	}
}

// cartAbandonment is the shipped cart_abandonment pipeline alone (it waits
// 10s): it is what these tests and the loadgen oracle model (the other
// pipelines have their own test files, run by spur test).
func cartAbandonment(t testing.TB) []*pipeline.Pipeline {
	t.Helper()
	all, err := pipeline.LoadDir("../../pipelines")
	if err != nil {
		t.Fatal(err)
	}
	var pipes []*pipeline.Pipeline
	for _, p := range all {
		if p.Name == "cart_abandonment" {
			pipes = append(pipes, p)
		}
	}
	return pipes
}

// ev builds an event JSON value.
func ev(id, typ, customer string, at time.Duration, extra string) []byte {
	who := fmt.Sprintf(`"customer_id":%q`, customer)
	if customer != "" && customer[0] == 'a' {
		who = fmt.Sprintf(`"anonymous_id":%q`, customer)
	}
	s := fmt.Sprintf(`{"event_id":%q,"type":%q,"ts":%q,%s`, id, typ, t0.Add(at).Format(time.RFC3339Nano), who)
	if extra != "" {
		s += "," + extra
	}
	return []byte(s + "}")
}

func cartAdd(id, customer string, at time.Duration, sku string, price float64) []byte {
	return ev(id, "cart_add", customer, at, fmt.Sprintf(`"sku":%q,"category":"shoes","price":%g,"quantity":1`, sku, price))
}

func (h *harness) publish(topic, key string, value []byte) {
	h.t.Helper()
	var k []byte
	if key != "" {
		k = []byte(key)
	}
	if err := h.client.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Key: k, Value: value}).FirstErr(); err != nil {
		h.t.Fatalf("produce: %v", err)
	}
}

// waitFor polls cond until it holds or 30s pass. It waits for the engine's
// progress, never for time to pass: the engine's clock is the fake one.
func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitStateCommitted waits until each customer's committed record counts events
// events. consumed moves while a step applies its records, before the step
// commits, and Inspect reads what is committed: a test that inspected
// customers once consumed was reached failed under -race now and then.
func (h *harness) waitStateCommitted(events uint64, ids ...string) {
	h.t.Helper()
	h.waitFor(fmt.Sprintf("%v committed with %d events each", ids, events), func() bool {
		for _, id := range ids {
			if v, err := h.eng.Inspect(id); err != nil || v.Events != events {
				return false
			}
		}
		return true
	})
}

// consumed is the number of input records the engine applied (dead letters
// included).
func (h *harness) consumed() int {
	var n float64
	for _, typ := range append(event.Types, "invalid") {
		for _, topic := range []string{clickstream, orders} {
			n += testutil.ToFloat64(h.metrics.EventsConsumed.WithLabelValues(topic, string(typ)))
		}
	}
	return int(n)
}

// settled reports that the engine has no armed timer due and nothing in
// flight: every output record it will emit for the input so far, at the
// current fake time, is acknowledged.
func (h *harness) settled() bool {
	var outbox, pendingDue float64
	for p := 0; p < partitions; p++ {
		outbox += testutil.ToFloat64(h.metrics.OutboxPending.WithLabelValues(fmt.Sprint(p)))
	}
	_ = pendingDue
	return outbox == 0
}

// advance moves the fake clock and waits until the workers have fired
// wantFired timers in all and the broker has acknowledged wantAcked triggers.
func (h *harness) advance(d time.Duration, wantFired, wantAcked int) {
	h.t.Helper()
	h.clock.Advance(d)
	h.waitFor(fmt.Sprintf("%d timers fired, %d triggers acknowledged", wantFired, wantAcked), func() bool {
		return int(testutil.ToFloat64(h.metrics.TimersFired)) >= wantFired && h.acked() >= wantAcked && h.settled()
	})
}

// acked is the number of triggers the broker acknowledged.
func (h *harness) acked() int {
	return int(testutil.ToFloat64(h.metrics.Triggers.WithLabelValues("cart_abandonment", emit.KindCoupon)))
}

// readAll reads a topic from the start up to its current end.
func (h *harness) readAll(topic string) []*kgo.Record {
	h.t.Helper()
	return h.read(topic, kgo.ReadCommitted())
}

// read reads a topic from the start up to its current end, as a consumer
// with the given isolation level sees it: read_committed skips the records
// of aborted transactions (and of open ones: it stops at the last stable
// offset).
func (h *harness) read(topic string, iso kgo.IsolationLevel) []*kgo.Record {
	h.t.Helper()
	adm := kadm.NewClient(h.client)
	list := adm.ListEndOffsets
	if iso == kgo.ReadCommitted() {
		list = adm.ListCommittedOffsets
	}
	ends, err := list(context.Background(), topic)
	if err != nil {
		h.t.Fatal(err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	if len(want) == 0 {
		return nil
	}
	// Transaction markers are returned to see each partition's last offset.
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.broker.Addr()), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(iso), kgo.KeepControlRecords())
	if err != nil {
		h.t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			h.t.Fatalf("read %s: got %d records, partitions %v not read to their end", topic, len(out), want)
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := want[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			if !r.Attrs.IsControl() {
				out = append(out, r)
			}
			if r.Offset == end-1 {
				delete(want, r.Partition)
			}
		})
	}
	return out
}

// triggersByCustomer decodes the trigger topic, checking each record against
// schemas/trigger.json.
func (h *harness) triggersByCustomer() map[string][]emit.Trigger {
	h.t.Helper()
	out := map[string][]emit.Trigger{}
	for _, r := range h.readAll(triggers) {
		if err := event.ValidateTrigger(r.Value); err != nil {
			h.t.Errorf("trigger does not match schemas/trigger.json: %v\n%s", err, r.Value)
		}
		var tr emit.Trigger
		if err := json.Unmarshal(r.Value, &tr); err != nil {
			h.t.Fatal(err)
		}
		if string(r.Key) != tr.CustomerID {
			h.t.Errorf("trigger key %q, customer %q", r.Key, tr.CustomerID)
		}
		out[tr.CustomerID] = append(out[tr.CustomerID], tr)
	}
	return out
}

func keys[M ~map[string]V, V any](m M) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// timersPending is the number of timers armed across the partitions.
func (h *harness) timersPending() int {
	var n float64
	for p := 0; p < partitions; p++ {
		n += testutil.ToFloat64(h.metrics.TimersPending.WithLabelValues(fmt.Sprint(p)))
	}
	return int(n)
}
