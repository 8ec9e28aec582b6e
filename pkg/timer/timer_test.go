package timer

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/spur-crm/spur/pkg/state"
)

func openDB(t testing.TB) *pebble.DB {
	t.Helper()
	s, err := state.Open("db", state.WithFS(vfs.NewMem()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s.DB()
}

// apply runs fn on a fresh batch and commits it.
func apply(t testing.TB, db *pebble.DB, fn func(b *pebble.Batch) error) {
	t.Helper()
	b := db.NewBatch()
	defer b.Close()
	if err := fn(b); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
}

func schedule(t testing.TB, db *pebble.DB, part int32, ts ...Timer) {
	t.Helper()
	apply(t, db, func(b *pebble.Batch) error {
		for _, tm := range ts {
			if err := Schedule(b, part, tm); err != nil {
				return err
			}
		}
		return nil
	})
}

var t0 = time.Date(2026, 11, 23, 5, 0, 0, 0, time.UTC)

// deadlines spans the whole int64 millisecond range, around the epoch in
// both directions.
var deadlines = []time.Time{
	time.UnixMilli(math.MinInt64).UTC(),
	time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
	time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC),
	time.UnixMilli(-2).UTC(),
	time.UnixMilli(-1).UTC(), // 1969-12-31T23:59:59.999Z
	time.UnixMilli(0).UTC(),
	time.UnixMilli(1).UTC(),
	time.UnixMilli(255).UTC(),
	time.UnixMilli(256).UTC(),
	t0,
	t0.Add(time.Millisecond),
	time.Date(2262, 4, 12, 0, 0, 0, 0, time.UTC), // beyond UnixNano's range
	time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC),
	time.UnixMilli(math.MaxInt64 - 1).UTC(),
	time.UnixMilli(math.MaxInt64).UTC(),
}

func TestKeyOrderEqualsDeadlineOrder(t *testing.T) {
	if !slices.IsSortedFunc(deadlines, time.Time.Compare) {
		t.Fatal("test table is not in time order")
	}
	for i, a := range deadlines {
		for j, b := range deadlines {
			ka, kb := Key(1, a, "z"), Key(1, b, "a")
			got := bytes.Compare(ka, kb)
			want := a.Compare(b)
			if i == j {
				want = 1 // same deadline: id "z" sorts after "a"
			}
			if got != want {
				t.Errorf("Compare(Key(%s), Key(%s)) = %d, want %d", a, b, got, want)
			}
		}
	}
}

func TestKeyRoundTrip(t *testing.T) {
	local := time.FixedZone("UTC+5", 5*3600)
	tests := []struct {
		in, want time.Time
	}{
		{t0, t0},
		{t0.In(local), t0},                   // decoded in UTC
		{t0.Add(999 * time.Microsecond), t0}, // truncated to ms
		{time.Unix(0, -500_000), time.UnixMilli(-1).UTC()}, // floor before 1970
	}
	for _, d := range deadlines {
		tests = append(tests, struct{ in, want time.Time }{d, d})
	}
	for _, tc := range tests {
		k := Key(7, tc.in, "rule/c-1")
		got, err := parse(k, []byte("p"))
		if err != nil {
			t.Fatal(err)
		}
		if !got.Deadline.Equal(tc.want) || got.Deadline.Location() != time.UTC {
			t.Errorf("deadline %s decoded as %s, want %s UTC", tc.in, got.Deadline, tc.want)
		}
		if got.ID != "rule/c-1" || string(got.Payload) != "p" {
			t.Errorf("id/payload = %q/%q", got.ID, got.Payload)
		}
		lo, hi := state.Bounds(7, state.KindTimer)
		if bytes.Compare(k, lo) < 0 || bytes.Compare(k, hi) >= 0 {
			t.Errorf("Key(%s) outside the partition's timer bounds", tc.in)
		}
	}
}

