//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spur-crm/spur/pkg/emit"
	"github.com/spur-crm/spur/pkg/event"
	"github.com/spur-crm/spur/pkg/publish"
)

// scenarioWait is the pipeline wait of the scenario tests.
const scenarioWait = 2 * time.Second

// wantCoupon is a coupon a scenario must produce.
type wantCoupon struct {
	customer  string
	cause     string // the event id of the qualifying cart_add
	qualified time.Time
	cart      []emit.CartItem // sku and quantity of each line, in cart order
	value     float64
	// offer is the exact offer, where the test knows the customer's
	// profile; nil checks only that the offer is one the pipeline can
	// make for the cart (see checkOffer).
	offer *offer
}

// offer is what a cart_abandonment coupon gives: a percentage off, or free
// shipping (and then no percentage).
type offer struct {
	percentOff   int
	freeShipping bool
}

func (o offer) String() string {
	switch {
	case o.freeShipping && o.percentOff == 0:
		return "free shipping"
	case o.freeShipping:
		return fmt.Sprintf("free shipping and %d%% off", o.percentOff)
	}
	return fmt.Sprintf("%d%% off", o.percentOff)
}

// freeShippingFrom is the cart value from which the shipped
// cart_abandonment pipeline offers free shipping instead of a percentage.
const freeShippingFrom = 150

// freshOffer is the offer the shipped cart_abandonment pipeline makes a
// customer with no orders who has viewed fewer than 3 products (price
// sensitivity 0): free shipping for a cart worth freeShippingFrom or more,
// 10% off a smaller one.
func freshOffer(cartValue float64) *offer {
	if cartValue >= freeShippingFrom {
		return &offer{freeShipping: true}
	}
	return &offer{percentOff: 10}
}

