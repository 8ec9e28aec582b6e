package engine_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spur-crm/spur/pkg/changelog"
	"github.com/spur-crm/spur/pkg/engine"
	"github.com/spur-crm/spur/pkg/loadgen"
)

// txnGroup is the harness's consumer group, which names the tasks'
// transactional ids.
const txnGroup = "spur-test"

func newTxnHarness(t testing.TB) *harness {
	h := newHarness(t)
	h.changelog = changelogTopic
	h.txn = true
	return h
}

// txnWorkload publishes, for each of n customers, a cart_add, and for
// every third customer an order cancelling it; it returns the customers
// expected to get a coupon once the clock passes the wait.
func txnWorkload(h *harness, n int) map[string]bool {
	want := map[string]bool{}
	for i := range n {
		id := fmt.Sprintf("c-%d", i)
		h.publish(clickstream, id, cartAdd(fmt.Sprintf("e-%d-a", i), id, 0, "sku-1", 10))
		h.publish(clickstream, id, ev(fmt.Sprintf("e-%d-v", i), "page_view", id, time.Second, ""))
		if i%3 == 0 {
			h.publish(orders, id, ev(fmt.Sprintf("e-%d-o", i), "order", id, 2*time.Second, `"order_id":"o-1","total":10,"items":[{"sku":"sku-1","price":10,"quantity":1}]`))
			continue
		}
		want[id] = true
	}
	return want
}

// committedTriggers counts the triggers a read_committed consumer sees,
// per customer.
func (h *harness) committedTriggers() map[string]int {
	h.t.Helper()
	got := map[string]int{}
	for c, trs := range h.triggersByCustomer() {
		got[c] = len(trs)
	}
	return got
}

// exactlyOnce checks that every expected customer has exactly one trigger
// and nobody else has any.
func exactlyOnce(t *testing.T, want map[string]bool, got map[string]int) {
	t.Helper()
	for c := range want {
		if got[c] != 1 {
			t.Errorf("%s: %d triggers on a read_committed consumer, want exactly 1", c, got[c])
		}
	}
	for c, n := range got {
		if !want[c] {
			t.Errorf("%s: %d unexpected triggers", c, n)
		}
	}
}

// waitCommitted waits until a read_committed consumer sees n triggers.
func (h *harness) waitCommitted(n int) {
	h.t.Helper()
	h.waitFor(fmt.Sprintf("%d committed triggers", n), func() bool {
		total := 0
		for _, k := range h.committedTriggers() {
			total += k
		}
		return total >= n && h.settled()
	})
}

// txnSettled reports that nothing waits to be committed: no output record,
// no changelog record.
func (h *harness) txnSettled() bool {
	var n float64
	for p := range partitions {
		n += testutil.ToFloat64(h.metrics.ChangelogPending.WithLabelValues(fmt.Sprint(p)))
	}
	return n == 0 && h.settled()
}

// checkEvents checks every customer's applied event count: state applied
// exactly once.
func (h *harness) checkEvents(n int) {
	h.t.Helper()
	for i := range n {
		id := fmt.Sprintf("c-%d", i)
		want := uint64(2)
		if i%3 == 0 {
			want = 3
		}
		if c, ok := h.customer(id); !ok || c.Events != want {
			h.t.Errorf("%s: %d events applied, want %d", id, c.Events, want)
		}
	}
}

// TestTransactionsExactlyOnce: with transactions, a read_committed
// consumer of the trigger topic sees each trigger once, and the changelog
// restores the same state (its step ends commit with the triggers).
func TestTransactionsExactlyOnce(t *testing.T) {
	const n = 30
	h := newTxnHarness(t)
	h.start()
	want := txnWorkload(h, n)
	h.waitFor("input applied", func() bool { return h.consumed() == n*2+n/3 })
	h.clock.Advance(time.Minute)
	h.waitCommitted(len(want))
	h.stop()
	exactlyOnce(t, want, h.committedTriggers())
	h.checkEvents(n)
	if got := int(testutil.ToFloat64(h.metrics.Transactions.WithLabelValues("committed"))); got == 0 {
		t.Error("no transaction committed")
	}
	before := h.rows()

	// A new instance restores the committed changelog: the same rows, and
	// nothing to re-send.
	h.wipeState()
	h.startReady()
	if got := h.restores(changelog.ModeFull); got != partitions {
		t.Errorf("full restores = %d, want %d", got, partitions)
	}
	h.stop()
	h.sameRows("after restore", before, h.rows())
	exactlyOnce(t, want, h.committedTriggers())
}

