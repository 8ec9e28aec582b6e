package changelog_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spur-crm/spur/pkg/changelog"
	"github.com/spur-crm/spur/pkg/devbroker"
	"github.com/spur-crm/spur/pkg/ingest"
	"github.com/spur-crm/spur/pkg/state"
)

// TestRestoreOwnTailAndDivergence: after a crash, the records a copy
// produced but whose acknowledgement it never stored are recognised as its
// own (dropped from its changelog outbox, the rest re-sent); once another
// writer has written the partition, the local copy is rebuilt instead.
func TestRestoreOwnTailAndDivergence(t *testing.T) {
	br, err := devbroker.Start(devbroker.Config{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(br.Addr()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	const topic = "t.changelog"
	if _, err := ingest.EnsureTopics(ctx, kadm.NewClient(cl), ingest.TopicSpec{Inputs: []string{"in"}, Partitions: 2, Changelog: topic}, true); err != nil {
		t.Fatal(err)
	}
	st, err := state.Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := changelog.New(changelog.Config{Topic: topic, ClientOpts: []kgo.Opt{kgo.SeedBrokers(br.Addr())}}, st)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	restore := func(want changelog.Mode) changelog.Result {
		t.Helper()
		res, err := r.Restore(ctx, 1)
		t.Logf("restore %s took %s", res.Mode, res.Duration)
		if err != nil {
			t.Fatal(err)
		}
		if res.Mode != want {
			t.Fatalf("mode %s, want %s (%+v)", res.Mode, want, res)
		}
		return res
	}
	restore(changelog.ModeFull) // empty topic: checkpoint 0

	// A step of this copy: three changes and the step end.
	step := st.NewStep(1).WithChangelog()
	for _, id := range []string{"a", "b", "c"} {
		c, err := step.Customer(id)
		if err != nil {
			t.Fatal(err)
		}
		c.Events = 1
	}
	if err := step.Commit(); err != nil {
		t.Fatal(err)
	}
	rows := step.Mirrored() // with their values, as the worker sends them
	if len(rows) != 4 {
		t.Fatalf("rows %+v", rows)
	}
	writer, err := st.ChangelogWriter(1)
	if err != nil {
		t.Fatal(err)
	}
	produce := func(w []byte, rows ...state.ChangelogRow) {
		t.Helper()
		for _, row := range rows {
			if err := cl.ProduceSync(ctx, changelog.Record(topic, 1, w, row)).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Two of them reached the broker before the crash.
	produce(writer, rows[:2]...)
	if res := restore(changelog.ModeOwn); res.Records != 2 {
		t.Errorf("own records = %d, want 2", res.Records)
	}
	left, _ := st.ChangelogRows(1)
	if len(left) != 2 || left[0].Seq != rows[2].Seq || !left[1].StepEnd {
		t.Fatalf("rows left to send %+v, want the last two", left)
	}
	if n, err := st.CountKind(1, state.KindChangelog); err != nil || n != 1 {
		t.Errorf("the step's rest kept in %d outbox rows (%v), want 1", n, err)
	}
	restore(changelog.ModeNone) // nothing new on the broker
	if cp, _, _ := st.Checkpoint(1); cp.Offset != 2 {
		t.Errorf("checkpoint %d, want 2", cp.Offset)
	}
	// The worker starts: the rows kept their keys only, so they become one
	// step of current values under new sequence numbers.
	left, err = st.ResumeChangelog(1)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 2 || left[0].Seq != rows[3].Seq+1 || string(left[0].Key) != string(rows[2].Key) || len(left[0].Value) == 0 || !left[1].StepEnd {
		t.Fatalf("resumed rows %+v, want c's current value and a step end from seq %d", left, rows[3].Seq+1)
	}

	// The rest arrives (re-sent), then another copy writes a step: this
	// copy's unacknowledged row no longer matches the tail.
	produce(writer, left[0])
	other := []byte("another!")
	produce(other,
		state.ChangelogRow{Seq: 7, Change: state.Change{Key: state.Key(1, state.KindCustomer, []byte("c")), Delete: true}},
		state.ChangelogRow{Seq: 8, Change: state.Change{StepEnd: true}})
	if res := restore(changelog.ModeFull); res.Records != 5 || res.Applied != 4 {
		t.Errorf("full restore read %d records and applied %d, want 5 and 4", res.Records, res.Applied)
	}
	if rows, _ := st.ChangelogRows(1); len(rows) != 0 {
		t.Errorf("diverged rows kept: %+v", rows)
	}
	var c state.Customer
	for id, want := range map[string]bool{"a": true, "b": true, "c": false} {
		if ok, err := st.Customer(1, id, &c); err != nil || ok != want {
			t.Errorf("customer %s present = %v (%v), want %v", id, ok, err, want)
		}
	}
	if w, _ := st.ChangelogWriter(1); string(w) == string(writer) {
		t.Error("a rebuilt copy kept its writer id")
	}
}