// TestScanDue scans from the first timer (from zero) over deadlines that
// span the representable range.
func TestScanDue(t *testing.T) {
	db := openDB(t)
	all := []Timer{
		{Deadline: t0.Add(-time.Hour), ID: "b", Payload: []byte("1")},
		{Deadline: t0.Add(-time.Hour), ID: "a", Payload: []byte("0")},
		{Deadline: time.Date(1969, 7, 20, 20, 17, 0, 0, time.UTC), ID: "moon", Payload: []byte("-1")},
		{Deadline: t0.Add(-time.Millisecond), ID: "c", Payload: []byte("2")},
		{Deadline: t0, ID: "now", Payload: []byte("3")},
		{Deadline: t0.Add(time.Millisecond), ID: "later", Payload: []byte("4")},
		{Deadline: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), ID: "far", Payload: []byte("5")},
	}
	schedule(t, db, 3, all...)
	ids := func(ts []Timer) []string {
		var out []string
		for _, tm := range ts {
			out = append(out, tm.ID)
		}
		return out
	}
	moon := time.Date(1969, 7, 20, 20, 17, 0, 0, time.UTC)
	tests := []struct {
		name  string
		now   time.Time
		limit int
		want  []string
		next  time.Time
	}{
		{"before all", time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC), 100, nil, moon},
		{"deadline equal to now is due", t0, 100, []string{"moon", "a", "b", "c", "now"}, t0.Add(time.Millisecond)},
		{"sub-millisecond after now", t0.Add(999 * time.Microsecond), 100, []string{"moon", "a", "b", "c", "now"}, t0.Add(time.Millisecond)},
		{"one millisecond before", t0.Add(-time.Millisecond), 100, []string{"moon", "a", "b", "c"}, t0},
		// A due timer the limit leaves out is the next deadline.
		{"limit", t0, 2, []string{"moon", "a"}, t0.Add(-time.Hour)},
		{"limit one", t0, 1, []string{"moon"}, t0.Add(-time.Hour)},
		{"limit zero", t0, 0, nil, moon},
		{"far future", time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), 100, []string{"moon", "a", "b", "c", "now", "later", "far"}, Never},
		{"last millisecond", time.UnixMilli(math.MaxInt64), 100, []string{"moon", "a", "b", "c", "now", "later", "far"}, Never},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, next, err := Scan(db, 3, time.Time{}, tc.now, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ids(got), tc.want) {
				t.Fatalf("Scan(%s, %d) due %v, want %v", tc.now, tc.limit, ids(got), tc.want)
			}
			for i := 1; i < len(got); i++ {
				if got[i].Deadline.Before(got[i-1].Deadline) {
					t.Fatalf("Scan due out of order: %s before %s", got[i-1].Deadline, got[i].Deadline)
				}
			}
			if !next.Equal(tc.next) {
				t.Fatalf("Scan(%s, %d) next %s, want %s", tc.now, tc.limit, next, tc.next)
			}
		})
	}
	// Payloads and deadlines survive, and payloads are copies.
	got, _, _ := Scan(db, 3, time.Time{}, t0, 100)
	if len(got) != 5 {
		t.Fatalf("Scan due %v, want 5 timers", ids(got))
	}
	want := map[string]Timer{}
	for _, tm := range all {
		want[tm.ID] = tm
	}
	for _, tm := range got {
		w := want[tm.ID]
		if !tm.Deadline.Equal(w.Deadline) || !bytes.Equal(tm.Payload, w.Payload) {
			t.Errorf("Scan returned %+v, want %+v", tm, w)
		}
	}
	got[0].Payload[0] = 'X'
	again, _, _ := Scan(db, 3, time.Time{}, t0, 1)
	if len(again) != 1 || string(again[0].Payload) != "-1" {
		t.Fatalf("Scan due %+v, want moon with payload -1: a returned payload shares memory with the database", again)
	}
}

func TestCancel(t *testing.T) {
	db := openDB(t)
	schedule(t, db, 0,
		Timer{Deadline: t0, ID: "a"},
		Timer{Deadline: t0, ID: "b"},
		Timer{Deadline: t0.Add(time.Second), ID: "a"},
	)
	apply(t, db, func(b *pebble.Batch) error {
		if err := Cancel(b, 0, t0, "a"); err != nil {
			return err
		}
		// Unknown id, unknown deadline: not an error.
		if err := Cancel(b, 0, t0, "zzz"); err != nil {
			return err
		}
		return Cancel(b, 0, t0.Add(time.Hour), "b")
	})
	got, next, err := Scan(db, 0, time.Time{}, t0.Add(time.Hour), 10)
	if err != nil {
		t.Fatal(err)
	}
	if !next.Equal(Never) {
		t.Fatalf("Scan after cancel: next %s, want Never", next)
	}
	want := []Timer{
		{Deadline: t0, ID: "b", Payload: []byte{}},
		{Deadline: t0.Add(time.Second), ID: "a", Payload: []byte{}},
	}
	if len(got) != len(want) {
		t.Fatalf("Scan after cancel: due %+v, want %+v", got, want)
	}
	for i := range want {
		if !got[i].Deadline.Equal(want[i].Deadline) || got[i].ID != want[i].ID {
			t.Fatalf("Scan after cancel: due %+v, want %+v", got, want)
		}
	}
	// A deadline with sub-millisecond digits cancels the row it scheduled.
	d := t0.Add(1500 * time.Microsecond)
	schedule(t, db, 0, Timer{Deadline: d, ID: "sub"})
	apply(t, db, func(b *pebble.Batch) error { return Cancel(b, 0, d, "sub") })
	if n, _ := Count(db, 0); n != 2 {
		t.Fatalf("Count = %d after cancelling a sub-millisecond deadline, want 2", n)
	}
}

