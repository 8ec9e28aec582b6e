package engine_test

import (
	"cmp"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spur-crm/spur/pkg/loadgen"
)

// TestLoadgenMatchesOracle runs generated storefront traffic through the
// real engine and checks that it emits exactly the coupons the loadgen oracle
// expects, and dead-letters exactly the malformed records.
//
// Orders go to their own topic, so a customer's order and the cart_add it
// follows are on different topics of the same task, and the traffic is
// published in large batches while the engine runs: the engine sees a
// backlog on both topics and must apply them merged in event-time order
// (the record timestamp, which the test sets to the event's ts as a
// storefront publishing in real time does). An order applied after a later
// cart_add would cancel the wait that cart_add started; a later event
// applied before an order would fire a coupon the order cancels.
//
// The fake clock stays at t0 while the input is applied (every event is
// after t0, so no timer is due by the clock and every early firing comes
// from event time), then jumps past the last deadline.
func TestLoadgenMatchesOracle(t *testing.T) {
	const (
		records = 15000
		step    = 10 * time.Millisecond // one record per 10ms of event time: 150s, within the decoder's 5min future skew
		batch   = 2500
	)
	h := newHarness(t)
	h.start()

	g, err := loadgen.New(loadgen.Config{Seed: 20261123, Customers: 400, MalformedShare: 0.02})
	if err != nil {
		t.Fatal(err)
	}
	var last time.Time
	perTopic := map[string]int{}
	start := time.Now()
	for i := 0; i < records; i += batch {
		recs := make([]*kgo.Record, 0, batch)
		for j := i; j < min(i+batch, records); j++ {
			r := g.Next(t0.Add(time.Duration(j) * step))
			last = r.TS
			perTopic[r.Topic]++
			recs = append(recs, &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Timestamp: r.TS})
		}
		if err := h.client.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	if perTopic[orders] == 0 || perTopic[clickstream] == 0 {
		t.Fatalf("traffic on %v: want both input topics", perTopic)
	}
	h.waitFor("all input applied", func() bool { return h.consumed() == records })
	applied := time.Since(start)

	// Past every deadline: the last event's wait, and a margin.
	end := last.Add(g.Config().Wait + time.Minute)
	want := g.Oracle().Expected(end)
	h.clock.Advance(end.Sub(h.clock.Now()))
	h.waitFor("every timer fired and acknowledged", func() bool { return h.timersPending() == 0 && h.settled() })

	var got []loadgen.Expected
	for customer, trs := range h.triggersByCustomer() {
		for _, tr := range trs {
			if len(tr.CauseEventIDs) != 1 {
				t.Errorf("%s: causes %v, want one", customer, tr.CauseEventIDs)
				continue
			}
			got = append(got, loadgen.Expected{Rule: tr.Rule, CustomerID: tr.CustomerID, QualifiedAt: tr.QualifiedAt.UTC(), CauseEventID: tr.CauseEventIDs[0]})
		}
	}
	slices.SortFunc(got, func(a, b loadgen.Expected) int {
		return cmp.Or(cmp.Compare(a.CustomerID, b.CustomerID), a.QualifiedAt.Compare(b.QualifiedAt), cmp.Compare(a.CauseEventID, b.CauseEventID))
	})
	dead := len(h.readAll(dlq))
	t.Logf("%d records (%v), applied in %v; coupons: oracle %d, engine %d; dead letters: oracle %d, engine %d; task idle expired %v",
		records, perTopic, applied.Round(time.Millisecond), len(want), len(got), g.Oracle().DeadLetters(), dead,
		testutil.ToFloat64(h.metrics.TaskIdleExpired))
	if len(want) == 0 {
		t.Fatal("the oracle expects no coupon: the traffic tests nothing")
	}
	if !slices.Equal(got, want) {
		inWant := map[loadgen.Expected]bool{}
		for _, w := range want {
			inWant[w] = true
		}
		inGot := map[loadgen.Expected]bool{}
		for _, x := range got {
			inGot[x] = true
			if !inWant[x] {
				t.Errorf("engine only: %+v", x)
			}
		}
		for _, w := range want {
			if !inGot[w] {
				t.Errorf("oracle only: %+v", w)
			}
		}
	}
	if dead != g.Oracle().DeadLetters() {
		t.Errorf("dead letters: %d, want %d", dead, g.Oracle().DeadLetters())
	}
	h.stop()
}