// scenarios builds the hand-written sessions: each scenario for a few
// customers (spread over partitions), all events stamped around now. It
// returns the events in publish order, the coupons they must produce, and
// the customers who must get none. Every customer is new, orders nothing
// before the coupon and views at most two products, so each coupon's offer
// follows from the cart alone (freshOffer).
func scenarios(now time.Time) (evs []event.Event, want []wantCoupon, none []string) {
	at := func(ev event.Event, d time.Duration) event.Event { ev.TS = ms(now.Add(d)); return ev }
	item := func(sku string, qty int32) emit.CartItem { return emit.CartItem{SKU: sku, Quantity: qty} }
	for i := range 3 {
		c := func(name string) string { return fmt.Sprintf("c-%s-%d", name, i) }
		a := func(name string) string { return fmt.Sprintf("a-%s-%d", name, i) }

		// Abandoned cart: browse, add two units, leave.
		add := at(publish.CartAdd(c("abandon"), "sku-shoe", "shoes", 59.9, 2), 0)
		evs = append(evs,
			at(publish.PageView(c("abandon"), ""), -400*time.Millisecond),
			at(publish.ProductView(c("abandon"), "", "sku-shoe", "shoes", 59.9, 3*time.Second), -300*time.Millisecond),
			at(publish.Search(c("abandon"), "", "running shoes"), -200*time.Millisecond),
			add)
		want = append(want, wantCoupon{c("abandon"), add.EventID, add.TS.Add(scenarioWait), []emit.CartItem{item("sku-shoe", 2)}, 119.8, freshOffer(119.8)})

		// checkout_start does not cancel the wait.
		add = at(publish.CartAdd(c("checkout"), "sku-bag", "bags", 20, 1), -100*time.Millisecond)
		evs = append(evs, add, at(publish.CheckoutStart(c("checkout")), 0))
		want = append(want, wantCoupon{c("checkout"), add.EventID, add.TS.Add(scenarioWait), []emit.CartItem{item("sku-bag", 1)}, 20, freshOffer(20)})

		// An order (on the orders topic) cancels.
		evs = append(evs,
			at(publish.CartAdd(c("ordered"), "sku-hat", "hats", 15, 1), -200*time.Millisecond),
			at(publish.CheckoutStart(c("ordered")), -100*time.Millisecond),
			at(publish.Order(c("ordered"), "o-"+c("ordered"), []event.Item{{SKU: "sku-hat", Category: "hats", Price: 15, Quantity: 1}}), 0))
		none = append(none, c("ordered"))

		// A second cart_add within the wait restarts it: one coupon, from
		// the second cart_add, with both items.
		first := at(publish.CartAdd(c("reset"), "sku-shoe", "shoes", 59.9, 1), -time.Second)
		second := at(publish.CartAdd(c("reset"), "sku-sock", "socks", 4.5, 3), 0)
		evs = append(evs, first, at(publish.ProductView(c("reset"), "", "sku-sock", "socks", 4.5, 0), -500*time.Millisecond), second)
		want = append(want, wantCoupon{c("reset"), second.EventID, second.TS.Add(scenarioWait),
			[]emit.CartItem{item("sku-shoe", 1), item("sku-sock", 3)}, 73.4, freshOffer(73.4)})

		// Emptying the cart cancels.
		evs = append(evs,
			at(publish.CartAdd(c("emptied"), "sku-hat", "hats", 15, 1), -100*time.Millisecond),
			at(publish.CartRemove(c("emptied"), "sku-hat", 0), 0))
		none = append(none, c("emptied"))

		// Removing one of two lines keeps the wait of the last cart_add.
		last := at(publish.CartAdd(c("partial"), "sku-bag", "bags", 20, 1), -100*time.Millisecond)
		evs = append(evs,
			at(publish.CartAdd(c("partial"), "sku-hat", "hats", 15, 1), -200*time.Millisecond),
			last,
			at(publish.CartRemove(c("partial"), "sku-hat", 0), 0))
		want = append(want, wantCoupon{c("partial"), last.EventID, last.TS.Add(scenarioWait), []emit.CartItem{item("sku-bag", 1)}, 20, freshOffer(20)})

		// An anonymous visitor's cart arms nothing.
		anonAdd := at(publish.CartAdd("", "sku-hat", "hats", 15, 1), 0)
		anonAdd.AnonymousID = a("anon")
		evs = append(evs, at(publish.PageView("", a("anon")), -100*time.Millisecond), anonAdd)
		none = append(none, a("anon"))

		// A visitor logs in, then abandons: the coupon goes to the customer.
		add = at(publish.CartAdd(c("login"), "sku-shoe", "shoes", 59.9, 1), 0)
		evs = append(evs,
			at(publish.PageView("", a("login")), -300*time.Millisecond),
			at(publish.Identify(c("login"), a("login")), -200*time.Millisecond),
			add)
		want = append(want, wantCoupon{c("login"), add.EventID, add.TS.Add(scenarioWait), []emit.CartItem{item("sku-shoe", 1)}, 59.9, freshOffer(59.9)})
		none = append(none, a("login"))

		// A producer retry: the same cart_add (same event_id) twice is
		// applied once.
		add = at(publish.CartAdd(c("retry"), "sku-bag", "bags", 20, 1), 0)
		evs = append(evs, add, add)
		want = append(want, wantCoupon{c("retry"), add.EventID, add.TS.Add(scenarioWait), []emit.CartItem{item("sku-bag", 1)}, 20, freshOffer(20)})

		// forget erases the customer, cart and wait included.
		evs = append(evs,
			at(publish.CartAdd(c("forget"), "sku-hat", "hats", 15, 1), -100*time.Millisecond),
			at(publish.Forget(c("forget")), 0))
		none = append(none, c("forget"))

		// Browsing and feedback only.
		evs = append(evs,
			at(publish.ProductView(c("browse"), "", "sku-hat", "hats", 15, time.Second), -200*time.Millisecond),
			at(publish.Feedback(c("browse"), 4, "快递很快, nice hat"), 0))
		none = append(none, c("browse"))
	}
	return evs, want, none
}

// badRecord is a record spur must dead-letter, with the reason it must give.
type badRecord struct {
	rec    *kgo.Record
	reason string
}