// TestTransactionsRestartAtEveryPhase fails each partition's first
// transaction carrying triggers at a phase (its records on the broker but
// not committed; committed but not yet acknowledged locally), once as an
// in-process task restart and once as a process crash, and checks that a
// read_committed consumer still sees every trigger exactly once and that
// every event was applied once.
func TestTransactionsRestartAtEveryPhase(t *testing.T) {
	for _, tc := range []struct {
		name    string
		phase   engine.TxnPhase
		process bool // the whole process dies and is started again
	}{
		{"before_commit/task_restart", engine.TxnBeforeCommit, false},
		{"after_commit/task_restart", engine.TxnAfterCommit, false},
		{"before_commit/process_crash", engine.TxnBeforeCommit, true},
		{"after_commit/process_crash", engine.TxnAfterCommit, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 24
			h := newTxnHarness(t)
			var mu sync.Mutex
			armed, hit := false, map[int32]bool{}
			errCrash := errors.New("simulated crash")
			if !tc.process {
				errCrash = fmt.Errorf("%w: simulated failure", engine.ErrRestartTask)
			}
			h.txnHook = func(part int32, phase engine.TxnPhase, outputs int) error {
				mu.Lock()
				defer mu.Unlock()
				if !armed || phase != tc.phase || hit[part] || outputs == 0 {
					return nil
				}
				hit[part] = true
				return errCrash
			}
			h.start()
			want := txnWorkload(h, n)
			h.waitFor("input applied", func() bool { return h.consumed() == n*2+n/3 })
			h.waitFor("input committed", h.txnSettled)
			mu.Lock()
			armed = true // the timers' transactions carry the triggers
			mu.Unlock()
			h.clock.Advance(time.Minute)
			if tc.process {
				// The first failing worker stops the consumer; the
				// others fail at the hook or drain.
				if err := <-h.done; !errors.Is(err, errCrash) {
					t.Fatalf("engine ended with %v, want the simulated crash", err)
				}
				h.release()
				mu.Lock()
				armed = false
				mu.Unlock()
				h.startReady()
			}
			h.waitCommitted(len(want))
			mu.Lock()
			failed := len(hit)
			mu.Unlock()
			if failed == 0 {
				t.Fatal("no transaction reached the phase")
			}
			if !tc.process {
				// Each failed task restarted, recognising its own
				// records on the changelog (committed, or aborted).
				h.waitFor("the failed tasks restarted", func() bool { return h.restores(changelog.ModeOwn) >= failed })
			}
			h.stop()
			got := h.committedTriggers()
			exactlyOnce(t, want, got)
			h.checkEvents(n)
			if tc.phase == engine.TxnBeforeCommit {
				// The aborted transactions' triggers are in the log:
				// a read_uncommitted consumer sees them twice.
				if all := len(h.read(triggers, kgo.ReadUncommitted())); all <= len(want) {
					t.Errorf("read_uncommitted sees %d triggers; want the aborted ones too (more than %d)", all, len(want))
				}
			}
		})
	}
}

