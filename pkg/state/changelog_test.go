package state

import (
	"bytes"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// rows reads every mirrored row of a partition.
func mirroredRows(t *testing.T, s *Store, part int32) map[string]string {
	t.Helper()
	lo, hi := PartitionBounds(part)
	it, err := s.DB().NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	out := map[string]string{}
	for it.First(); it.Valid(); it.Next() {
		if Mirrored(it.Key()) {
			out[string(it.Key())] = string(it.Value())
		}
	}
	return out
}

func TestStepMirrorsWritesLastPerKeyAndEndsTheStep(t *testing.T) {
	s := openMem(t)
	st := s.NewStep(3).WithChangelog()
	c, err := st.Customer("c-1")
	if err != nil {
		t.Fatal(err)
	}
	c.Events = 1
	if err := st.SetOffset("in", 7); err != nil {
		t.Fatal(err)
	}
	timerKey := Key(3, KindTimer, []byte("x"))
	st.Batch().Set(timerKey, []byte("armed"), nil)
	st.Batch().Delete(timerKey, nil) // cancelled in the same step: one delete
	commit(t, st)

	rows, err := s.ChangelogRows(3)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 {
		t.Fatalf("rows = %+v, want offset, timer delete, customer, step end", rows)
	}
	if !rows[3].StepEnd {
		t.Errorf("last row %+v is not the step end", rows[3])
	}
	byKey := map[string]Change{}
	for i, r := range rows {
		if r.Seq != uint64(i) {
			t.Errorf("row %d has seq %d", i, r.Seq)
		}
		byKey[string(r.Key)] = r.Change
	}
	if d := byKey[string(timerKey)]; !d.Delete {
		t.Errorf("timer row mirrored as %+v, want its deletion", d)
	}
	// The outbox keeps the set's key only; Mirrored hands the producer its
	// value.
	custKey := Key(3, KindCustomer, []byte("c-1"))
	if cr := byKey[string(custKey)]; cr.Delete || len(cr.Value) != 0 || !rows[2].KeyOnly {
		t.Errorf("customer row stored as %+v, want its key only", rows[2])
	}
	m := st.Mirrored()
	if len(m) != 4 || string(m[2].Key) != string(custKey) || len(m[2].Value) == 0 || m[2].KeyOnly || m[2].Seq != 2 {
		t.Errorf("mirrored rows %+v, want the customer's value at seq 2", m)
	}

	// The step's records are one outbox row, which goes once its step end
	// is acknowledged: not before.
	if n, err := s.CountKind(3, KindChangelog); err != nil || n != 1 {
		t.Errorf("the step stored %d outbox rows (%v), want 1", n, err)
	}
	for i, r := range rows {
		if r.Row != 0 || r.RowEnd != (i == 3) {
			t.Errorf("record %d in row %d (end %v), want row 0, ending at the step end", i, r.Row, r.RowEnd)
		}
	}
	st = s.NewStep(3).WithChangelog()
	if err := st.AckChangelog(rows[:3], Checkpoint{Offset: 3}); err == nil {
		t.Error("acknowledging a step without its end deleted its row")
	}
	st.Abort()

	// A step whose only writes are local (acknowledgements) mirrors nothing.
	st = s.NewStep(3).WithChangelog()
	cp := Checkpoint{Offset: 4, At: time.Unix(100, 0).UTC()}
	if err := st.AckChangelog(rows, cp); err != nil {
		t.Fatal(err)
	}
	commit(t, st)
	if rows, _ := s.ChangelogRows(3); len(rows) != 0 {
		t.Fatalf("rows after ack = %+v", rows)
	}
	if got, ok, err := s.Checkpoint(3); err != nil || !ok || got != cp {
		t.Fatalf("checkpoint = %+v %v %v, want %+v", got, ok, err, cp)
	}
	// Sequences continue after acknowledged rows.
	st = s.NewStep(3).WithChangelog()
	st.SetOffset("in", 8)
	commit(t, st)
	if rows, _ := s.ChangelogRows(3); len(rows) != 2 || rows[0].Seq != 4 {
		t.Fatalf("rows = %+v, want seqs from 4", rows)
	}
}

func TestRestoreSnapshotAndWipe(t *testing.T) {
	src := openMem(t)
	st := src.NewStep(1)
	for _, id := range []string{"a", "b", "c"} {
		c, _ := st.Customer(id)
		c.Events = 2
	}
	st.SetOffset("in", 3)
	commit(t, st)
	if _, err := src.Snapshot(1, Checkpoint{}); err != nil {
		t.Fatal(err)
	}
	rows, err := src.ChangelogRows(1)
	if err != nil {
		t.Fatal(err)
	}

	dst := openMem(t)
	r := dst.NewRestore(1)
	for _, row := range rows {
		if row.StepEnd {
			continue
		}
		if err := r.Apply(row.Change); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Commit(Checkpoint{Offset: int64(len(rows))}); err != nil {
		t.Fatal(err)
	}
	r.Close()
	want, got := mirroredRows(t, src, 1), mirroredRows(t, dst, 1)
	if len(want) != 4 || len(got) != len(want) {
		t.Fatalf("restored %d rows, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("row %q = %q, want %q", k, got[k], v)
		}
	}
	if err := dst.NewRestore(1).Apply(Change{Key: Key(2, KindCustomer, []byte("x"))}); err == nil {
		t.Error("a row of another partition was accepted")
	}
	if err := dst.NewRestore(1).Apply(Change{Key: Key(1, KindLocal, []byte("x"))}); err == nil {
		t.Error("a local row was accepted")
	}

	// MirrorKeys writes current values and deletions for absent keys, each
	// key once.
	gone := Key(1, KindCustomer, []byte("zz"))
	if err := dst.MirrorKeys(1, [][]byte{Key(1, KindCustomer, []byte("a")), gone, Key(1, KindCustomer, []byte("a"))}, Checkpoint{Offset: 9}); err != nil {
		t.Fatal(err)
	}
	comp, _ := dst.ChangelogRows(1)
	if len(comp) != 3 || comp[0].Delete || !comp[1].Delete || !bytes.Equal(comp[1].Key, gone) || !comp[2].StepEnd {
		t.Fatalf("compensation rows = %+v", comp)
	}

	if err := dst.WipePartition(1); err != nil {
		t.Fatal(err)
	}
	if has, err := dst.HasState(1); err != nil || has {
		t.Fatalf("HasState after wipe = %v, %v", has, err)
	}
	if _, ok, _ := dst.Checkpoint(1); ok {
		t.Error("checkpoint survived the wipe")
	}
}

// TestResumeChangelogSupersedesKeyOnlyRows: the rows of steps whose values
// were kept in memory only become one step of the keys' current values,
// under new sequence numbers, stored in place of the old rows; rows that
// carry their values already are returned as they are.
func TestResumeChangelogSupersedesKeyOnlyRows(t *testing.T) {
	s := openMem(t)
	st := s.NewStep(2).WithChangelog()
	for _, id := range []string{"a", "b"} {
		c, _ := st.Customer(id)
		c.Events = 1
	}
	commit(t, st)
	st = s.NewStep(2).WithChangelog()
	st.DeleteCustomer("b")
	c, _ := st.Customer("a")
	c.Events = 5
	commit(t, st)
	old, err := s.ChangelogRows(2)
	if err != nil {
		t.Fatal(err)
	}
	if len(old) != 6 || !old[0].KeyOnly || !old[4].Delete {
		t.Fatalf("rows before resuming = %+v, want two key-only steps", old)
	}

	rows, err := s.ResumeChangelog(2)
	if err != nil {
		t.Fatal(err)
	}
	keyA, keyB := Key(2, KindCustomer, []byte("a")), Key(2, KindCustomer, []byte("b"))
	if len(rows) != 3 || !rows[2].StepEnd {
		t.Fatalf("resumed rows = %+v, want a, b and one step end", rows)
	}
	for i, r := range rows {
		if want := old[len(old)-1].Seq + 1 + uint64(i); r.Seq != want {
			t.Errorf("resumed row %d has seq %d, want %d", i, r.Seq, want)
		}
	}
	// The keys come in the order of their first records (a step writes its
	// customers in map order).
	byKey := map[string]ChangelogRow{}
	for _, r := range rows[:2] {
		byKey[string(r.Key)] = r
	}
	var got Customer
	if ra := byKey[string(keyA)]; ra.Delete || got.UnmarshalBinary(ra.Value) != nil || got.Events != 5 {
		t.Errorf("row of a = %+v (events %d), want its current record, 5 events", ra, got.Events)
	}
	if rb, ok := byKey[string(keyB)]; !ok || !rb.Delete {
		t.Errorf("row of b = %+v, want its deletion", rb)
	}
	stored, _ := s.ChangelogRows(2)
	if len(stored) != len(rows) {
		t.Fatalf("stored rows = %+v, want the resumed step in place of the old rows", stored)
	}
	for i := range rows {
		if stored[i].Seq != rows[i].Seq || stored[i].KeyOnly || !bytes.Equal(stored[i].Value, rows[i].Value) {
			t.Errorf("stored row %d = %+v, want %+v", i, stored[i], rows[i])
		}
	}
	// Nothing key-only is left: a second start sends the same rows.
	again, err := s.ResumeChangelog(2)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != len(rows) || again[0].Seq != rows[0].Seq {
		t.Errorf("second resume = %+v, want the stored rows unchanged", again)
	}
	// A step now keeps keys only again; resuming covers both steps' keys.
	st = s.NewStep(2).WithChangelog()
	c, _ = st.Customer("c")
	c.Events = 1
	commit(t, st)
	rows, err = s.ResumeChangelog(2)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 || !bytes.Equal(rows[2].Key, Key(2, KindCustomer, []byte("c"))) || !rows[3].StepEnd {
		t.Fatalf("resumed rows = %+v, want a and b's deletion, c and a step end", rows)
	}
	for _, r := range rows[:2] {
		if bytes.Equal(r.Key, keyB) != r.Delete {
			t.Errorf("resumed row %+v, want a's record and b's deletion", r)
		}
	}
}