// malformed returns records spur cannot use, one or more of every reason.
// maxBytes is spur's --max-event-bytes.
func malformed(topics spurTopics, now time.Time, maxBytes int) []badRecord {
	ts := ms(now).Format(time.RFC3339Nano)
	rec := func(topic, key, value string, hs ...kgo.RecordHeader) *kgo.Record {
		return &kgo.Record{Topic: topic, Key: []byte(key), Value: []byte(value), Headers: hs}
	}
	return []badRecord{
		{rec(topics.Clicks, "c-bad-1", `{"event_id":"bad-1","type":"cart_add","ts":"`+ts+`","custo`), "malformed_json"},
		{rec(topics.Clicks, "c-bad-2", "GET /cart HTTP/1.1", kgo.RecordHeader{Key: "x-origin", Value: []byte("pos-7")}), "malformed_json"},
		{rec(topics.Orders, "c-bad-3", `[{"type":"order"}]`), "malformed_json"},
		{rec(topics.Clicks, "c-bad-4", `{"event_id":"bad-4","type":"cart_explode","ts":"`+ts+`","customer_id":"c-bad-4"}`), "unknown_type"},
		{rec(topics.Clicks, "", `{"event_id":"bad-5","type":"page_view","ts":"`+ts+`"}`), "missing_id"},
		{rec(topics.Clicks, "c-bad-6", `{"event_id":"bad-6","type":"cart_add","ts":"`+ts+`","customer_id":"c-bad-6","sku":"sku-1","price":"cheap","quantity":1}`), "invalid_field"},
		{rec(topics.Clicks, "c-bad-7", `{"event_id":"bad-7","type":"cart_add","ts":"`+ms(now.Add(time.Hour)).Format(time.RFC3339Nano)+`","customer_id":"c-bad-7","sku":"sku-1","price":1,"quantity":1}`), "clock_skew"},
		{&kgo.Record{Topic: topics.Clicks, Key: []byte("c-bad-8")}, "empty"},
		{rec(topics.Clicks, "c-bad-9", `{"event_id":"bad-9","type":"feedback","ts":"`+ts+`","customer_id":"c-bad-9","rating":1,"text":"`+strings.Repeat("x", maxBytes)+`"}`), "too_large"},
	}
}

