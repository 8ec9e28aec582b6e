//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spur-crm/spur/pkg/loadgen"
)

// TestRunRealisticSessions publishes a few seconds of seeded storefront
// traffic from pkg/loadgen — concurrent sessions that browse, search, log
// in, add to cart, order, empty carts or abandon them, leave feedback, and a
// share of garbage — to one `spur run` process in real time, and checks
// spur.triggers against the generator's oracle: exactly the expected coupons
// (customer, cause, qualifying moment), each once, and one dead letter per
// malformed record.
//
// The engine runs on the wall clock, so the stream is generated at the
// moment it is published (each record's ts is the time it is produced) and
// the generator keeps every customer's events a guard's distance away from
// their pending deadline: whether an order 1ms before the deadline beats the
// timer would otherwise depend on scheduling. The guard must exceed the
// publish-to-apply latency, which is milliseconds.
func TestRunRealisticSessions(t *testing.T) {
	bs := brokers(t)
	adm := admin(t)
	const (
		parts    = 6
		wait     = 3 * time.Second
		guard    = time.Second
		rate     = 500 // records per second
		duration = 5 * time.Second
		seed     = 20261123
	)
	topics := newTopics(t, adm, parts)
	group := uniqueName(t, "e2e")
	spur := startRun(t, runConfig{Name: "spur", Group: group, Topics: topics, Partitions: parts, Pipelines: pipelinesDir(t, wait)})
	spur.waitReady()
	triggers, dlq := tailTopic(t, bs, topics.Triggers), tailTopic(t, bs, topics.DLQ)

	gen, err := loadgen.New(loadgen.Config{
		Customers: 2000, MaxSessions: 100, Seed: seed, Wait: wait, DeadlineGuard: guard,
		MalformedShare: 0.02, ClickstreamTopic: topics.Clicks, OrdersTopic: topics.Orders,
	})
	if err != nil {
		t.Fatal(err)
	}
	cl := franzClient(t, kgo.ProducerLinger(0), kgo.RecordRetries(10))
	var (
		published  atomic.Int64
		mu         sync.Mutex
		produceErr error
		history    = map[string][]string{} // per key, what was published, for failure reports
	)
	// pctx bounds producing; ctx, the traffic's duration.
	pctx, pcancel := context.WithTimeout(context.Background(), duration+waitFor)
	defer pcancel()
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	start := time.Now()
	err = gen.Run(ctx, clockwork.NewRealClock(), rate, func(r loadgen.Record) error {
		// The record timestamp is the event time: spur applies the
		// buffered records of a task's two topics in timestamp order.
		rec := &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Timestamp: r.TS}
		if r.Topic == topics.Orders {
			// An order is appended after everything produced before it
			// and before anything produced after it: across two topics,
			// spur applies records in the order the broker appended
			// them (see publishOrdersAfterCarts).
			if err := cl.Flush(pctx); err != nil {
				return err
			}
			if err := cl.ProduceSync(pctx, rec).FirstErr(); err != nil {
				return err
			}
		} else {
			cl.Produce(context.Background(), rec, func(_ *kgo.Record, err error) {
				if err != nil {
					mu.Lock()
					produceErr = err
					mu.Unlock()
				}
			})
		}
		published.Add(1)
		var ev struct {
			ID   string `json:"event_id"`
			Type string `json:"type"`
		}
		if r.Malformed || json.Unmarshal(r.Value, &ev) != nil {
			ev.Type = "malformed"
		}
		history[string(r.Key)] = append(history[string(r.Key)], fmt.Sprintf("%s %s %s (%s)", r.TS.Format("15:04:05.000"), ev.Type, ev.ID, r.Topic))
		return nil
	})
	cancel()
	if err != context.DeadlineExceeded {
		t.Fatalf("loadgen: %v", err)
	}
	if err := cl.Flush(pctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if produceErr != nil {
		t.Fatalf("produce: %v", produceErr)
	}
	mu.Unlock()
	total := published.Load()

	// Every deadline is at most wait after the last record; once spur has
	// applied everything and fired every timer, these are all the coupons.
	expected := gen.Oracle().Expected(time.Now().Add(time.Hour))
	deadLetters := gen.Oracle().DeadLetters()
	want := make([]wantCoupon, 0, len(expected))
	wantCustomers := map[string]bool{}
	for _, e := range expected {
		want = append(want, wantCoupon{customer: e.CustomerID, cause: e.CauseEventID, qualified: e.QualifiedAt})
		wantCustomers[e.CustomerID] = true
	}
	t.Logf("published %d records (%d malformed) in %s; the oracle expects %d coupons for %d customers",
		total, deadLetters, time.Since(start).Round(time.Millisecond), len(expected), len(wantCustomers))
	if len(expected) < 20 || deadLetters < 10 {
		t.Fatalf("the traffic is too thin to mean much: %d coupons, %d dead letters", len(expected), deadLetters)
	}

	waitUntil(t, "every expected coupon, all input applied, nothing pending", func() (string, error) {
		if err := spur.checkAlive(); err != nil {
			return "", err
		}
		if n := spur.consumed(); n != float64(total) {
			return fmt.Sprintf("%v of %d input records applied", n, total), nil
		}
		if s := missingCustomers(quickTriggers(triggers.records()), wantCustomers); s != "" {
			return s, nil
		}
		if n := len(dlq.records()); n < deadLetters {
			return fmt.Sprintf("%d of %d dead letters", n, deadLetters), nil
		}
		return spur.busy(), nil
	})

	trs := decodeTriggers(t, triggers.readToEnd(t, adm, topics.Triggers))
	checkOracleCoupons(t, trs, want, history)
	logLatency(t, trs)
	if n := len(dlq.readToEnd(t, adm, topics.DLQ)); n != deadLetters {
		t.Errorf("%d dead letters, want %d", n, deadLetters)
	}
	m := spur.mustScrape()
	if got := m.sum("spur_dead_letters_total"); got != float64(deadLetters) {
		t.Errorf("spur_dead_letters_total = %v, want %d", got, deadLetters)
	}
	if got := m.sum("spur_triggers_total"); got != float64(len(expected)) {
		t.Errorf("spur_triggers_total = %v, want %d", got, len(expected))
	}
	for _, name := range []string{"spur_duplicate_events_total", "spur_key_partition_mismatch_total", "spur_triggers_stale_total"} {
		if got := m.sum(name); got != 0 {
			t.Errorf("%s = %v, want 0", name, got)
		}
	}
	stopAndCheckCommits(t, adm, spur, group, topics)
}

