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
	if cr := byKey[string(Key(3, KindCustomer, []byte("c-1")))]; cr.Delete || len(cr.Value) == 0 {
		t.Errorf("customer row mirrored as %+v", cr)
	}

	// A step whose only writes are local (acknowledgements) mirrors nothing.
	st = s.NewStep(3).WithChangelog()
	cp := Checkpoint{Offset: 4, At: time.Unix(100, 0).UTC()}
	if err := st.AckChangelog([]uint64{0, 1, 2, 3}, cp); err != nil {
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

	// MirrorKeys writes current values and deletions for absent keys.
	gone := Key(1, KindCustomer, []byte("zz"))
	if err := dst.MirrorKeys(1, [][]byte{Key(1, KindCustomer, []byte("a")), gone}, Checkpoint{Offset: 9}); err != nil {
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