// TestRunScenarios drives one `spur run` process on Apache Kafka with
// hand-written sessions published by a storefront (pkg/publish) and garbage
// produced with franz-go, and checks spur.triggers exactly: coupons for
// abandoned carts with their cart and cause, none for customers who ordered,
// emptied their cart, were anonymous or asked to be forgotten, a wait reset
// by a second cart_add, a producer retry applied once; and the dead-letter
// topic: every malformed record, byte for byte, with its reason and source.
func TestRunScenarios(t *testing.T) {
	bs := brokers(t)
	adm := admin(t)
	const parts, maxBytes = 6, 4096
	topics := newTopics(t, adm, 0) // spur creates them (--create-topics)
	group := uniqueName(t, "e2e")
	spur := startRun(t, runConfig{Name: "spur", Group: group, Topics: topics, Partitions: parts,
		Pipelines: pipelinesDir(t, scenarioWait), Extra: []string{"--max-event-bytes", strconv.Itoa(maxBytes)}})
	spur.waitReady()
	triggers, dlq := tailTopic(t, bs, topics.Triggers), tailTopic(t, bs, topics.DLQ)

	now := time.Now()
	evs, want, none := scenarios(now)
	bad := malformed(topics, now, maxBytes)

	pub, err := publish.New(bs, publish.WithClickstreamTopic(topics.Clicks), publish.WithOrdersTopic(topics.Orders))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	publishOrdersAfterCarts(t, pub, evs)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	// Garbage, with franz-go: pkg/publish refuses to send it.
	cl := franzClient(t, kgo.ProducerLinger(0))
	for _, b := range bad {
		r, err := cl.ProduceSync(ctx, b.rec).First()
		if err != nil {
			t.Fatalf("produce %s record: %v", b.reason, err)
		}
		b.rec.Partition, b.rec.Offset = r.Partition, r.Offset
	}
	published := time.Since(now)

	wantCustomers := map[string]bool{}
	for _, w := range want {
		wantCustomers[w.customer] = true
	}
	waitUntil(t, "every expected coupon, all input applied, nothing pending", func() (string, error) {
		if err := spur.checkAlive(); err != nil {
			return "", err
		}
		if s := missingCustomers(quickTriggers(triggers.records()), wantCustomers); s != "" {
			return s, nil
		}
		if n := len(dlq.records()); n < len(bad) {
			return fmt.Sprintf("%d of %d dead letters", n, len(bad)), nil
		}
		if n, total := spur.consumed(), len(evs)+len(bad); n != float64(total) {
			return fmt.Sprintf("%v of %d input records applied", n, total), nil
		}
		return spur.busy(), nil
	})
	t.Logf("published %d events and %d malformed records in %s; all coupons after %s",
		len(evs), len(bad), published.Round(time.Millisecond), time.Since(now).Round(time.Millisecond))

	// Triggers: exactly the expected coupons, each once.
	trs := decodeTriggers(t, triggers.readToEnd(t, adm, topics.Triggers))
	checkCoupons(t, trs, want, none, false)

	// Dead letters: one per malformed record, byte for byte.
	checkDeadLetters(t, dlq.readToEnd(t, adm, topics.DLQ), bad)

	m := spur.mustScrape()
	reasons := map[string]int{}
	for _, b := range bad {
		reasons[b.reason]++
	}
	for _, r := range event.Reasons {
		if got := m.sum("spur_dead_letters_total", "reason", string(r)); got != float64(reasons[string(r)]) {
			t.Errorf("spur_dead_letters_total{reason=%q} = %v, want %d", r, got, reasons[string(r)])
		}
	}
	if got, wantN := m.sum("spur_events_consumed_total"), len(evs)+len(bad); got != float64(wantN) {
		t.Errorf("spur_events_consumed_total = %v, want %d (every record, once)", got, wantN)
	}
	if got := m.sum("spur_events_consumed_total", "topic", topics.Orders, "type", "order"); got != 3 {
		t.Errorf(`spur_events_consumed_total{topic=orders,type="order"} = %v, want 3`, got)
	}
	if got := m.sum("spur_duplicate_events_total"); got != 3 {
		t.Errorf("spur_duplicate_events_total = %v, want 3 (one retried cart_add per retry customer)", got)
	}
	if got := m.sum("spur_triggers_total", "rule", "cart_abandonment", "kind", "coupon"); got != float64(len(want)) {
		t.Errorf("spur_triggers_total = %v, want %d", got, len(want))
	}
	if got := m.sum("spur_key_partition_mismatch_total"); got != 0 {
		t.Errorf("spur_key_partition_mismatch_total = %v: pkg/publish and franz-go must partition like spur", got)
	}
	if got := m.owned(); len(got) != parts {
		t.Errorf("spur owns partitions %v, want all %d", got, parts)
	}
	stopAndCheckCommits(t, adm, spur, group, topics)
}

// stopAndCheckCommits stops a process cleanly (SIGTERM) and checks that it
// exited 0 and that its group has committed every input record: a clean
// shutdown drains the workers and commits what they applied.
func stopAndCheckCommits(t *testing.T, adm *kadm.Client, p *spurProc, group string, topics spurTopics) {
	t.Helper()
	if s := uncommitted(adm, group, topics.Clicks, topics.Orders); s != "" {
		// Not a failure: spur commits after a poll returns, so the last
		// records applied stay uncommitted while the input is idle.
		t.Logf("before shutdown, with the input idle: %s", s)
	}
	if err := p.stop(); err != nil {
		t.Errorf("%s: %v", p.name, err)
	}
	if s := uncommitted(adm, group, topics.Clicks, topics.Orders); s != "" {
		t.Errorf("after a clean shutdown: %s", s)
	}
}