func TestScheduleOverwrites(t *testing.T) {
	db := openDB(t)
	schedule(t, db, 0, Timer{Deadline: t0, ID: "a", Payload: []byte("old")})
	schedule(t, db, 0, Timer{Deadline: t0, ID: "a", Payload: []byte("new")})
	got, _, err := Scan(db, 0, time.Time{}, t0, 10)
	if err != nil || len(got) != 1 || string(got[0].Payload) != "new" {
		t.Fatalf("Scan due %+v, %v; want the one rewritten timer", got, err)
	}
}

// TestScanNextAndCount reads the first deadline as the engine does when it
// does not know it: a scan with limit zero, which returns no timer.
func TestScanNextAndCount(t *testing.T) {
	db := openDB(t)
	if due, next, err := Scan(db, 0, time.Time{}, time.Time{}, 0); len(due) != 0 || !next.Equal(Never) || err != nil {
		t.Fatalf("Scan on no timers = %+v, %s, %v; want none, Never", due, next, err)
	}
	if n, err := Count(db, 0); n != 0 || err != nil {
		t.Fatalf("Count on no timers = %d, %v", n, err)
	}
	schedule(t, db, 0,
		Timer{Deadline: t0.Add(time.Minute), ID: "x"},
		Timer{Deadline: t0.Add(-time.Minute), ID: "y"},
		Timer{Deadline: t0, ID: "z"},
	)
	due, next, err := Scan(db, 0, time.Time{}, time.Time{}, 0)
	if err != nil || len(due) != 0 || !next.Equal(t0.Add(-time.Minute)) {
		t.Fatalf("Scan = %+v, %s, %v; want none, %s", due, next, err, t0.Add(-time.Minute))
	}
	if n, err := Count(db, 0); n != 3 || err != nil {
		t.Fatalf("Count = %d, %v; want 3", n, err)
	}
	apply(t, db, func(b *pebble.Batch) error { return Cancel(b, 0, t0.Add(-time.Minute), "y") })
	if _, next, _ := Scan(db, 0, time.Time{}, time.Time{}, 0); !next.Equal(t0) {
		t.Fatalf("Scan after cancelling the earliest: next %s, want %s", next, t0)
	}
	if n, _ := Count(db, 0); n != 2 {
		t.Fatalf("Count after cancel = %d, want 2", n)
	}
}

func TestPartitionIsolation(t *testing.T) {
	db := openDB(t)
	schedule(t, db, 1, Timer{Deadline: t0.Add(time.Second), ID: "p1"})
	schedule(t, db, 2, Timer{Deadline: t0, ID: "p2-a"}, Timer{Deadline: t0.Add(2 * time.Second), ID: "p2-b"})
	schedule(t, db, math.MaxInt32, Timer{Deadline: t0.Add(-time.Hour), ID: "max"})
	// Rows of other kinds in the same partitions, sorting before ('c') and
	// after ('x') the timer kind, must not be read as timers.
	for _, p := range []int32{1, 2} {
		for _, kind := range []byte{state.KindCustomer, state.KindOffset, state.KindOutbox, state.KindMeta} {
			if err := db.Set(state.Key(p, kind, []byte("row")), []byte("v"), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	far := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		part  int32
		ids   []string
		first time.Time
	}{
		{0, nil, Never},
		{1, []string{"p1"}, t0.Add(time.Second)},
		{2, []string{"p2-a", "p2-b"}, t0},
		{3, nil, Never},
		{math.MaxInt32, []string{"max"}, t0.Add(-time.Hour)},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.part), func(t *testing.T) {
			due, next, err := Scan(db, tc.part, time.Time{}, far, 100)
			if err != nil {
				t.Fatal(err)
			}
			if !next.Equal(Never) {
				t.Fatalf("Scan with all due: next %s, want Never", next)
			}
			var ids []string
			for _, tm := range due {
				ids = append(ids, tm.ID)
			}
			if !reflect.DeepEqual(ids, tc.ids) {
				t.Fatalf("Scan due %v, want %v", ids, tc.ids)
			}
			if n, err := Count(db, tc.part); err != nil || n != len(tc.ids) {
				t.Fatalf("Count = %d, %v; want %d", n, err, len(tc.ids))
			}
			if _, first, err := Scan(db, tc.part, time.Time{}, time.Time{}, 0); err != nil || !first.Equal(tc.first) {
				t.Fatalf("Scan first deadline = %s, %v; want %s", first, err, tc.first)
			}
		})
	}
}

