package engine_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spur-crm/spur/pkg/emit"
	"github.com/spur-crm/spur/pkg/event"
	"github.com/spur-crm/spur/pkg/state"
)

// TestCartAbandonmentEndToEnd publishes storefront sessions through the
// embedded broker and checks the coupons on spur.triggers: one for each
// abandoned cart, none for customers who ordered or emptied their cart, a
// wait reset by a second cart_add, and dead letters for bad input.
func TestCartAbandonmentEndToEnd(t *testing.T) {
	h := newHarness(t)
	h.start()

	s := time.Second
	// c-1 abandons.
	h.publish(clickstream, "c-1", cartAdd("e-1", "c-1", 0, "sku-1", 59.9))
	h.publish(clickstream, "c-1", ev("e-1b", "page_view", "c-1", 1*s, ""))
	// c-2 orders within the wait.
	h.publish(clickstream, "c-2", cartAdd("e-2", "c-2", 0, "sku-2", 20))
	h.publish(orders, "c-2", ev("e-3", "order", "c-2", 2*s, `"order_id":"o-1","total":20,"items":[{"sku":"sku-2","price":20,"quantity":1}]`))
	// c-3 adds again after 5s: the wait restarts and both items are in the coupon's cart.
	h.publish(clickstream, "c-3", cartAdd("e-4", "c-3", 0, "sku-3", 10))
	h.publish(clickstream, "c-3", cartAdd("e-5", "c-3", 5*s, "sku-4", 15.5))
	// c-4 empties the cart.
	h.publish(clickstream, "c-4", cartAdd("e-6", "c-4", 0, "sku-5", 10))
	h.publish(clickstream, "c-4", ev("e-7", "cart_remove", "c-4", 1*s, `"sku":"sku-5","quantity":1`))
	// An anonymous visitor cannot be addressed.
	h.publish(clickstream, "a-9", cartAdd("e-8", "a-9", 0, "sku-6", 10))
	// A producer retry of e-1 is applied once.
	h.publish(clickstream, "c-1", cartAdd("e-1", "c-1", 0, "sku-1", 59.9))
	// c-5's cart is from a replay three hours old: applied, but stale.
	h.publish(clickstream, "c-5", cartAdd("e-9", "c-5", -3*time.Hour, "sku-7", 10))
	// Bad input.
	bad := map[string][]byte{
		"malformed_json": []byte(`{"event_id":`),
		"unknown_type":   ev("e-b2", "teleport", "c-6", 0, ""),
		"missing_id":     []byte(`{"event_id":"e-b3","type":"page_view","ts":"2026-11-23T05:00:00Z"}`),
		"invalid_field":  ev("e-b4", "cart_add", "c-6", 0, `"sku":"s","price":"cheap","quantity":1`),
		"clock_skew":     ev("e-b5", "page_view", "c-6", 24*time.Hour, ""),
		"too_large":      []byte(`{"event_id":"e-b6","pad":"` + strings.Repeat("x", 2<<20) + `"}`),
	}
	for _, reason := range keys(bad) {
		h.publish(clickstream, "c-6", bad[reason])
	}
	// A librdkafka-style producer put c-7's record on another partition than
	// murmur2 chooses: applied, and counted.
	manual, err := kgo.NewClient(kgo.SeedBrokers(h.broker.Addr()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer manual.Close()
	wrong := (partitionOf("c-7") + 1) % partitions
	if err := manual.ProduceSync(context.Background(), &kgo.Record{Topic: clickstream, Partition: wrong, Key: []byte("c-7"), Value: ev("e-10", "page_view", "c-7", 0, "")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	const published = 12 + 6
	h.waitFor("all input applied and the stale timer fired", func() bool {
		return h.consumed() == published && testutil.ToFloat64(h.metrics.TimersFired) >= 1
	})

	// Nothing is due before the wait has passed.
	if got := testutil.ToFloat64(h.metrics.TimersFired); got != 1 {
		// Only c-5's stale timer (deadline three hours ago) fires at once.
		t.Errorf("timers fired before the wait: %v, want 1 (the stale one)", got)
	}
	if got := testutil.ToFloat64(h.metrics.TriggersStale.WithLabelValues("cart_abandonment")); got != 1 {
		t.Errorf("stale triggers: %v, want 1", got)
	}

	h.advance(10*s, 2, 1) // c-1 qualifies at t0+10s
	got := h.triggersByCustomer()
	if !slices.Equal(keys(got), []string{"c-1"}) {
		t.Fatalf("after 10s triggers for %v, want [c-1]", keys(got))
	}
	h.advance(5*s, 3, 2) // c-3 at t0+15s
	h.advance(time.Minute, 3, 2)
	got = h.triggersByCustomer()
	if !slices.Equal(keys(got), []string{"c-1", "c-3"}) {
		t.Fatalf("triggers for %v, want [c-1 c-3]", keys(got))
	}
	for _, c := range []string{"c-1", "c-3"} {
		if len(got[c]) != 1 {
			t.Errorf("%s got %d triggers, want 1", c, len(got[c]))
		}
	}
	c1, c3 := got["c-1"][0], got["c-3"][0]
	checkCoupon(t, c1, "c-1", t0.Add(10*s), []string{"e-1"}, 59.9, 1)
	checkCoupon(t, c3, "c-3", t0.Add(15*s), []string{"e-5"}, 25.5, 2)
	if c1.Payload.Coupon.Code == c3.Payload.Coupon.Code || c1.TriggerID == c3.TriggerID {
		t.Errorf("coupon codes and trigger ids must be unique per trigger")
	}

	// Dead letters: the source bytes unchanged, the reason and offset in headers.
	dl := h.readAll(dlq)
	if len(dl) != len(bad) {
		t.Fatalf("dead letters: %d, want %d", len(dl), len(bad))
	}
	for _, r := range dl {
		reason := emit.Header(r, emit.HeaderError)
		want, ok := bad[reason]
		if !ok {
			t.Errorf("dead letter with reason %q", reason)
			continue
		}
		if string(r.Value) != string(want) {
			t.Errorf("%s: dead letter value changed (%d bytes, want %d)", reason, len(r.Value), len(want))
		}
		if emit.Header(r, emit.HeaderTopic) != clickstream || emit.Header(r, emit.HeaderOffset) == "" || emit.Header(r, emit.HeaderPartition) == "" {
			t.Errorf("%s: source headers missing: %v", reason, r.Headers)
		}
		if got := testutil.ToFloat64(h.metrics.DeadLetters.WithLabelValues(reason)); got != 1 {
			t.Errorf("dead letter metric %s = %v, want 1", reason, got)
		}
	}
	if got := testutil.ToFloat64(h.metrics.KeyMismatch.WithLabelValues(clickstream)); got != 1 {
		t.Errorf("key/partition mismatches: %v, want 1", got)
	}
	if got := testutil.ToFloat64(h.metrics.Duplicates); got != 1 {
		t.Errorf("duplicate events: %v, want 1", got)
	}
	if got := testutil.ToFloat64(h.metrics.Triggers.WithLabelValues("cart_abandonment", emit.KindCoupon)); got != 2 {
		t.Errorf("trigger metric: %v, want 2", got)
	}
	// Inspect explains outcomes: c-5 qualified but was stale; c-1 got one.
	v, err := h.eng.Inspect("c-5")
	if err != nil {
		t.Fatal(err)
	}
	if !v.Found || len(v.Outcomes) != 1 || v.Outcomes[0].Result != "stale" || len(v.Cart) != 1 {
		t.Errorf("inspect c-5: %+v", v)
	}
	if v, _ := h.eng.Inspect("c-1"); len(v.Outcomes) != 1 || v.Outcomes[0].Result != "emitted" || v.Outcomes[0].TriggerID != c1.TriggerID {
		t.Errorf("inspect c-1 outcomes: %+v", v.Outcomes)
	}
	if v, _ := h.eng.Inspect("nobody"); v.Found {
		t.Errorf("inspect of an unknown customer found state")
	}
	h.stop()

	// State: c-2's order summary, c-1 applied its events once.
	st, err := state.Open(h.dir + "/state")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var c state.Customer
	if ok, err := st.Customer(partitionOf("c-2"), "c-2", &c); err != nil || !ok {
		t.Fatalf("c-2 not stored: %v", err)
	}
	if c.Orders != 1 || c.Spend != 20 || len(c.Cart) != 0 {
		t.Errorf("c-2 orders=%d spend=%v cart=%v", c.Orders, c.Spend, c.Cart)
	}
	if _, err := st.Customer(partitionOf("c-1"), "c-1", &c); err != nil {
		t.Fatal(err)
	}
	if c.Events != 2 {
		t.Errorf("c-1 applied %d events, want 2 (the retry of e-1 is skipped)", c.Events)
	}
	if len(c.Outcomes) != 1 || c.Outcomes[0].Result != "emitted" {
		t.Errorf("c-1 outcomes %+v", c.Outcomes)
	}
}

// TestRestartResumes stops the engine cleanly between two halves of a
// session and checks that the restarted engine resumes from its own offsets:
// the wait armed before the restart fires after it, and nothing is applied
// twice.
func TestRestartResumes(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.publish(clickstream, "c-1", cartAdd("e-1", "c-1", 0, "sku-1", 10))
	h.publish(clickstream, "c-2", cartAdd("e-2", "c-2", 0, "sku-2", 10))
	h.waitFor("first half applied", func() bool { return h.consumed() == 2 })
	h.stop()

	h.publish(orders, "c-2", ev("e-3", "order", "c-2", time.Second, `"order_id":"o-1","total":10,"items":[{"sku":"sku-2","price":10,"quantity":1}]`))
	h.start()
	h.waitFor("second half applied", func() bool { return h.consumed() == 1 })
	if got := testutil.ToFloat64(h.metrics.EventsConsumed.WithLabelValues(clickstream, "cart_add")); got != 0 {
		t.Errorf("cart_adds re-applied after restart: %v", got)
	}
	h.advance(11*time.Second, 1, 1)
	got := h.triggersByCustomer()
	if !slices.Equal(keys(got), []string{"c-1"}) || len(got["c-1"]) != 1 {
		t.Fatalf("triggers %v, want one for c-1", keys(got))
	}
	h.stop()
}

func checkCoupon(t *testing.T, tr emit.Trigger, customer string, qualified time.Time, causes []string, value float64, items int) {
	t.Helper()
	if tr.Kind != emit.KindCoupon || tr.Rule != "cart_abandonment" || tr.Variant != emit.VariantTreatment {
		t.Errorf("%s: kind=%s rule=%s variant=%s", customer, tr.Kind, tr.Rule, tr.Variant)
	}
	if !tr.QualifiedAt.Equal(qualified) {
		t.Errorf("%s: qualified_at %s, want %s", customer, tr.QualifiedAt, qualified)
	}
	if !slices.Equal(tr.CauseEventIDs, causes) {
		t.Errorf("%s: causes %v, want %v", customer, tr.CauseEventIDs, causes)
	}
	if tr.Payload.Cart == nil || tr.Payload.Cart.Value != value || len(tr.Payload.Cart.Items) != items {
		t.Errorf("%s: cart %+v, want value %v with %d items", customer, tr.Payload.Cart, value, items)
	}
	c := tr.Payload.Coupon
	if c == nil || c.PercentOff != 10 || !strings.HasPrefix(c.Code, "CART-") || !c.ExpiresAt.After(qualified) {
		t.Errorf("%s: coupon %+v", customer, c)
	}
	if want := emit.TriggerID("cart_abandonment", customer, causes[0]+"@"+qualified.Format(time.RFC3339Nano)); tr.TriggerID != want {
		t.Errorf("%s: trigger_id %s is not the deterministic %s", customer, tr.TriggerID, want)
	}
}

func partitionOf(key string) int32 {
	return int32(kgo.StickyKeyPartitioner(nil).ForTopic("").Partition(&kgo.Record{Key: []byte(key)}, partitions))
}

var _ = event.Types

// TestCartChangeBeforeOrderArrivingAfterIt: the two input topics are
// appended independently, so a cart_add stamped before the customer's order
// can reach spur after it. The order settled that cart: no wait is armed,
// the cart stays empty, and no coupon follows. A cart_add stamped in the
// order's own millisecond (c-2) is taken as before it too, as an order
// applied after such a cart_add takes it (the order wins the tie whichever
// topic is read first).
func TestCartChangeBeforeOrderArrivingAfterIt(t *testing.T) {
	h := newHarness(t)
	h.start()
	for _, c := range []string{"c-1", "c-2"} {
		h.publish(orders, c, ev("o-"+c, "order", c, 5*time.Second, `"order_id":"o-1","total":10,"items":[{"sku":"sku-1","price":10,"quantity":1}]`))
	}
	h.waitFor("orders applied", func() bool { return h.consumed() == 2 })
	h.publish(clickstream, "c-1", cartAdd("e-1", "c-1", 2*time.Second, "sku-1", 10))
	h.publish(clickstream, "c-2", cartAdd("e-2", "c-2", 5*time.Second, "sku-1", 10))
	h.waitFor("cart_adds applied", func() bool { return h.consumed() == 4 })
	h.waitStateCommitted(2, "c-1", "c-2")
	if got := testutil.ToFloat64(h.metrics.Superseded); got != 2 {
		t.Errorf("superseded cart events: %v, want 2", got)
	}
	for _, c := range []string{"c-1", "c-2"} {
		v, err := h.eng.Inspect(c)
		if err != nil {
			t.Fatal(err)
		}
		if len(v.Cart) != 0 || len(v.Pending) != 0 || v.Events != 2 {
			t.Errorf("%s cart %v pending %v events %d: want an empty cart, nothing armed, both events counted", c, v.Cart, v.Pending, v.Events)
		}
	}
	h.advance(time.Minute, 0, 0)
	if got := h.triggersByCustomer(); len(got) != 0 {
		t.Errorf("triggers for %v, want none", keys(got))
	}
	h.stop()
}

// TestOrderArrivingAfterALaterCart: an order stamped before a cart_add but
// applied after it (it arrived late on the other topic) settles only its
// own lines and does not cancel the wait the later cart_add began.
func TestOrderArrivingAfterALaterCart(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.publish(clickstream, "c-1", cartAdd("e-1", "c-1", 0, "sku-1", 10))
	h.publish(clickstream, "c-1", cartAdd("e-2", "c-1", 3*time.Second, "sku-2", 20))
	h.waitFor("cart_adds applied", func() bool { return h.consumed() == 2 })
	h.publish(orders, "c-1", ev("e-3", "order", "c-1", time.Second, `"order_id":"o-1","total":10,"items":[{"sku":"sku-1","price":10,"quantity":1}]`))
	h.waitFor("order applied", func() bool { return h.consumed() == 3 })
	h.advance(time.Minute, 1, 1)
	got := h.triggersByCustomer()["c-1"]
	if len(got) != 1 {
		t.Fatalf("c-1 got %d triggers, want 1", len(got))
	}
	checkCoupon(t, got[0], "c-1", t0.Add(13*time.Second), []string{"e-2"}, 20, 1)
	h.stop()
}

// TestFeedbackSentimentInProfile: feedback text is scored (English and
// Chinese) into the customer's profile.
func TestFeedbackSentimentInProfile(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.publish(clickstream, "c-1", ev("e-1", "feedback", "c-1", 0, `"rating":1,"text":"Terrible quality, I want a refund"`))
	h.publish(clickstream, "c-2", ev("e-2", "feedback", "c-2", 0, `"rating":5,"text":"质量很好，物流很快"`))
	h.waitFor("feedback applied", func() bool { return h.consumed() == 2 })
	h.waitStateCommitted(1, "c-1", "c-2")
	for id, positive := range map[string]bool{"c-1": false, "c-2": true} {
		v, err := h.eng.Inspect(id)
		if err != nil {
			t.Fatal(err)
		}
		if (v.LastSentiment > 0.3) != positive || (v.LastSentiment < -0.3) == positive {
			t.Errorf("%s: sentiment %v, want clearly %s", id, v.LastSentiment, map[bool]string{true: "positive", false: "negative"}[positive])
		}
	}
	h.stop()
}
