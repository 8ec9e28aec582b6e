package changelog_test

import (
	"bytes"
	"testing"

	"github.com/spur-crm/spur/pkg/changelog"
	"github.com/spur-crm/spur/pkg/state"
)

// TestRecordRoundTrip: what Record writes, Parse and RecordSeq read back,
// for a set, a deletion and a step end.
func TestRecordRoundTrip(t *testing.T) {
	writer := []byte("writer-8")
	key := state.Key(3, state.KindCustomer, []byte("c-1"))
	for _, row := range []state.ChangelogRow{
		{Seq: 41, Change: state.Change{Key: key, Value: []byte("v")}},
		{Seq: 42, Change: state.Change{Key: key, Delete: true}},
		{Seq: 1 << 40, Change: state.Change{StepEnd: true}},
	} {
		rec := changelog.Record("t", 3, writer, row)
		if seq, ok := changelog.RecordSeq(rec); !ok || seq != row.Seq {
			t.Errorf("RecordSeq = %d, %v; want %d", seq, ok, row.Seq)
		}
		e, err := changelog.Parse(rec)
		if err != nil {
			t.Fatalf("seq %d: %v", row.Seq, err)
		}
		if e.Seq != row.Seq || !bytes.Equal(e.Writer, writer) || e.StepEnd != row.StepEnd || e.Delete != row.Delete ||
			!row.StepEnd && (!bytes.Equal(e.Key, row.Key) || !bytes.Equal(e.Value, row.Value)) {
			t.Errorf("parsed %+v, want %+v", e, row)
		}
		if rec.Partition != 3 || rec.Topic != "t" || (row.Delete && rec.Value != nil) {
			t.Errorf("record %+v", rec)
		}
	}
}
