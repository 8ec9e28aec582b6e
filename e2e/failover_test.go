//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spur-crm/spur/pkg/event"
	"github.com/spur-crm/spur/pkg/publish"
)

// TestRunFailoverKill9 runs two `spur run` processes in one consumer group,
// publishes a stream of sessions, and kills one member with SIGKILL in the
// middle of it, after it has emitted triggers of its own. The survivor takes
// over the dead member's partitions after the session timeout, rebuilds them
// by replaying their input from the start, and fires what was pending.
//
// Every expected coupon must then be on spur.triggers exactly once by
// trigger_id: a trigger the dead member sent and the survivor qualified
// again carries the same id (duplicates only with the same id are counted
// and reported), no customer who ordered gets one, and the survivor commits
// every input record.
func TestRunFailoverKill9(t *testing.T) {
	bs := brokers(t)
	adm := admin(t)
	const (
		parts     = 6
		wait      = 2 * time.Second
		customers = 900
		batch     = 30                     // customers per produce
		every     = 100 * time.Millisecond // between produces: 4s of traffic
	)
	topics := newTopics(t, adm, parts)
	group := uniqueName(t, "e2e")
	pipes := pipelinesDir(t, wait)
	cfg := func(name string) runConfig {
		return runConfig{Name: name, Group: group, Topics: topics, Partitions: parts, Pipelines: pipes}
	}
	a := startRun(t, cfg("spur-a"))
	a.waitReady()
	b := startRun(t, cfg("spur-b"))
	b.waitReady()

	var ownedA, ownedB []int
	waitUntil(t, "the two members to share the partitions", func() (string, error) {
		for _, p := range []*spurProc{a, b} {
			if err := p.checkAlive(); err != nil {
				return "", err
			}
		}
		ma, errA := a.scrape()
		mb, errB := b.scrape()
		if errA != nil || errB != nil {
			return fmt.Sprintf("scrape: %v %v", errA, errB), nil
		}
		ownedA, ownedB = ma.owned(), mb.owned()
		all := slices.Sorted(slices.Values(append(slices.Clone(ownedA), ownedB...)))
		if len(ownedA) == 0 || len(ownedB) == 0 || !slices.Equal(all, seq(parts)) {
			return fmt.Sprintf("spur-a owns %v, spur-b owns %v", ownedA, ownedB), nil
		}
		return "", nil
	})
	t.Logf("spur-a owns partitions %v, spur-b owns %v", ownedA, ownedB)
	triggers := tailTopic(t, bs, topics.Triggers)

	// The workload, in rounds `every` apart: in each round `batch` new
	// customers view a product and add it to the cart. Every third orders
	// ten rounds (1s) later; of the others, every other one adds a second
	// item five rounds later, which restarts the wait. Each event is
	// stamped when its round is produced.
	//
	// The order comes a second after the cart_add, never in the same
	// produce: see publishOrdersAfterCarts.
	const (
		resetAfter = 5
		orderAfter = 10
	)
	type stepKind int
	const (
		browseAndAdd stepKind = iota
		secondAdd
		placeOrder
	)
	type step struct {
		customer int
		kind     stepKind
	}
	rounds := make([][]step, customers/batch+orderAfter)
	for i := range customers {
		k := i / batch
		rounds[k] = append(rounds[k], step{i, browseAndAdd})
		switch {
		case i%3 == 0:
			rounds[k+orderAfter] = append(rounds[k+orderAfter], step{i, placeOrder})
		case i%2 == 0:
			rounds[k+resetAfter] = append(rounds[k+resetAfter], step{i, secondAdd})
		}
	}
	// Written by the publisher, read after it is done.
	var (
		adds   = map[int][]event.Event{} // cart_adds per customer
		orders = map[int]event.Event{}
		total  int
	)
	cl := franzClient(t, kgo.ProducerLinger(0))
	published := make(chan error, 1)
	var producing atomic.Bool
	producing.Store(true)
	start := time.Now()
	go func() {
		defer producing.Store(false)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for k, round := range rounds {
			if k > 0 {
				<-tick.C // paced traffic, not synchronisation
			}
			now := time.Now()
			var recs []*kgo.Record
			add := func(ev event.Event, d time.Duration) event.Event {
				ev.TS = ms(now.Add(d))
				v, err := publish.Marshal(ev)
				if err != nil {
					panic(err)
				}
				topic := topics.Clicks
				if ev.Type == event.Order {
					topic = topics.Orders
				}
				recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(ev.CustomerID), Value: v, Timestamp: ev.TS})
				return ev
			}
			for _, st := range round {
				c := "c-" + strconv.Itoa(st.customer)
				switch st.kind {
				case browseAndAdd:
					add(publish.ProductView(c, "", "sku-1", "shoes", 59.9, 2*time.Second), -time.Millisecond)
					adds[st.customer] = append(adds[st.customer], add(publish.CartAdd(c, "sku-1", "shoes", 59.9, 1), 0))
				case secondAdd:
					adds[st.customer] = append(adds[st.customer], add(publish.CartAdd(c, "sku-2", "socks", 5, 2), 0))
				case placeOrder:
					orders[st.customer] = add(publish.Order(c, "o-"+c, []event.Item{{SKU: "sku-1", Price: 59.9, Quantity: 1}}), 0)
				}
			}
			total += len(recs)
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			err := cl.ProduceSync(ctx, recs...).FirstErr()
			cancel()
			if err != nil {
				published <- err
				return
			}
		}
		published <- nil
	}()

	// Kill spur-b once it has applied input and emitted triggers.
	waitUntil(t, "spur-b to emit triggers", func() (string, error) {
		if err := b.checkAlive(); err != nil {
			return "", err
		}
		m, err := b.scrape()
		if err != nil {
			return err.Error(), nil
		}
		if n := m.sum("spur_triggers_total"); n < 5 {
			return fmt.Sprintf("spur-b emitted %v triggers", n), nil
		}
		return "", nil
	})
	mb := b.mustScrape()
	midStream := producing.Load()
	b.kill()
	killedAt := time.Now()
	t.Logf("killed spur-b %s after the first publish (publishing still running: %v); it had applied %v records and emitted %v triggers, %v timers pending, %v outbox records unacknowledged",
		killedAt.Sub(start).Round(time.Millisecond), midStream, mb.sum("spur_events_consumed_total"), mb.sum("spur_triggers_total"),
		mb.sum("spur_timers_pending"), mb.sum("spur_outbox_pending"))
	if err := <-published; err != nil {
		t.Fatalf("produce: %v", err)
	}
	// What each customer must get. A follow-up event (second cart_add,
	// order) must land well inside the first wait to mean what it should;
	// if the publisher stalled so long that it did not, the customer is
	// left out of the checks.
	var (
		want   []wantCoupon
		none   []string
		ignore = map[string]bool{}
	)
	for i := range customers {
		c := "c-" + strconv.Itoa(i)
		first, last := adds[i][0], adds[i][len(adds[i])-1]
		if order, ok := orders[i]; ok {
			if order.TS.Sub(first.TS) < wait-500*time.Millisecond {
				none = append(none, c)
			} else {
				ignore[c] = true
			}
			continue
		}
		if last.TS.Sub(first.TS) < wait-500*time.Millisecond {
			// No order, one product viewed, a cart worth 59.9 or 69.9.
			want = append(want, wantCoupon{customer: c, cause: last.EventID, qualified: last.TS.Add(wait), offer: &offer{percentOff: 10}})
		} else {
			ignore[c] = true
		}
	}
	if len(ignore) > 0 {
		t.Logf("the publisher stalled: %d customers whose follow-up event came too close to their deadline are not checked", len(ignore))
	}

	wantCustomers := map[string]bool{}
	for _, w := range want {
		wantCustomers[w.customer] = true
	}
	ends := inputEnds(t, adm, topics)
	waitUntil(t, "spur-a to take over every partition and deliver every expected coupon", func() (string, error) {
		if err := a.checkAlive(); err != nil {
			return "", err
		}
		m, err := a.scrape()
		if err != nil {
			return err.Error(), nil
		}
		if owned := m.owned(); !slices.Equal(owned, seq(parts)) {
			return fmt.Sprintf("spur-a owns %v", owned), nil
		}
		// spur-b's partitions are rebuilt from the start of their input:
		// done when spur-a's lag on each is known and zero.
		for _, p := range ownedB {
			for topic, end := range ends {
				if end[int32(p)] == 0 {
					continue
				}
				lag := m.find("spur_consumer_lag", "topic", topic, "partition", strconv.Itoa(p))
				if len(lag) == 0 || lag[0].value != 0 {
					return fmt.Sprintf("spur-a is rebuilding %s/%d (lag %v)", topic, p, lag), nil
				}
			}
		}
		if s := missingCustomers(quickTriggers(triggers.records()), wantCustomers); s != "" {
			return s, nil
		}
		return a.busy(), nil
	})
	t.Logf("every expected coupon delivered %s after the kill (at %s); spur-a's group events:\n\t%s",
		time.Since(killedAt).Round(time.Millisecond), killedAt.UTC().Format("15:04:05.000"),
		strings.Join(a.logEvents("partitions assigned", "partitions revoked", "partitions lost", "re-sending"), "\n\t"))
	ma := a.mustScrape()
	if got := ma.sum("spur_duplicate_events_total"); got != 0 {
		t.Errorf("spur-a: spur_duplicate_events_total = %v: events applied twice", got)
	}
	stopAndCheckCommits(t, adm, a, group, topics)

	trs := decodeTriggers(t, triggers.readToEnd(t, adm, topics.Triggers))
	trs = slices.DeleteFunc(trs, func(tr trigger) bool { return ignore[tr.CustomerID] })
	dups := checkCoupons(t, trs, want, none, true)
	t.Logf("%d records published for %d customers; %d coupons expected, %d trigger records on the topic, %d distinct trigger ids, %d duplicate records (same trigger_id)",
		total, customers, len(want), len(trs), len(byID(trs)), dups)
	logLatency(t, trs)
}