func TestIndexedBatchSeesUncommittedTimers(t *testing.T) {
	// The engine schedules and fires in one step; a pebble.Reader that is an
	// indexed batch sees the step's own rows.
	db := openDB(t)
	b := db.NewIndexedBatch()
	defer b.Close()
	if err := Schedule(b, 0, Timer{Deadline: t0, ID: "a"}); err != nil {
		t.Fatal(err)
	}
	if got, _, err := Scan(b, 0, time.Time{}, t0, 10); err != nil || len(got) != 1 {
		t.Fatalf("Scan on the batch = %+v, %v; want 1 timer", got, err)
	}
	if got, next, err := Scan(db, 0, time.Time{}, t0, 10); err != nil || len(got) != 0 || !next.Equal(Never) {
		t.Fatalf("Scan on the database before commit = %+v, %s, %v; want none, Never", got, next, err)
	}
}

func TestCorruptTimerKey(t *testing.T) {
	db := openDB(t)
	if err := db.Set(state.Key(0, state.KindTimer, []byte{1, 2, 3}), nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Scan(db, 0, time.Time{}, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), 10); err == nil {
		t.Fatal("Scan for due timers over a 3-byte timer key succeeded")
	}
	if _, _, err := Scan(db, 0, time.Time{}, time.Time{}, 0); err == nil {
		t.Fatal("Scan for the first deadline over a 3-byte timer key succeeded")
	}
}

func TestWait(t *testing.T) {
	tests := []struct {
		name     string
		deadline time.Time
		max      time.Duration
		want     time.Duration
	}{
		{"past", t0.Add(-time.Second), time.Minute, 0},
		{"far past", time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), time.Minute, 0},
		{"now", t0, time.Minute, 0},
		{"within max", t0.Add(3 * time.Second), time.Minute, 3 * time.Second},
		{"exactly max", t0.Add(time.Minute), time.Minute, time.Minute},
		{"beyond max", t0.Add(time.Hour), time.Minute, time.Minute},
		{"beyond Duration's range", time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), time.Minute, time.Minute},
		{"zero max", t0.Add(time.Second), 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Wait(t0, tc.deadline, tc.max); got != tc.want {
				t.Fatalf("Wait = %s, want %s", got, tc.want)
			}
		})
	}
}

// BenchmarkScheduleFire schedules timersPerOp timers in one batch, commits,
// then reads them back with Scan and cancels them in a second batch, as the
// engine does when they fire. ns/timer is the cost of one timer's life.
func BenchmarkScheduleFire(b *testing.B) {
	const timersPerOp = 1000
	db := openDB(b)
	ts := make([]Timer, timersPerOp)
	for i := range ts {
		ts[i] = Timer{
			Deadline: t0.Add(time.Duration(i%97) * time.Millisecond),
			ID:       fmt.Sprintf("cart_abandonment\x00customer-%06d", i),
			Payload:  []byte("evt-000000000031"),
		}
	}
	now := t0.Add(time.Second)
	b.ReportAllocs()
	for b.Loop() {
		sb := db.NewBatch()
		for _, tm := range ts {
			if err := Schedule(sb, 0, tm); err != nil {
				b.Fatal(err)
			}
		}
		if err := sb.Commit(pebble.NoSync); err != nil {
			b.Fatal(err)
		}
		sb.Close()
		due, _, err := Scan(db, 0, time.Time{}, now, timersPerOp)
		if err != nil {
			b.Fatal(err)
		}
		if len(due) != timersPerOp {
			b.Fatalf("Scan returned %d timers, want %d", len(due), timersPerOp)
		}
		cb := db.NewBatch()
		for _, tm := range due {
			if err := Cancel(cb, 0, tm.Deadline, tm.ID); err != nil {
				b.Fatal(err)
			}
		}
		if err := cb.Commit(pebble.NoSync); err != nil {
			b.Fatal(err)
		}
		cb.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*timersPerOp), "ns/timer")
}