// checkCoupons checks triggers against the expected coupons: each expected
// coupon exactly once by trigger_id (copies of one id are re-sends, allowed
// only when dupsAllowed, and must be identical), with its cause, qualifying
// time, offer and cart; no trigger for the customers in none, nor any other.
// It returns the number of duplicate records.
func checkCoupons(t *testing.T, trs []trigger, want []wantCoupon, none []string, dupsAllowed bool) int {
	t.Helper()
	ids := byID(trs)
	dups := 0
	for id, copies := range ids {
		for _, c := range copies[1:] {
			dups++
			if d := sameTrigger(copies[0], c); d != "" {
				t.Errorf("trigger %s: copies at %d@%d and %d@%d differ: %s", id, copies[0].Partition, copies[0].Offset, c.Partition, c.Offset, d)
			}
		}
		if len(copies) > 1 {
			if dupsAllowed {
				t.Logf("duplicate: trigger %s for %s sent %d times (same trigger_id; emitted_at %s … %s)",
					id, copies[0].CustomerID, len(copies), copies[0].EmittedAt.Format(time.StampMilli), copies[len(copies)-1].EmittedAt.Format(time.StampMilli))
			} else {
				t.Errorf("trigger %s for %s on the topic %d times", id, copies[0].CustomerID, len(copies))
			}
		}
	}
	perCustomer := map[string][]trigger{}
	for _, copies := range ids {
		perCustomer[copies[0].CustomerID] = append(perCustomer[copies[0].CustomerID], copies[0])
	}
	for _, w := range want {
		got := perCustomer[w.customer]
		delete(perCustomer, w.customer)
		if len(got) != 1 {
			t.Errorf("%s: %d distinct coupons, want 1: %+v", w.customer, len(got), got)
			continue
		}
		tr := got[0]
		if tr.Kind != emit.KindCoupon || tr.Rule != "cart_abandonment" || tr.Variant != emit.VariantTreatment || tr.SchemaVersion != emit.SchemaVersion {
			t.Errorf("%s: kind %q rule %q variant %q schema %d", w.customer, tr.Kind, tr.Rule, tr.Variant, tr.SchemaVersion)
		}
		if !slices.Equal(tr.CauseEventIDs, []string{w.cause}) {
			t.Errorf("%s: cause_event_ids %v, want [%s]", w.customer, tr.CauseEventIDs, w.cause)
		}
		if !tr.QualifiedAt.Equal(w.qualified) {
			t.Errorf("%s: qualified_at %s, want %s (last cart_add + wait)", w.customer, tr.QualifiedAt.Format(time.RFC3339Nano), w.qualified.Format(time.RFC3339Nano))
		}
		if tr.EmittedAt.Before(tr.QualifiedAt) {
			t.Errorf("%s: emitted_at %s before qualified_at %s", w.customer, tr.EmittedAt, tr.QualifiedAt)
		}
		checkOffer(t, tr, w.offer)
		if w.cart != nil {
			checkCart(t, w, tr)
		}
	}
	for _, c := range none {
		if got := perCustomer[c]; len(got) > 0 {
			t.Errorf("%s: %d coupons, want none: %+v", c, len(got), got)
		}
		delete(perCustomer, c)
	}
	for c, got := range perCustomer {
		t.Errorf("%s: unexpected coupons: %+v", c, got)
	}
	return dups
}

