package ingest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"

	"github.com/spur-crm/spur/pkg/engine"
	"github.com/spur-crm/spur/pkg/pipeline"
)

// TestFetchesReportQuietTopicEnds: with no end probes (an hour apart), the
// fetches of clickstream records tell the quiet orders topic's end as well.
// So each record is applied at once, not held until the orders topic is
// seen after it was fetched; and a cart's timer, due by the clock, fires
// once they flow. Until then it is held, as an order stamped before its
// deadline may still be unread.
func TestFetchesReportQuietTopicEnds(t *testing.T) {
	const clickstream, orders = "shop.clickstream", "shop.orders"
	clock := clockwork.NewFakeClockAt(time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC))
	t0 := clock.Now()
	log := zaptest.NewLogger(t)
	// cart_abandonment waits 10s; nothing else arms a timer.
	b, eng := testEngine(t, engine.Config{Partitions: 1, MaxWaitIdle: time.Hour}, func(p *pipeline.Pipeline) bool { return p.Name == "cart_abandonment" }, clock, log)
	c, err := New(Config{
		Brokers: []string{b.Addr()}, Group: "spur-ends", Partitions: 1,
		CommitInterval: 50 * time.Millisecond, ProbeInterval: time.Hour,
	}, eng, WithLogger(log), WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	pcl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pcl.Close)
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// applied: the worker applied the first n clickstream records.
	applied := func(n int64) func() bool {
		return func() bool {
			w := c.worker(0)
			return w != nil && w.Applied()[clickstream] >= n
		}
	}
	var sent int64
	publish := func(typ string, extra string) {
		t.Helper()
		v := fmt.Sprintf(`{"event_id":"e-%d","type":%q,"ts":%q,"customer_id":"c-1"%s}`, sent, typ, clock.Now().Format(time.RFC3339Nano), extra)
		if err := pcl.ProduceSync(ctx, &kgo.Record{Topic: clickstream, Key: []byte("c-1"), Value: []byte(v), Timestamp: clock.Now()}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		sent++
		waitFor(fmt.Sprintf("clickstream record %d to be applied", sent), applied(sent))
	}
	fired := func() float64 { return testutil.ToFloat64(eng.Metrics().TimersFired) }

	waitFor("the task's worker", func() bool { return len(c.Assigned()) == 1 })
	publish("cart_add", `,"sku":"sku-1","category":"shoes","price":20,"quantity":1`)
	waitFor("the cart's timer", func() bool { return testutil.ToFloat64(eng.Metrics().TimersPending.WithLabelValues("0")) == 1 })

	// Past the deadline by the clock; the orders topic was last seen when
	// the task was assigned, at t0.
	clock.Advance(time.Minute)
	if n := fired(); n != 0 {
		t.Fatalf("%v timers fired with the orders topic last seen at %s, before their deadline; want 0", n, t0)
	}
	// Page views, one fetch each, fetched after the orders topic was
	// last seen (t0), applied all the same. The second fetch after the
	// clock moved was requested after it, and tells the orders topic's
	// end as of then.
	for range 3 {
		publish("page_view", `,"channel":"web"`)
	}
	waitFor("the cart's timer to fire", func() bool { return fired() == 1 })
}
