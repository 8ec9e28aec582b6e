package engine_test

import (
	"context"
	"math"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spur-crm/spur/pkg/engine"
	"github.com/spur-crm/spur/pkg/event"
	"github.com/spur-crm/spur/pkg/pipeline"
	"github.com/spur-crm/spur/pkg/state"
)

// discard acknowledges every record at once.
type discard struct{}

func (discard) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	promise(r, nil)
}

// directWorker starts the worker of partition 0 of an engine on a store in
// memory and a fake clock at t0, for a test to drive through its API.
func directWorker(t *testing.T, cfg engine.Config, pipes []*pipeline.Pipeline, p engine.Producer) (*engine.Engine, *engine.Worker, *state.Store, *clockwork.FakeClock) {
	t.Helper()
	clock := clockwork.NewFakeClockAt(t0)
	store, err := state.Open("db", state.WithFS(vfs.NewMem()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	dec, err := event.NewDecoder(event.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(cfg, store, dec, pipes, p, engine.WithClock(clock), engine.WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	w, err := eng.StartWorker(0, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Stop(context.Background()) })
	return eng, w, store, clock
}

// TestObservationReleasesHeldTimer drives a worker directly: a timer due by
// the clock but held back by the horizon (the orders topic was last seen
// before its deadline) fires on the observation that moves the horizon past
// it, without the clock moving again to wake the worker.
func TestObservationReleasesHeldTimer(t *testing.T) {
	pipes := cartAbandonment(t) // waits 10s
	// An idle worker sleeps an hour: only the observation can wake it.
	eng, w, _, clock := directWorker(t, engine.Config{Partitions: 1, MaxWaitIdle: time.Hour}, pipes, discard{})
	cfg := eng.Config()
	ctx := context.Background()
	fired := func() float64 { return testutil.ToFloat64(eng.Metrics().TimersFired) }

	// The orders topic is caught up as of t0, and a cart waits from t0.
	if err := w.Apply(ctx, engine.Batch{Topic: cfg.OrdersTopic, HighWatermark: 0, ObservedAt: t0}); err != nil {
		t.Fatal(err)
	}
	rec := &kgo.Record{Topic: cfg.ClickstreamTopic, Key: []byte("c-1"), Value: cartAdd("e-1", "c-1", 0, "sku-1", 10), Timestamp: t0}
	if err := w.Apply(ctx, engine.Batch{Topic: cfg.ClickstreamTopic, Records: []*kgo.Record{rec}, HighWatermark: 1}); err != nil {
		t.Fatal(err)
	}
	// Past the deadline by the clock, the timer stays held: an order
	// stamped before it may still be unread.
	clock.Advance(time.Minute)
	if err := w.Apply(ctx, engine.Batch{HighWatermark: -1}); err != nil {
		t.Fatal(err)
	}
	if n := fired(); n != 0 {
		t.Fatalf("%v timers fired while the horizon held them back, want 0", n)
	}
	// Seeing the orders topic's end now releases it.
	w.Observe(engine.Batch{Topic: cfg.OrdersTopic, HighWatermark: 0, ObservedAt: clock.Now()})
	deadline := time.Now().Add(10 * time.Second)
	for fired() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%v timers fired after the observation released the held one, want 1", fired())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// applier returns a function that feeds w one batch and steps it, failing
// the test on an error.
func applier(t *testing.T, w *engine.Worker) func(engine.Batch) {
	return func(b engine.Batch) {
		t.Helper()
		if err := w.Apply(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
}

// TestInputWaitAndMergeHold: a record held for the other input topic counts
// its hold once it goes, and its wait from the poll that returned it to the
// step that applied it.
func TestInputWaitAndMergeHold(t *testing.T) {
	eng, w, _, clock := directWorker(t, engine.Config{Partitions: 1, MaxTaskIdle: time.Hour}, cartAbandonment(t), discard{})
	cfg := eng.Config()
	apply := applier(t, w)
	// seconds returns a histogram's sample count and sum.
	seconds := func(h prometheus.Histogram) (uint64, float64) {
		var m dto.Metric
		if err := h.Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
	}

	apply(engine.Batch{Topic: cfg.OrdersTopic, HighWatermark: 0, ObservedAt: t0})
	// Fetched after the orders topic was last seen: held for it.
	clock.Advance(2 * time.Millisecond)
	rec := &kgo.Record{Topic: cfg.ClickstreamTopic, Key: []byte("c-1"), Value: cartAdd("e-1", "c-1", 0, "sku-1", 10), Timestamp: t0}
	apply(engine.Batch{Topic: cfg.ClickstreamTopic, Records: []*kgo.Record{rec}, HighWatermark: 1, FetchedAt: clock.Now()})
	if n, _ := seconds(eng.Metrics().InputWait); n != 0 {
		t.Fatalf("%d records counted as applied while the merge held the only one", n)
	}
	clock.Advance(30 * time.Millisecond)
	apply(engine.Batch{Topic: cfg.OrdersTopic, HighWatermark: 0, ObservedAt: clock.Now()})
	holds := eng.Metrics().MergeHold
	waitedFor := func(what string) prometheus.Histogram { return holds.WithLabelValues(what).(prometheus.Histogram) }
	for name, h := range map[string]prometheus.Histogram{"input wait": eng.Metrics().InputWait, "merge hold for the end": waitedFor(engine.HoldEnd)} {
		if n, sum := seconds(h); n != 1 || math.Abs(sum-0.030) > 1e-9 {
			t.Errorf("%s: %d samples summing to %v s, want one of 0.030 s", name, n, sum)
		}
	}
	if n, _ := seconds(waitedFor(engine.HoldRecords)); n != 0 {
		t.Errorf("%d holds counted as waiting for records, want 0: the orders topic had none", n)
	}

	// The orders topic's end moves past what was fetched of it: the next
	// clickstream record waits for that record, not for an end.
	apply(engine.Batch{Topic: cfg.OrdersTopic, HighWatermark: 1, ObservedAt: clock.Now()})
	clock.Advance(time.Millisecond)
	rec = &kgo.Record{Topic: cfg.ClickstreamTopic, Key: []byte("c-1"), Value: cartAdd("e-2", "c-1", time.Second, "sku-2", 10), Timestamp: t0.Add(time.Second), Offset: 1}
	apply(engine.Batch{Topic: cfg.ClickstreamTopic, Records: []*kgo.Record{rec}, HighWatermark: 2, FetchedAt: clock.Now()})
	clock.Advance(20 * time.Millisecond)
	order := &kgo.Record{Topic: cfg.OrdersTopic, Key: []byte("c-1"), Value: ev("o-1", "order", "c-1", 2*time.Second, `"order_id":"o-1","total":10,"items":[{"sku":"sku-2","price":10,"quantity":1}]`), Timestamp: t0.Add(2 * time.Second)}
	apply(engine.Batch{Topic: cfg.OrdersTopic, Records: []*kgo.Record{order}, HighWatermark: 1, FetchedAt: clock.Now()})
	if n, sum := seconds(waitedFor(engine.HoldRecords)); n != 1 || math.Abs(sum-0.020) > 1e-9 {
		t.Errorf("merge hold for records: %d samples summing to %v s, want one of 0.020 s", n, sum)
	}
	if n, _ := seconds(waitedFor(engine.HoldEnd)); n != 1 {
		t.Errorf("%d holds counted as waiting for an end, want still 1", n)
	}
}

// TestFetchTellsTheOtherTopicsEnd: a record waits for the other input
// topic to be seen after it was fetched, unless the fetch response that
// returned it (or a later one) told that topic's end: the broker read it
// after the record was appended. An end told by an earlier response, or
// one with records unread beyond it, does not let it go.
func TestFetchTellsTheOtherTopicsEnd(t *testing.T) {
	eng, w, _, clock := directWorker(t, engine.Config{Partitions: 1, MaxTaskIdle: time.Hour, MaxTaskIdleBehind: time.Hour}, cartAbandonment(t), discard{})
	cfg := eng.Config()
	apply := applier(t, w)
	applied := func() int64 { return w.Applied()[cfg.ClickstreamTopic] }
	view := func(i int64) *kgo.Record {
		id := "e-" + strconv.FormatInt(i, 10)
		return &kgo.Record{Topic: cfg.ClickstreamTopic, Key: []byte("c-1"), Value: ev(id, "page_view", "c-1", 0, `"channel":"web"`), Offset: i, Timestamp: t0}
	}
	orders := func(hw int64) []engine.End { return []engine.End{{Topic: cfg.OrdersTopic, HighWatermark: hw}} }

	apply(engine.Batch{Topic: cfg.OrdersTopic, HighWatermark: 0, ObservedAt: t0, Fetch: 3})
	clock.Advance(time.Millisecond)
	// The orders topic was told by fetch 3, before this record's fetch 4.
	apply(engine.Batch{Topic: cfg.ClickstreamTopic, Records: []*kgo.Record{view(0)}, HighWatermark: 1, FetchedAt: clock.Now(), Fetch: 4})
	if n := applied(); n != 0 {
		t.Fatalf("applied up to %d with the orders topic last told before the record was fetched", n)
	}
	// Fetch 5 returns the next record and tells that the orders topic has
	// one record unread: both wait.
	apply(engine.Batch{Topic: cfg.ClickstreamTopic, Records: []*kgo.Record{view(1)}, HighWatermark: 2, FetchedAt: clock.Now(), Fetch: 5, Ends: orders(1)})
	if n := applied(); n != 0 {
		t.Fatalf("applied up to %d with an order known unread", n)
	}
	// The order comes, in fetch 6 with the next record: everything goes.
	order := &kgo.Record{Topic: cfg.OrdersTopic, Key: []byte("c-2"), Value: ev("o-1", "page_view", "c-2", time.Second, `"channel":"web"`), Offset: 0, Timestamp: t0.Add(time.Second)}
	apply(engine.Batch{Topic: cfg.OrdersTopic, Records: []*kgo.Record{order}, HighWatermark: 1, FetchedAt: clock.Now(), Fetch: 6})
	if n := applied(); n != 2 {
		t.Fatalf("applied up to %d once the older order came, want 2", n)
	}
	// A probe of the clickstream topic lets the order go.
	apply(engine.Batch{Topic: cfg.ClickstreamTopic, HighWatermark: 2, ObservedAt: clock.Now()})
	if n := w.Applied()[cfg.OrdersTopic]; n != 1 {
		t.Fatalf("applied orders up to %d, want 1", n)
	}
	// Fetch 7 returns a record and tells the orders topic's end in the
	// same response: no wait.
	clock.Advance(time.Millisecond)
	apply(engine.Batch{Topic: cfg.ClickstreamTopic, Records: []*kgo.Record{view(2)}, HighWatermark: 3, FetchedAt: clock.Now(), Fetch: 7, Ends: orders(1)})
	if n := applied(); n != 3 {
		t.Fatalf("applied up to %d with the orders topic's end told in the record's own fetch, want 3", n)
	}
}

// heldChangelog acknowledges output records at once and changelog records
// only when the test says so, in order, at offsets from 0.
type heldChangelog struct {
	mu   sync.Mutex
	held []heldRecord
	next int64
}

type heldRecord struct {
	r       *kgo.Record
	promise func(*kgo.Record, error)
}

func (p *heldChangelog) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	if r.Topic != changelogTopic {
		promise(r, nil)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held = append(p.held, heldRecord{r, promise})
}

// produced is the number of changelog records produced so far.
func (p *heldChangelog) produced() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return int(p.next) + len(p.held)
}

// ack acknowledges the next n changelog records.
func (p *heldChangelog) ack(n int) {
	p.mu.Lock()
	recs := p.held[:n]
	p.held = p.held[n:]
	for _, h := range recs {
		h.r.Offset = p.next
		p.next++
	}
	p.mu.Unlock()
	for _, h := range recs {
		h.promise(h.r, nil)
	}
}

// TestChangelogStepAcknowledgedInPartKeepsItsRow: a step's changelog
// records share one outbox row. While the broker has acknowledged only
// some of them, the row stays and the checkpoint stays before it (a crash
// then finds the step's records on the broker from its first one); once
// its step end is acknowledged, the row goes and the checkpoint moves past
// the step end.
func TestChangelogStepAcknowledgedInPartKeepsItsRow(t *testing.T) {
	prod := &heldChangelog{}
	eng, w, store, _ := directWorker(t, engine.Config{Partitions: 1, ChangelogTopic: changelogTopic}, nil, prod)
	cfg := eng.Config()
	ctx := context.Background()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	apply := func(offset int64, customer string) {
		t.Helper()
		rec := &kgo.Record{Topic: cfg.ClickstreamTopic, Key: []byte(customer), Value: ev("e-"+customer, "page_view", customer, 0, ""), Timestamp: t0, Offset: offset}
		if err := w.Apply(ctx, engine.Batch{Topic: cfg.ClickstreamTopic, Records: []*kgo.Record{rec}, HighWatermark: offset + 1}); err != nil {
			t.Fatal(err)
		}
	}
	checkpoint := func() int64 {
		t.Helper()
		cp, _, err := store.Checkpoint(0)
		if err != nil {
			t.Fatal(err)
		}
		return cp.Offset
	}
	outboxRows := func() int {
		t.Helper()
		n, err := store.CountKind(0, state.KindChangelog)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	apply(0, "c-1")
	waitFor("the first step's records", func() bool { return prod.produced() > 0 })
	first := prod.produced() // c-1, the offset row, the step end
	if first < 3 || outboxRows() != 1 {
		t.Fatalf("the first step produced %d changelog records from %d outbox rows, want 3 or more from one", first, outboxRows())
	}
	// All but the step end acknowledged; the next step takes that in.
	prod.ack(first - 1)
	apply(1, "c-2")
	waitFor("the second step's records", func() bool { return prod.produced() > first })
	if n, cp := outboxRows(), checkpoint(); n != 2 || cp != 0 {
		t.Fatalf("with the first step acknowledged in part: %d outbox rows, checkpoint %d; want both steps' rows and checkpoint 0", n, cp)
	}
	if rows, err := store.ChangelogRows(0); err != nil || len(rows) != prod.produced() {
		t.Fatalf("outbox holds %d records (%v), want all %d produced", len(rows), err, prod.produced())
	}
	// The first step's end acknowledged: its row goes, the checkpoint
	// moves past it.
	prod.ack(1)
	waitFor("the first step's row deleted", func() bool { return outboxRows() == 1 })
	if cp := checkpoint(); cp != int64(first) {
		t.Fatalf("checkpoint %d, want %d (after the first step's end)", cp, first)
	}
	prod.ack(prod.produced() - first)
	waitFor("the outbox emptied", func() bool { return outboxRows() == 0 })
	if cp := checkpoint(); cp != int64(prod.produced()) {
		t.Fatalf("checkpoint %d, want %d", cp, prod.produced())
	}
}

// TestUnappliedBoundedByBytes: a worker holding large records its merge
// keeps back (the orders topic is known to have an older one unread) is
// full by their bytes long before their number, and empty again once they
// are applied.
func TestUnappliedBoundedByBytes(t *testing.T) {
	all, err := pipeline.LoadDir("../../pipelines")
	if err != nil {
		t.Fatal(err)
	}
	eng, w, _, _ := directWorker(t, engine.Config{Partitions: 1, MaxTaskIdle: time.Hour, MaxTaskIdleBehind: time.Hour}, all, discard{})
	cfg := eng.Config()
	ctx := context.Background()
	if err := w.Apply(ctx, engine.Batch{Topic: cfg.OrdersTopic, HighWatermark: 1, ObservedAt: t0}); err != nil {
		t.Fatal(err)
	}
	const size = 3 << 20
	var big []*kgo.Record
	for i := range 3 {
		big = append(big, &kgo.Record{Topic: cfg.ClickstreamTopic, Key: []byte("c-1"), Value: make([]byte, size), Offset: int64(i), Timestamp: t0.Add(time.Second),
			Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("v")}}})
	}
	if !w.TrySubmit(engine.Batch{Topic: cfg.ClickstreamTopic, Records: big, HighWatermark: 3, FetchedAt: t0}) {
		t.Fatal("an empty worker refused a batch")
	}
	records, bytes := w.Unapplied(cfg.ClickstreamTopic)
	if want := int64(3 * (size + len("c-1") + len("hv"))); records != 3 || bytes != want {
		t.Fatalf("unapplied = %d records, %d bytes; want 3, %d", records, bytes, want)
	}
	if !w.Full(cfg.ClickstreamTopic) {
		t.Fatalf("%d MiB unapplied do not fill the worker (MaxUnappliedBytes %d MiB)", bytes>>20, engine.MaxUnappliedBytes>>20)
	}
	if w.Full(cfg.OrdersTopic) {
		t.Fatal("the orders topic is full with nothing submitted")
	}
	// The older order arrives: the merge applies it, then the large
	// records (dead-lettered: they are no events).
	order := &kgo.Record{Topic: cfg.OrdersTopic, Key: []byte("c-2"), Value: []byte("{}"), Timestamp: t0}
	if err := w.Apply(ctx, engine.Batch{Topic: cfg.OrdersTopic, Records: []*kgo.Record{order}, HighWatermark: 1, FetchedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if records, bytes := w.Unapplied(cfg.ClickstreamTopic); records != 0 || bytes != 0 || w.Full(cfg.ClickstreamTopic) {
		t.Fatalf("after the merge applied them: unapplied = %d records, %d bytes; want none", records, bytes)
	}
}

// cartWorker is a worker of the shipped cart_abandonment pipeline (it
// waits 10s) whose task never idles out, driven step by step: apply hands
// it a batch and fails the test on an error, fired counts the timers it
// has fired.
func cartWorker(t *testing.T) (eng *engine.Engine, store *state.Store, clock *clockwork.FakeClock, apply func(engine.Batch), fired func() float64) {
	t.Helper()
	eng, w, store, clock := directWorker(t, engine.Config{Partitions: 1, MaxTaskIdle: time.Hour, MaxTaskIdleBehind: time.Hour}, cartAbandonment(t), discard{})
	apply = func(b engine.Batch) {
		t.Helper()
		if err := w.Apply(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	fired = func() float64 { return testutil.ToFloat64(eng.Metrics().TimersFired) }
	return eng, store, clock, apply, fired
}

// TestForgetInTheStepItsTimerIsDue: a forget applied in the step whose
// horizon makes the customer's cart timer due. The forget deletes the
// timer row in the batch, but the due scan reads the committed rows and
// finds it: loading the customer then would have committed an empty record
// for a customer just erased (the fault suite's scale_no_changelog scenario
// found one).
func TestForgetInTheStepItsTimerIsDue(t *testing.T) {
	eng, store, clock, apply, fired := cartWorker(t)
	cfg := eng.Config()
	apply(engine.Batch{Topic: cfg.OrdersTopic, HighWatermark: 0, ObservedAt: t0})
	// c-2's cart keeps a timer pending past this test's clock (t0+13s).
	cart := &kgo.Record{Topic: cfg.ClickstreamTopic, Key: []byte("c-1"), Value: cartAdd("e-1", "c-1", 0, "sku-1", 10), Timestamp: t0}
	other := &kgo.Record{Topic: cfg.ClickstreamTopic, Key: []byte("c-2"), Offset: 1, Value: cartAdd("e-9", "c-2", 3*time.Second, "sku-2", 10), Timestamp: t0.Add(3 * time.Second)}
	apply(engine.Batch{Topic: cfg.ClickstreamTopic, Records: []*kgo.Record{cart, other}, HighWatermark: 2, FetchedAt: t0})
	// At t0+12s the orders topic is read to its end, but the clickstream
	// holds a record not fetched yet: the cart's timer (t0+10s) waits.
	clock.Advance(12 * time.Second)
	apply(engine.Batch{Topic: cfg.ClickstreamTopic, HighWatermark: 3, ObservedAt: t0.Add(11 * time.Second)})
	apply(engine.Batch{Topic: cfg.OrdersTopic, HighWatermark: 0, ObservedAt: clock.Now()})
	if n := fired(); n != 0 {
		t.Fatalf("%v timers fired with a clickstream record unread, want 0", n)
	}
	// It is c-1's forget, from t0+5s: one step applies it and, the
	// clickstream now read to its end, finds the cart's timer due.
	forget := &kgo.Record{Topic: cfg.ClickstreamTopic, Key: []byte("c-1"), Offset: 2, Timestamp: t0.Add(5 * time.Second),
		Value: ev("e-2", "forget", "c-1", 5*time.Second, "")}
	apply(engine.Batch{Topic: cfg.ClickstreamTopic, Records: []*kgo.Record{forget}, HighWatermark: 3, ObservedAt: clock.Now(), FetchedAt: clock.Now()})
	var c state.Customer
	found, err := store.Customer(0, "c-1", &c)
	if err != nil {
		t.Fatal(err)
	}
	if found {
		t.Errorf("c-1 forgotten, yet a record is stored: %+v", c)
	}
	if n := fired(); n != 0 {
		t.Errorf("%v timers fired for a forgotten customer, want 0", n)
	}
}

// TestTimerWaitsForAnOldOrderAppendedLate: a topic that is behind holds
// timers back to the event time its applied records reached, even when the
// worker has applied it up to a probe taken after the deadline. A record
// appended after that probe may be older than it (a producer that was down,
// a replay of history): here c-1's own order, stamped before the cart's
// deadline, arrives after another customer's order. Holding the topic only
// to the probe fired the cart's coupon first (the restart bench's load of
// hour-old events got 323 such coupons).
func TestTimerWaitsForAnOldOrderAppendedLate(t *testing.T) {
	eng, _, clock, apply, fired := cartWorker(t)
	cfg := eng.Config()
	// A cart waits from t0 (deadline t0+10s); the clickstream is caught up.
	apply(engine.Batch{Topic: cfg.OrdersTopic, HighWatermark: 0, ObservedAt: t0})
	cart := &kgo.Record{Topic: cfg.ClickstreamTopic, Key: []byte("c-1"), Value: cartAdd("e-1", "c-1", 0, "sku-1", 10), Timestamp: t0}
	apply(engine.Batch{Topic: cfg.ClickstreamTopic, Records: []*kgo.Record{cart}, HighWatermark: 1, FetchedAt: t0})
	clock.Advance(12 * time.Second)
	apply(engine.Batch{Topic: cfg.ClickstreamTopic, HighWatermark: 1, ObservedAt: clock.Now()})
	// At t0+11s the orders topic held one record, unfetched: the timer
	// must wait for it (it may be c-1's order).
	apply(engine.Batch{Topic: cfg.OrdersTopic, HighWatermark: 1, ObservedAt: t0.Add(11 * time.Second)})
	if n := fired(); n != 0 {
		t.Fatalf("%v timers fired while an order appended before the deadline was unread, want 0", n)
	}
	// It is another customer's order from t0+1s, fetched with the news
	// that a second record was appended by t0+12s. The topic is applied up
	// to the t0+11s probe, yet its records reached only t0+1s: the second
	// record may be older than the deadline, and the timer waits.
	order := &kgo.Record{Topic: cfg.OrdersTopic, Key: []byte("c-2"), Offset: 0, Timestamp: t0.Add(time.Second),
		Value: ev("e-2", "order", "c-2", time.Second, `"order_id":"o-1","total":10,"items":[{"sku":"sku-9","price":10,"quantity":1}]`)}
	apply(engine.Batch{Topic: cfg.OrdersTopic, Records: []*kgo.Record{order}, HighWatermark: 2, ObservedAt: clock.Now(), FetchedAt: clock.Now()})
	if n := fired(); n != 0 {
		t.Fatalf("%v timers fired with an order of unknown age unread, want 0", n)
	}
	// It is c-1's order, stamped t0+5s: the cart is settled, and with the
	// topics caught up no coupon fires.
	late := &kgo.Record{Topic: cfg.OrdersTopic, Key: []byte("c-1"), Offset: 1, Timestamp: t0.Add(5 * time.Second),
		Value: ev("e-3", "order", "c-1", 5*time.Second, `"order_id":"o-2","total":10,"items":[{"sku":"sku-1","price":10,"quantity":1}]`)}
	apply(engine.Batch{Topic: cfg.OrdersTopic, Records: []*kgo.Record{late}, HighWatermark: 2, ObservedAt: clock.Now(), FetchedAt: clock.Now()})
	clock.Advance(time.Second)
	apply(engine.Batch{Topic: cfg.ClickstreamTopic, HighWatermark: 1, ObservedAt: clock.Now()})
	apply(engine.Batch{Topic: cfg.OrdersTopic, HighWatermark: 2, ObservedAt: clock.Now()})
	if n := fired(); n != 0 {
		t.Errorf("%v timers fired for a cart its order settled, want 0", n)
	}
	if n := testutil.ToFloat64(eng.Metrics().TimersPending); n != 0 {
		t.Errorf("%v timers still pending, want 0: the order cancels the cart's", n)
	}
}

// TestStepLinger: with Config.StepLinger, a worker given a small batch
// waits on the engine's clock for more before it steps, and a batch of 200
// records or more steps at once.
func TestStepLinger(t *testing.T) {
	eng, w, _, clock := directWorker(t, engine.Config{Partitions: 1, MaxTaskIdle: time.Hour, MaxTaskIdleBehind: time.Hour,
		MaxWaitIdle: time.Hour, StepLinger: 5 * time.Millisecond}, cartAbandonment(t), discard{})
	cfg := eng.Config()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	applied := func() float64 {
		return testutil.ToFloat64(eng.Metrics().EventsConsumed.WithLabelValues(cfg.ClickstreamTopic, "cart_add"))
	}
	cart := func(i int) *kgo.Record {
		id := "c-" + strconv.Itoa(i)
		return &kgo.Record{Topic: cfg.ClickstreamTopic, Key: []byte(id), Value: cartAdd("e-"+strconv.Itoa(i), id, 0, "sku-1", 10),
			Offset: int64(i), Timestamp: t0}
	}
	// The orders topic is caught up as of t0 (a batch without records
	// steps at once), so clickstream records need not wait for it.
	if err := w.Apply(ctx, engine.Batch{Topic: cfg.OrdersTopic, HighWatermark: 0, ObservedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if !w.TrySubmit(engine.Batch{Topic: cfg.ClickstreamTopic, Records: []*kgo.Record{cart(0)}, HighWatermark: 1, FetchedAt: t0}) {
		t.Fatal("an empty worker refused a batch")
	}
	// Two waiters on the clock: the worker's idle timer and the linger.
	if err := clock.BlockUntilContext(ctx, 2); err != nil {
		t.Fatalf("the worker does not wait on the clock with a batch of one record: %v", err)
	}
	if n := applied(); n != 0 {
		t.Fatalf("%v events applied during the linger, want 0", n)
	}
	clock.Advance(5 * time.Millisecond)
	if err := w.Apply(ctx, engine.Batch{HighWatermark: -1}); err != nil {
		t.Fatal(err)
	}
	if n := applied(); n != 1 {
		t.Fatalf("%v events applied after the linger, want 1", n)
	}
	// 200 records: applied with the clock standing still.
	var big []*kgo.Record
	for i := 1; i <= 200; i++ {
		big = append(big, cart(i))
	}
	if err := w.Apply(ctx, engine.Batch{Topic: cfg.ClickstreamTopic, Records: big, HighWatermark: 201, FetchedAt: t0}); err != nil {
		t.Fatalf("a batch of 200 records: %v", err)
	}
	if n := applied(); n != 201 {
		t.Fatalf("%v events applied, want 201", n)
	}
}