// logLatency logs how long after qualifying the triggers were emitted
// (emitted_at - qualified_at, first copy of each trigger_id): evidence for
// the 15s promise, not a timed assertion.
func logLatency(t *testing.T, trs []trigger) {
	t.Helper()
	var first []trigger
	for _, copies := range byID(trs) {
		first = append(first, copies[0])
	}
	if len(first) == 0 {
		return
	}
	lat := func(tr trigger) time.Duration { return tr.EmittedAt.Sub(tr.QualifiedAt) }
	slices.SortFunc(first, func(a, b trigger) int { return int(lat(a) - lat(b)) })
	slowest := first[len(first)-1]
	t.Logf("trigger latency (emitted_at - qualified_at) over %d triggers: p50 %s, p99 %s, max %s (%s on partition %d, qualified %s, emitted %s)",
		len(first), lat(first[len(first)/2]).Round(time.Millisecond), lat(first[len(first)*99/100]).Round(time.Millisecond),
		lat(slowest).Round(time.Millisecond), slowest.CustomerID, slowest.Partition,
		slowest.QualifiedAt.Format("15:04:05.000"), slowest.EmittedAt.Format("15:04:05.000"))
}

// seq returns 0..n-1.
func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// find returns a metric's samples whose labels include every pair of match.
func (m metrics) find(name string, match ...string) []sample {
	var out []sample
	for _, s := range m {
		if s.name == name && s.matches(match) {
			out = append(out, s)
		}
	}
	return out
}

// inputEnds returns the end offsets of the input topics, per topic and
// partition.
func inputEnds(t *testing.T, adm *kadm.Client, topics spurTopics) map[string]map[int32]int64 {
	t.Helper()
	return map[string]map[int32]int64{
		topics.Clicks: endOffsets(t, adm, topics.Clicks),
		topics.Orders: endOffsets(t, adm, topics.Orders),
	}
}