// checkOracleCoupons checks triggers against the oracle's coupons, which may
// include several per customer: every expected (customer, cause,
// qualified_at) exactly once by trigger_id, no other trigger, no duplicate
// record. history lists what was published per customer, for the failure
// report.
func checkOracleCoupons(t *testing.T, trs []trigger, want []wantCoupon, history map[string][]string) {
	t.Helper()
	reported := map[string]bool{}
	report := func(customer string) {
		if !reported[customer] {
			reported[customer] = true
			t.Logf("%s published:\n\t%s", customer, strings.Join(history[customer], "\n\t"))
		}
	}
	coupons := newOracleCoupons(t, want, report)
	for id, copies := range byID(trs) {
		tr := copies[0]
		if len(copies) > 1 {
			t.Errorf("trigger %s for %s on the topic %d times", id, tr.CustomerID, len(copies))
		}
		if len(tr.CauseEventIDs) != 1 {
			t.Errorf("trigger %s for %s: cause_event_ids %v, want one cart_add", id, tr.CustomerID, tr.CauseEventIDs)
			continue
		}
		if !coupons.match(id, tr) {
			continue
		}
		if tr.Payload.Coupon == nil || tr.Payload.Cart == nil || len(tr.Payload.Cart.Items) == 0 || tr.Payload.Cart.Value <= 0 {
			t.Errorf("trigger %s for %s: coupon %+v cart %+v, want a coupon for a non-empty cart", id, tr.CustomerID, tr.Payload.Coupon, tr.Payload.Cart)
			continue
		}
		// The oracle does not model the customer's profile: any offer
		// the pipeline can make for the cart.
		checkOffer(t, tr, nil)
	}
	coupons.checkMissing()
}

// oracleCoupons matches triggers to the coupons an oracle expects, by
// (customer, cause, qualified_at): checkOracleCoupons and checkFaultCoupons
// each check the triggers in their own way, and match them alike. report
// logs what was published to a customer, for a failure.
type oracleCoupons struct {
	t      *testing.T
	report func(customer string)
	wanted map[couponKey]bool
	found  map[couponKey]string // the trigger_id of each coupon matched
}

type couponKey struct {
	customer, cause string
	qualified       int64 // Unix milliseconds
}

func newOracleCoupons(t *testing.T, want []wantCoupon, report func(customer string)) *oracleCoupons {
	o := &oracleCoupons{t: t, report: report, wanted: map[couponKey]bool{}, found: map[couponKey]string{}}
	for _, w := range want {
		o.wanted[couponKey{w.customer, w.cause, w.qualified.UnixMilli()}] = true
	}
	return o
}

// match matches the trigger tr, of trigger_id id and with exactly one
// cause, to its expected coupon, failing the test if another trigger_id
// has matched it already. Where no such coupon is expected it fails the
// test and returns false.
func (o *oracleCoupons) match(id string, tr trigger) bool {
	o.t.Helper()
	k := couponKey{tr.CustomerID, tr.CauseEventIDs[0], tr.QualifiedAt.UnixMilli()}
	if !o.wanted[k] {
		o.t.Errorf("unexpected trigger %s: customer %s, cause %s, qualified_at %s", id, k.customer, k.cause, tr.QualifiedAt.Format(time.RFC3339Nano))
		o.report(k.customer)
		return false
	}
	if other, dup := o.found[k]; dup {
		o.t.Errorf("customer %s cause %s: two trigger ids %s and %s", k.customer, k.cause, other, id)
	}
	o.found[k] = id
	return true
}

// checkMissing fails the test for each expected coupon no trigger matched.
func (o *oracleCoupons) checkMissing() {
	o.t.Helper()
	for k := range o.wanted {
		if _, ok := o.found[k]; !ok {
			o.t.Errorf("missing coupon: customer %s, cause %s, qualified_at %s", k.customer, k.cause, time.UnixMilli(k.qualified).UTC().Format(time.RFC3339Nano))
			o.report(k.customer)
		}
	}
}
