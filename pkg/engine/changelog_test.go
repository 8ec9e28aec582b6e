package engine_test

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spur-crm/spur/pkg/changelog"
	"github.com/spur-crm/spur/pkg/state"
)

const changelogTopic = "spur-test.changelog"

// rows reads every mirrored row of every partition from the harness's state
// directory; the engine must be stopped.
func (h *harness) rows() map[string]string {
	h.t.Helper()
	st, err := state.Open(filepath.Join(h.dir, h.stateDir))
	if err != nil {
		h.t.Fatal(err)
	}
	defer st.Close()
	it, err := st.DB().NewIter(&pebble.IterOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	defer it.Close()
	out := map[string]string{}
	for it.First(); it.Valid(); it.Next() {
		if state.Mirrored(it.Key()) {
			out[string(it.Key())] = string(it.Value())
		}
	}
	return out
}

func (h *harness) sameRows(what string, want, got map[string]string) {
	h.t.Helper()
	if len(got) != len(want) {
		h.t.Errorf("%s: %d rows, want %d", what, len(got), len(want))
	}
	for k, v := range want {
		if g, ok := got[k]; !ok {
			h.t.Errorf("%s: row %q missing", what, k)
		} else if g != v {
			h.t.Errorf("%s: row %q differs", what, k)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			h.t.Errorf("%s: extra row %q", what, k)
		}
	}
}

func (h *harness) customer(id string) (state.Customer, bool) {
	h.t.Helper()
	st, err := state.Open(filepath.Join(h.dir, h.stateDir))
	if err != nil {
		h.t.Fatal(err)
	}
	defer st.Close()
	var c state.Customer
	ok, err := st.Customer(partitionOf(id), id, &c)
	if err != nil {
		h.t.Fatal(err)
	}
	return c, ok
}

func (h *harness) restores(mode changelog.Mode) int {
	return int(testutil.ToFloat64(h.restorer.Metrics().Restores.WithLabelValues(string(mode))))
}

func (h *harness) restoredRecords() int {
	return int(testutil.ToFloat64(h.restorer.Metrics().RestoreRecords))
}

// changelogEnd is the sum of the changelog partitions' end offsets.
func (h *harness) changelogEnd() int64 {
	h.t.Helper()
	ends, err := kadm.NewClient(h.client).ListEndOffsets(context.Background(), changelogTopic)
	if err != nil {
		h.t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

func (h *harness) wipeState() {
	h.t.Helper()
	if err := os.RemoveAll(filepath.Join(h.dir, h.stateDir)); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) startReady() {
	h.t.Helper()
	h.start()
	h.waitFor("partitions assigned and restored", h.consumer.Ready)
}

// TestChangelogRestoresLostState loses an instance's data dir: the next
// instance restores every row of every partition from the changelog, applies
// no event twice, re-emits no acknowledged trigger, and fires a timer that
// fell due while nothing ran as soon as it has restored.
func TestChangelogRestoresLostState(t *testing.T) {
	h := newHarness(t)
	h.changelog = changelogTopic
	h.start()
	s := time.Second
	h.publish(clickstream, "c-1", cartAdd("e-1", "c-1", 0, "sku-1", 59.9))
	h.publish(clickstream, "c-1", ev("e-2", "page_view", "c-1", s, ""))
	h.publish(clickstream, "c-2", cartAdd("e-3", "c-2", 0, "sku-2", 20))
	h.publish(orders, "c-2", ev("e-4", "order", "c-2", 2*s, `"order_id":"o-1","total":20,"items":[{"sku":"sku-2","price":20,"quantity":1}]`))
	h.publish(clickstream, "c-3", cartAdd("e-5", "c-3", 0, "sku-3", 10))
	h.publish(clickstream, "c-4", ev("e-6", "page_view", "c-4", 0, ""))
	h.publish(clickstream, "c-4", ev("e-7", "forget", "c-4", s, ""))
	h.publish(clickstream, "c-5", cartAdd("e-8", "c-5", 30*s, "sku-5", 10)) // due at t0+40s
	for i, id := range []string{"e-9", "e-10", "e-11"} {
		h.publish(clickstream, "c-6", ev(id, "page_view", "c-6", time.Duration(i)*s, ""))
	}
	h.waitFor("input applied", func() bool { return h.consumed() == 11 })
	h.advance(10*s, 2, 2) // c-1 and c-3 qualify at t0+10s
	h.stop()
	before := h.rows()
	if len(before) == 0 {
		t.Fatal("no state")
	}

	// The data dir is lost; a new instance restores it.
	h.wipeState()
	h.startReady()
	if got := h.restores(changelog.ModeFull); got != partitions {
		t.Errorf("full restores = %d, want %d", got, partitions)
	}
	if h.restoredRecords() == 0 {
		t.Error("no records restored")
	}
	h.stop()
	h.sameRows("after restore", before, h.rows())
	if _, ok := h.customer("c-4"); ok {
		t.Error("forgotten customer c-4 came back")
	}

	// Lost again, while c-5's wait ran out: its timer fires once restored.
	h.wipeState()
	h.clock.Advance(30 * s)
	h.start()
	h.waitFor("c-5's overdue coupon", func() bool { return h.acked() == 1 && h.settled() })
	if got := h.consumed(); got != 0 {
		t.Errorf("restored instance applied %d input records again", got)
	}
	h.publish(clickstream, "c-1", ev("e-12", "page_view", "c-1", 35*s, ""))
	h.waitFor("the next event", func() bool { return h.consumed() == 1 })
	h.stop()

	got := h.triggersByCustomer()
	for _, c := range []string{"c-1", "c-3", "c-5"} {
		if len(got[c]) != 1 {
			t.Errorf("%s got %d triggers, want 1", c, len(got[c]))
		}
	}
	if len(got) != 3 {
		t.Errorf("triggers for %v, want c-1, c-3, c-5", keys(got))
	}
	for id, want := range map[string]uint64{"c-1": 3, "c-2": 2, "c-6": 3} {
		if c, ok := h.customer(id); !ok || c.Events != want {
			t.Errorf("%s: %d events applied, want %d", id, c.Events, want)
		}
	}
}

// TestChangelogWarmRestartReadsOnlyTheTail: instance A stops, B takes its
// partitions over (a full restore) and applies two events, then A restarts
// on its own data dir and reads only what B wrote, ending with B's rows.
func TestChangelogWarmRestartReadsOnlyTheTail(t *testing.T) {
	h := newHarness(t)
	h.changelog = changelogTopic
	h.stateDir = "state-a"
	h.start()
	n := 0
	for i := range 40 {
		id := "c-" + string(rune('a'+i%20))
		h.publish(clickstream, id, ev("e-"+string(rune('A'+i)), "page_view", id, time.Duration(i)*time.Millisecond, ""))
		n++
	}
	h.waitFor("input applied", func() bool { return h.consumed() == n })
	h.stop()
	endA := h.changelogEnd()

	h.stateDir = "state-b"
	h.startReady()
	if got := h.restoredRecords(); int64(got) != endA {
		t.Errorf("B restored %d records, want all %d", got, endA)
	}
	h.publish(clickstream, "c-a", ev("e-x1", "page_view", "c-a", time.Second, ""))
	h.publish(clickstream, "c-a", ev("e-x2", "page_view", "c-a", 2*time.Second, ""))
	h.waitFor("B applied two events", func() bool { return h.consumed() == 2 })
	h.stop()
	rowsB := h.rows()
	endB := h.changelogEnd()
	if endB <= endA {
		t.Fatalf("B wrote no changelog records (%d, %d)", endA, endB)
	}

	h.stateDir = "state-a"
	h.startReady()
	if got := h.restoredRecords(); int64(got) != endB-endA {
		t.Errorf("A restored %d records, want only B's %d (of %d)", got, endB-endA, endB)
	}
	if h.restores(changelog.ModeTail) != 1 || h.restores(changelog.ModeNone) != partitions-1 {
		t.Errorf("restores: tail %d none %d, want 1 and %d", h.restores(changelog.ModeTail), h.restores(changelog.ModeNone), partitions-1)
	}
	h.stop()
	h.sameRows("A after the tail", rowsB, h.rows())
	if c, _ := h.customer("c-a"); c.Events != 4 {
		t.Errorf("c-a: %d events, want 4", c.Events)
	}
}

// TestChangelogSkipsUnfinishedStep: records of a step whose end never
// reached the changelog (a producer that died half way) are not applied,
// and the restore supersedes them so that later steps do not apply them
// either.
func TestChangelogSkipsUnfinishedStep(t *testing.T) {
	h := newHarness(t)
	h.changelog = changelogTopic
	h.start()
	h.publish(clickstream, "c-1", cartAdd("e-1", "c-1", 0, "sku-1", 10))
	h.publish(clickstream, "c-2", ev("e-2", "page_view", "c-2", 0, ""))
	h.waitFor("input applied", func() bool { return h.consumed() == 2 })
	h.stop()
	before := h.rows()

	// A dying producer got two records of a step out: c-1's record and an
	// offset far ahead, but not the step's end.
	p := partitionOf("c-1")
	far := make([]byte, 8)
	binary.BigEndian.PutUint64(far, 1000)
	manual, err := kgo.NewClient(kgo.SeedBrokers(h.broker.Addr()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer manual.Close()
	zombie := []byte("zombie!!")
	for i, row := range []state.ChangelogRow{
		{Seq: 0, Change: state.Change{Key: state.Key(p, state.KindCustomer, []byte("c-1")), Value: []byte("half a step")}},
		{Seq: 1, Change: state.Change{Key: state.Key(p, state.KindOffset, []byte(clickstream)), Value: far}},
	} {
		if err := manual.ProduceSync(context.Background(), changelog.Record(changelogTopic, p, zombie, row)).FirstErr(); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}

	h.wipeState()
	h.startReady()
	if got := testutil.ToFloat64(h.restorer.Metrics().Unfinished); got != 2 {
		t.Errorf("unfinished step records = %v, want 2", got)
	}
	h.waitFor("the superseding step acknowledged", func() bool {
		return testutil.ToFloat64(h.metrics.ChangelogPending.WithLabelValues(string(rune('0'+p)))) == 0
	})
	h.stop()
	h.sameRows("after skipping the unfinished step", before, h.rows())

	// Read from the start again: the unfinished records are now followed
	// by the current values and a step end.
	h.wipeState()
	h.startReady()
	if got := testutil.ToFloat64(h.restorer.Metrics().Unfinished); got != 0 {
		t.Errorf("unfinished step records on the second restore = %v, want 0", got)
	}
	h.advance(10*time.Second, 1, 1)
	h.stop()
	if c, ok := h.customer("c-1"); !ok || c.Events != 1 {
		t.Errorf("c-1: %+v", c)
	}
	if got := h.triggersByCustomer(); len(got["c-1"]) != 1 || len(got) != 1 {
		t.Errorf("triggers %v, want one for c-1", keys(got))
	}
}

// TestChangelogResendsUnsentStepsAsCurrentValues: a step committed
// locally whose records never reached the broker (the process died first)
// kept only its keys in the outbox; the next start sends the keys' current
// values as one step, and a copy rebuilt from the changelog equals this
// one.
func TestChangelogResendsUnsentStepsAsCurrentValues(t *testing.T) {
	h := newHarness(t)
	h.changelog = changelogTopic
	h.start()
	h.publish(clickstream, "c-1", ev("e-1", "page_view", "c-1", 0, ""))
	h.waitFor("input applied", func() bool { return h.consumed() == 1 })
	h.stop()

	// Two steps the dead process committed but never sent: c-1 changed
	// twice, c-9 created then deleted.
	p := partitionOf("c-1")
	st, err := state.Open(filepath.Join(h.dir, h.stateDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, events := range []uint64{5, 7} {
		step := st.NewStep(p).WithChangelog()
		c, err := step.Customer("c-1")
		if err != nil {
			t.Fatal(err)
		}
		c.Events = events
		if events == 5 {
			c9, _ := step.Customer("c-9")
			c9.Events = 1
		} else {
			step.DeleteCustomer("c-9")
		}
		if err := step.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	unsent, err := st.ChangelogRows(p)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if len(unsent) != 6 || !unsent[0].KeyOnly {
		t.Fatalf("unsent rows %+v, want two key-only steps", unsent)
	}
	before := h.rows()
	endBefore := h.changelogEnd()

	h.startReady()
	// c-1, c-9's deletion and the step end; no other step writes here.
	h.waitFor("the resumed step on the changelog", func() bool { return h.changelogEnd()-endBefore >= 3 })
	h.stop()
	if got := h.changelogEnd() - endBefore; got != 3 {
		t.Errorf("the restart produced %d changelog records, want 3 (c-1, c-9's deletion, the step end)", got)
	}
	if rows := h.unsentRows(p); len(rows) != 0 {
		t.Errorf("rows left unacknowledged after a clean stop: %+v", rows)
	}
	h.sameRows("after sending the resumed step", before, h.rows())

	h.wipeState()
	h.startReady()
	h.stop()
	h.sameRows("rebuilt from the changelog", before, h.rows())
	if c, ok := h.customer("c-1"); !ok || c.Events != 7 {
		t.Errorf("c-1 rebuilt with %d events (present %v), want 7", c.Events, ok)
	}
	if _, ok := h.customer("c-9"); ok {
		t.Error("c-9 rebuilt, but its deletion was the last change")
	}
}

// unsentRows reads partition p's changelog outbox; the engine must be
// stopped.
func (h *harness) unsentRows(p int32) []state.ChangelogRow {
	h.t.Helper()
	st, err := state.Open(filepath.Join(h.dir, h.stateDir))
	if err != nil {
		h.t.Fatal(err)
	}
	defer st.Close()
	rows, err := st.ChangelogRows(p)
	if err != nil {
		h.t.Fatal(err)
	}
	return rows
}