// checkOffer checks a cart_abandonment coupon against what the shipped
// pipeline can make: a CART- code expiring after the qualifying moment, and
// for a cart worth freeShippingFrom or more free shipping without a
// percentage, for a smaller one 5, 10 or 15 percent off (by the customer's
// orders and price sensitivity). With want, the offer must be exactly that.
func checkOffer(t *testing.T, tr trigger, want *offer) {
	t.Helper()
	cp, cart := tr.Payload.Coupon, tr.Payload.Cart
	if cp == nil || cart == nil {
		t.Errorf("%s: trigger %s: coupon %+v, cart %+v; want both", tr.CustomerID, tr.TriggerID, cp, cart)
		return
	}
	if !strings.HasPrefix(cp.Code, "CART-") || !cp.ExpiresAt.After(tr.QualifiedAt) {
		t.Errorf("%s: coupon %+v, want a CART- code expiring after qualification (%s)", tr.CustomerID, cp, tr.QualifiedAt.Format(time.RFC3339Nano))
	}
	got := offer{percentOff: cp.PercentOff, freeShipping: cp.FreeShipping}
	if cart.Value >= freeShippingFrom {
		if got != (offer{freeShipping: true}) {
			t.Errorf("%s: cart worth %v: coupon gives %s, want free shipping and no percentage", tr.CustomerID, cart.Value, got)
		}
	} else if got.freeShipping || !slices.Contains([]int{5, 10, 15}, got.percentOff) {
		t.Errorf("%s: cart worth %v: coupon gives %s, want 5, 10 or 15%% off without free shipping", tr.CustomerID, cart.Value, got)
	}
	if want != nil && got != *want {
		t.Errorf("%s: cart worth %v: coupon gives %s, want %s", tr.CustomerID, cart.Value, got, *want)
	}
}

func checkCart(t *testing.T, w wantCoupon, tr trigger) {
	t.Helper()
	cart := tr.Payload.Cart
	if cart == nil {
		t.Errorf("%s: coupon without a cart", w.customer)
		return
	}
	var got, want []string
	for _, it := range cart.Items {
		got = append(got, fmt.Sprintf("%s×%d", it.SKU, it.Quantity))
	}
	for _, it := range w.cart {
		want = append(want, fmt.Sprintf("%s×%d", it.SKU, it.Quantity))
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s: cart %v, want %v", w.customer, got, want)
	}
	if math.Abs(cart.Value-w.value) > 0.005 {
		t.Errorf("%s: cart value %v, want %v", w.customer, cart.Value, w.value)
	}
}

// checkDeadLetters checks that the dead-letter topic holds exactly one dead
// letter per bad record: same key and value byte for byte, the source's own
// headers, and spur's headers naming the reason and the source record.
func checkDeadLetters(t *testing.T, recs []*kgo.Record, bad []badRecord) {
	t.Helper()
	type src struct {
		topic     string
		partition int32
		offset    int64
	}
	want := map[src]badRecord{}
	for _, b := range bad {
		want[src{b.rec.Topic, b.rec.Partition, b.rec.Offset}] = b
	}
	seen := map[src]bool{}
	for _, r := range recs {
		h := map[string]string{}
		for _, kv := range r.Headers {
			h[kv.Key] = string(kv.Value)
		}
		p, _ := strconv.Atoi(h[emit.HeaderPartition])
		o, _ := strconv.ParseInt(h[emit.HeaderOffset], 10, 64)
		s := src{h[emit.HeaderTopic], int32(p), o}
		b, ok := want[s]
		if !ok {
			t.Errorf("dead letter %d@%d names source %+v, which is not a malformed record (headers %v)", r.Partition, r.Offset, s, h)
			continue
		}
		if seen[s] {
			t.Errorf("source %+v dead-lettered twice", s)
		}
		seen[s] = true
		if h[emit.HeaderError] != b.reason {
			t.Errorf("%s record %+v: spur-error %q, want %q (detail %q)", b.reason, s, h[emit.HeaderError], b.reason, h[emit.HeaderDetail])
		}
		if string(r.Key) != string(b.rec.Key) || string(r.Value) != string(b.rec.Value) {
			t.Errorf("%s record %+v: dead letter key/value differ from the source (%d vs %d value bytes)", b.reason, s, len(r.Value), len(b.rec.Value))
		}
		for _, sh := range b.rec.Headers {
			if h[sh.Key] != string(sh.Value) {
				t.Errorf("%s record %+v: source header %s=%q not kept (got %q)", b.reason, s, sh.Key, sh.Value, h[sh.Key])
			}
		}
	}
	for s, b := range want {
		if !seen[s] {
			t.Errorf("%s record %+v was not dead-lettered", b.reason, s)
		}
	}
}