func TestScan(t *testing.T) {
	db := openDB(t)
	schedule(t, db, 1,
		Timer{Deadline: t0, ID: "a"},
		Timer{Deadline: t0.Add(time.Second), ID: "b"},
		Timer{Deadline: t0.Add(time.Second), ID: "c"},
		Timer{Deadline: t0.Add(time.Minute), ID: "d"},
	)
	schedule(t, db, 2, Timer{Deadline: t0.Add(-time.Hour), ID: "other partition"})
	ids := func(ts []Timer) []string {
		var out []string
		for _, tm := range ts {
			out = append(out, tm.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		from, now time.Time
		limit     int
		due       []string
		next      time.Time
	}{
		{"first deadline only", time.Time{}, time.Time{}, 0, nil, t0},
		{"due up to now", time.Time{}, t0.Add(time.Second), 10, []string{"a", "b", "c"}, t0.Add(time.Minute)},
		{"limit", time.Time{}, t0.Add(time.Hour), 2, []string{"a", "b"}, t0.Add(time.Second)},
		{"from skips earlier rows", t0.Add(time.Second), t0.Add(time.Second), 10, []string{"b", "c"}, t0.Add(time.Minute)},
		{"from skips earlier rows, none due", t0.Add(time.Second), t0, 10, nil, t0.Add(time.Second)},
		// Deadlines are kept to the millisecond: from bounds by its own.
		{"from includes its millisecond", t0.Add(999 * time.Microsecond), t0.Add(time.Second), 10, []string{"a", "b", "c"}, t0.Add(time.Minute)},
		{"nothing due", t0.Add(time.Millisecond), t0.Add(time.Millisecond), 10, nil, t0.Add(time.Second)},
		{"none left", t0.Add(time.Hour), t0.Add(2 * time.Hour), 10, nil, Never},
	} {
		t.Run(tc.name, func(t *testing.T) {
			due, next, err := Scan(db, 1, tc.from, tc.now, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(due); !slices.Equal(got, tc.due) {
				t.Errorf("due %v, want %v", got, tc.due)
			}
			if !next.Equal(tc.next) {
				t.Errorf("next %v, want %v", next, tc.next)
			}
		})
	}
	// A cancelled timer is gone from the scan.
	apply(t, db, func(b *pebble.Batch) error { return Cancel(b, 1, t0, "a") })
	if _, next, err := Scan(db, 1, time.Time{}, time.Time{}, 0); err != nil || !next.Equal(t0.Add(time.Second)) {
		t.Errorf("after cancelling a: next %v, %v; want %v", next, err, t0.Add(time.Second))
	}
}

// TestScanSkipsTombstones fires timers as the engine does, deleting their
// rows, and checks that the deletion tombstones left behind are neither due
// nor the next deadline, whether the scan starts before them or past them.
func TestScanSkipsTombstones(t *testing.T) {
	db := openDB(t)
	var fired []Timer
	for i := range 100 {
		fired = append(fired, Timer{Deadline: t0.Add(time.Duration(i) * time.Millisecond), ID: fmt.Sprint("fired-", i)})
	}
	live := Timer{Deadline: t0.Add(time.Second), ID: "live"}
	schedule(t, db, 0, append(fired, live)...)
	apply(t, db, func(b *pebble.Batch) error {
		for _, tm := range fired {
			if err := Cancel(b, 0, tm.Deadline, tm.ID); err != nil {
				return err
			}
		}
		return nil
	})
	for _, from := range []time.Time{{}, t0, t0.Add(50 * time.Millisecond), live.Deadline} {
		due, next, err := Scan(db, 0, from, t0.Add(time.Hour), 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(due) != 1 || due[0].ID != "live" || !next.Equal(Never) {
			t.Errorf("Scan from %s: due %+v, next %s; want only live, Never", from, due, next)
		}
		if _, next, err := Scan(db, 0, from, time.Time{}, 0); err != nil || !next.Equal(live.Deadline) {
			t.Errorf("Scan from %s: next %s, %v; want %s", from, next, err, live.Deadline)
		}
	}
}