// TestTransactionsFenceZombie: the producer of a task's previous owner
// (a zombie that has not noticed it lost the task) is fenced when the new
// owner starts the task, and cannot commit; when a zombie takes the
// transactional id back, the owner's worker is fenced, restarts after the
// pause and fences it again. A read_committed consumer never sees the
// zombie's records.
func TestTransactionsFenceZombie(t *testing.T) {
	const n = 12
	h := newTxnHarness(t)
	h.fencedPause = 200 * time.Millisecond
	p := partitionOf("c-1")
	ctx := context.Background()
	newZombie := func() *kgo.Client {
		t.Helper()
		z, err := kgo.NewClient(kgo.SeedBrokers(h.broker.Addr()), kgo.TransactionalID(engine.TransactionalID(txnGroup, p)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(z.Close)
		if _, _, err := z.ProducerID(ctx); err != nil {
			t.Fatal(err)
		}
		return z
	}
	zombieWrite := func(z *kgo.Client) error {
		if err := z.BeginTransaction(); err != nil {
			return err
		}
		err := z.ProduceSync(ctx, &kgo.Record{Topic: triggers, Partition: p, Key: []byte("c-zombie"), Value: []byte(`{}`)}).FirstErr()
		if err == nil {
			err = z.EndTransaction(ctx, kgo.TryCommit)
		}
		if err != nil {
			z.EndTransaction(ctx, kgo.TryAbort)
		}
		return err
	}

	// The old owner's producer, initialised before the new owner starts.
	old := newZombie()
	h.startReady()
	if err := zombieWrite(old); err == nil {
		t.Fatal("the previous owner committed after the new owner started the task")
	}

	// A zombie takes the id over while the owner works: the owner's next
	// transaction is fenced; it restarts the task after the pause.
	want := txnWorkload(h, n)
	h.waitFor("input applied", func() bool { return h.consumed() == n*2+n/3 })
	h.waitFor("input committed", h.txnSettled)
	z := newZombie()
	h.clock.Advance(time.Minute)
	h.waitCommitted(len(want))
	if got := testutil.ToFloat64(h.metrics.Transactions.WithLabelValues("fenced")); got == 0 {
		t.Error("the owner was never fenced")
	}
	if err := zombieWrite(z); err == nil {
		t.Error("the zombie committed after the owner restarted the task")
	}
	h.stop()
	got := h.committedTriggers()
	if got["c-zombie"] != 0 {
		t.Errorf("read_committed consumer saw %d zombie records", got["c-zombie"])
	}
	delete(got, "c-zombie")
	exactlyOnce(t, want, got)
	h.checkEvents(n)
}

// BenchmarkTransactionsCost applies a backlog of generated storefront
// traffic (15000 records, 400 customers) from the embedded broker with
// Pebble on disk, with and without transactions, and reports events/s
// from the engine's start until every input record is applied and every
// output and changelog record is acknowledged (committed, with
// transactions), timed from the first applied record. Run: go test ./pkg/engine -run '^$' -bench TransactionsCost -benchtime 3x
func BenchmarkTransactionsCost(b *testing.B) {
	for _, txn := range []bool{false, true} {
		name := "at_least_once"
		if txn {
			name = "transactions"
		}
		b.Run(name, func(b *testing.B) {
			var took time.Duration
			for range b.N {
				b.StopTimer()
				h := newHarness(b)
				h.changelog, h.txn = changelogTopic, txn
				g, err := loadgen.New(loadgen.Config{Seed: 20261123, Customers: 400, MalformedShare: 0.02})
				if err != nil {
					b.Fatal(err)
				}
				recs := make([]*kgo.Record, 0, loadgenRecords)
				for j := range loadgenRecords {
					r := g.Next(t0.Add(time.Duration(j) * loadgenStep))
					recs = append(recs, &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Timestamp: r.TS})
				}
				if err := h.client.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
					b.Fatal(err)
				}
				h.start()
				// Timed from the first applied record: the group join
				// before it is the same either way.
				h.waitFor("the first record applied", func() bool { return h.consumed() > 0 })
				b.StartTimer()
				start := time.Now()
				h.waitFor("backlog applied and committed", func() bool { return h.consumed() == loadgenRecords && h.txnSettled() })
				took += time.Since(start)
				b.StopTimer()
				h.stop()
			}
			b.ReportMetric(float64(loadgenRecords*b.N)/took.Seconds(), "events/s")
		})
	}
}
