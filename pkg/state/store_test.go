package state

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

func openMem(t testing.TB) *Store {
	t.Helper()
	s, err := Open("db", WithFS(vfs.NewMem()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func commit(t testing.TB, st *Step) {
	t.Helper()
	if err := st.Commit(); err != nil {
		t.Fatal(err)
	}
}

func readCustomer(t testing.TB, s *Store, part int32, id string) (Customer, bool) {
	t.Helper()
	var c Customer
	ok, err := s.Customer(part, id, &c)
	if err != nil {
		t.Fatal(err)
	}
	return c, ok
}

func TestOffsetsRoundTrip(t *testing.T) {
	s := openMem(t)
	if got, err := s.Offsets(0); err != nil || len(got) != 0 {
		t.Fatalf("fresh store Offsets = %v, %v; want empty", got, err)
	}
	st := s.NewStep(0)
	for topic, off := range map[string]int64{"shop.clickstream": 42, "shop.orders": 0, "big": math.MaxInt64} {
		if err := st.SetOffset(topic, off); err != nil {
			t.Fatal(err)
		}
	}
	commit(t, st)
	want := map[string]int64{"shop.clickstream": 42, "shop.orders": 0, "big": math.MaxInt64}
	if got, err := s.Offsets(0); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Offsets = %v, %v; want %v", got, err, want)
	}

	// A later step moves one topic on and leaves the others.
	st = s.NewStep(0)
	if err := st.SetOffset("shop.clickstream", 43); err != nil {
		t.Fatal(err)
	}
	commit(t, st)
	want["shop.clickstream"] = 43
	if got, err := s.Offsets(0); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Offsets = %v, %v; want %v", got, err, want)
	}
}

func TestOffsetsCorrupt(t *testing.T) {
	s := openMem(t)
	if err := s.DB().Set(Key(3, KindOffset, []byte("t")), []byte{1, 2, 3}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Offsets(3); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Offsets with a 3-byte row = %v, want ErrCorrupt", err)
	}
}

func TestStepCachesCustomer(t *testing.T) {
	s := openMem(t)
	st := s.NewStep(1)
	if !st.Empty() {
		t.Fatal("new step is not empty")
	}
	c, err := st.Customer("c-1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*c, Customer{}) {
		t.Fatalf("unseen customer = %+v, want zero", *c)
	}
	c.Events = 1
	c.AddToCart(CartItem{SKU: "sku-1", Price: 10, Qty: 1})
	again, err := st.Customer("c-1")
	if err != nil {
		t.Fatal(err)
	}
	if again != c {
		t.Fatal("second Customer call in a step returned a different record")
	}
	if st.Empty() {
		t.Fatal("step with a loaded customer reports Empty")
	}
	// Nothing is visible before Commit.
	if _, ok := readCustomer(t, s, 1, "c-1"); ok {
		t.Fatal("customer visible before Commit")
	}
	// Mutations after the last Customer call are still written.
	again.Events = 2
	commit(t, st)

	got, ok := readCustomer(t, s, 1, "c-1")
	if !ok {
		t.Fatal("customer not found after Commit")
	}
	want := Customer{Events: 2, Cart: []CartItem{{SKU: "sku-1", Price: 10, Qty: 1}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("stored customer = %+v, want %+v", got, want)
	}

	// A new step loads the committed record.
	st = s.NewStep(1)
	c, err = st.Customer("c-1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*c, want) {
		t.Fatalf("step loaded %+v, want %+v", *c, want)
	}
	c.Events++
	commit(t, st)
	if got, _ := readCustomer(t, s, 1, "c-1"); got.Events != 3 {
		t.Fatalf("Events = %d after second step, want 3", got.Events)
	}
}

func TestStepCustomerCorrupt(t *testing.T) {
	s := openMem(t)
	if err := s.DB().Set(Key(0, KindCustomer, []byte("c-1")), []byte{encodingV1, 0x80}, nil); err != nil {
		t.Fatal(err)
	}
	var c Customer
	if _, err := s.Customer(0, "c-1", &c); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Store.Customer on a corrupt row = %v, want ErrCorrupt", err)
	}
	st := s.NewStep(0)
	defer st.Abort()
	if _, err := st.Customer("c-1"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Step.Customer on a corrupt row = %v, want ErrCorrupt", err)
	}
}

func TestDeleteCustomer(t *testing.T) {
	s := openMem(t)
	st := s.NewStep(0)
	for _, id := range []string{"c-1", "c-2"} {
		c, err := st.Customer(id)
		if err != nil {
			t.Fatal(err)
		}
		c.Events = 7
	}
	commit(t, st)

	st = s.NewStep(0)
	st.DeleteCustomer("c-1")
	if st.Empty() {
		t.Fatal("step with a deletion reports Empty")
	}
	commit(t, st)
	if _, ok := readCustomer(t, s, 0, "c-1"); ok {
		t.Fatal("deleted customer still stored")
	}
	if c, ok := readCustomer(t, s, 0, "c-2"); !ok || c.Events != 7 {
		t.Fatalf("other customer = %+v, %v; want untouched", c, ok)
	}

	t.Run("load modify delete", func(t *testing.T) {
		st := s.NewStep(0)
		c, err := st.Customer("c-2")
		if err != nil {
			t.Fatal(err)
		}
		c.Events = 99
		st.DeleteCustomer("c-2")
		commit(t, st)
		if _, ok := readCustomer(t, s, 0, "c-2"); ok {
			t.Fatal("customer loaded then deleted in one step is still stored")
		}
	})
	t.Run("delete then load starts fresh", func(t *testing.T) {
		st := s.NewStep(0)
		c, err := st.Customer("c-3")
		if err != nil {
			t.Fatal(err)
		}
		c.Events = 5
		commit(t, st)

		st = s.NewStep(0)
		st.DeleteCustomer("c-3")
		c, err = st.Customer("c-3")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*c, Customer{}) {
			t.Fatalf("customer loaded after delete = %+v, want zero", *c)
		}
		c.Events = 1
		commit(t, st)
		if got, ok := readCustomer(t, s, 0, "c-3"); !ok || got.Events != 1 {
			t.Fatalf("re-created customer = %+v, %v; want Events 1", got, ok)
		}
	})
}

func TestOutbox(t *testing.T) {
	s := openMem(t)
	add := func(st *Step, v string) uint64 {
		t.Helper()
		seq, err := st.AddOutbox([]byte(v))
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}
	list := func() []OutboxRow {
		t.Helper()
		rows, err := s.Outbox(0)
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}

	st := s.NewStep(0)
	if a, b := add(st, "a"), add(st, "b"); a != 0 || b != 1 {
		t.Fatalf("first sequences = %d, %d; want 0, 1", a, b)
	}
	commit(t, st)
	if n, err := s.NextOutboxSeq(0); err != nil || n != 2 {
		t.Fatalf("NextOutboxSeq = %d, %v; want 2", n, err)
	}

	// More than 255 rows so the big-endian key order is exercised past one byte.
	st = s.NewStep(0)
	want := []OutboxRow{{0, []byte("a")}, {1, []byte("b")}}
	for i := range 300 {
		v := fmt.Sprintf("v%d", i)
		seq := add(st, v)
		if seq != uint64(i+2) {
			t.Fatalf("sequence %d, want %d", seq, i+2)
		}
		want = append(want, OutboxRow{seq, []byte(v)})
	}
	commit(t, st)
	if got := list(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Outbox lists %d rows, want %d in order (first diff at %v)", len(got), len(want), firstDiff(got, want))
	}

	st = s.NewStep(0)
	if err := st.AckOutbox(0, 1, 100, 1000 /* never written */); err != nil {
		t.Fatal(err)
	}
	commit(t, st)
	want = append(want[2:100], want[101:]...)
	if got := list(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after ack: %d rows, want %d (first diff at %v)", len(got), len(want), firstDiff(got, want))
	}

	// Acknowledging everything does not reset the sequence.
	st = s.NewStep(0)
	for _, r := range want {
		if err := st.AckOutbox(r.Seq); err != nil {
			t.Fatal(err)
		}
	}
	commit(t, st)
	if got := list(); len(got) != 0 {
		t.Fatalf("%d rows left after acknowledging all", len(got))
	}
	st = s.NewStep(0)
	if seq := add(st, "next"); seq != 302 {
		t.Fatalf("sequence after acknowledging all = %d, want 302", seq)
	}
	commit(t, st)
}

func firstDiff(got, want []OutboxRow) int {
	for i := range min(len(got), len(want)) {
		if got[i].Seq != want[i].Seq || !bytes.Equal(got[i].Value, want[i].Value) {
			return i
		}
	}
	return min(len(got), len(want))
}

func TestOutboxSequenceSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	st := s.NewStep(2)
	for range 3 {
		if _, err := st.AddOutbox([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.AckOutbox(0, 1, 2); err != nil {
		t.Fatal(err)
	}
	commit(t, st)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st = s.NewStep(2)
	seq, err := st.AddOutbox([]byte("y"))
	if err != nil {
		t.Fatal(err)
	}
	if seq != 3 {
		t.Fatalf("sequence after reopen = %d, want 3", seq)
	}
	commit(t, st)
}

func TestOutboxRowsAreCopies(t *testing.T) {
	s := openMem(t)
	st := s.NewStep(0)
	v := []byte("value")
	if _, err := st.AddOutbox(v); err != nil {
		t.Fatal(err)
	}
	copy(v, "XXXXX") // the batch must have copied the value
	commit(t, st)
	rows, err := s.Outbox(0)
	if err != nil || len(rows) != 1 || string(rows[0].Value) != "value" {
		t.Fatalf("Outbox = %v, %v; want one row \"value\"", rows, err)
	}
	rows[0].Value[0] = 'Z'
	again, _ := s.Outbox(0)
	if string(again[0].Value) != "value" {
		t.Fatal("Outbox returned memory shared with the database")
	}
}

func TestOutboxCorruptKey(t *testing.T) {
	s := openMem(t)
	if err := s.DB().Set(Key(0, KindOutbox, []byte{1, 2, 3}), []byte("v"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Outbox(0); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Outbox with a short key = %v, want ErrCorrupt", err)
	}
}

func TestAbortDiscards(t *testing.T) {
	s := openMem(t)
	st := s.NewStep(0)
	if _, err := st.AddOutbox([]byte("kept")); err != nil {
		t.Fatal(err)
	}
	commit(t, st)

	st = s.NewStep(0)
	c, err := st.Customer("c-1")
	if err != nil {
		t.Fatal(err)
	}
	c.Events = 1
	st.DeleteCustomer("c-0")
	if err := st.SetOffset("t", 10); err != nil {
		t.Fatal(err)
	}
	if seq, err := st.AddOutbox([]byte("dropped")); err != nil || seq != 1 {
		t.Fatalf("AddOutbox = %d, %v; want 1", seq, err)
	}
	if err := st.AckOutbox(0); err != nil {
		t.Fatal(err)
	}
	st.Abort()

	if _, ok := readCustomer(t, s, 0, "c-1"); ok {
		t.Fatal("aborted step wrote a customer")
	}
	if offs, _ := s.Offsets(0); len(offs) != 0 {
		t.Fatalf("aborted step wrote offsets %v", offs)
	}
	rows, _ := s.Outbox(0)
	if len(rows) != 1 || string(rows[0].Value) != "kept" {
		t.Fatalf("outbox after abort = %v, want only the committed row", rows)
	}
	if n, _ := s.NextOutboxSeq(0); n != 1 {
		t.Fatalf("NextOutboxSeq after abort = %d, want 1", n)
	}
	// The aborted sequence number is handed out again.
	st = s.NewStep(0)
	if seq, err := st.AddOutbox([]byte("again")); err != nil || seq != 1 {
		t.Fatalf("AddOutbox after abort = %d, %v; want 1", seq, err)
	}
	commit(t, st)
}

func TestPartitionIsolation(t *testing.T) {
	s := openMem(t)
	parts := []int32{0, 1, 2, 255, 256, math.MaxInt32}
	for _, p := range parts {
		st := s.NewStep(p)
		c, err := st.Customer("c-1")
		if err != nil {
			t.Fatal(err)
		}
		c.Events = uint64(p) + 1
		if err := st.SetOffset("t", int64(p)); err != nil {
			t.Fatal(err)
		}
		// Partition p gets p%3+1 outbox rows, so sequences differ too.
		for i := range p%3 + 1 {
			if _, err := st.AddOutbox(fmt.Appendf(nil, "%d/%d", p, i)); err != nil {
				t.Fatal(err)
			}
		}
		commit(t, st)
	}
	for _, p := range parts {
		t.Run(fmt.Sprint(p), func(t *testing.T) {
			if c, ok := readCustomer(t, s, p, "c-1"); !ok || c.Events != uint64(p)+1 {
				t.Fatalf("customer = %+v, %v; want Events %d", c, ok, p+1)
			}
			if offs, err := s.Offsets(p); err != nil || !reflect.DeepEqual(offs, map[string]int64{"t": int64(p)}) {
				t.Fatalf("Offsets = %v, %v", offs, err)
			}
			rows, err := s.Outbox(p)
			if err != nil || len(rows) != int(p%3+1) {
				t.Fatalf("Outbox = %v, %v; want %d rows", rows, err, p%3+1)
			}
			for i, r := range rows {
				if want := fmt.Sprintf("%d/%d", p, i); string(r.Value) != want || r.Seq != uint64(i) {
					t.Fatalf("row %d = %d %q, want %d %q", i, r.Seq, r.Value, i, want)
				}
			}
			if n, err := s.CountKind(p, KindCustomer); err != nil || n != 1 {
				t.Fatalf("CountKind(customer) = %d, %v; want 1", n, err)
			}
			// Every key in the partition's bounds carries the partition.
			lo, hi := PartitionBounds(p)
			it, err := s.DB().NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for it.First(); it.Valid(); it.Next() {
				if !bytes.HasPrefix(it.Key(), Key(p, it.Key()[5], nil)) {
					t.Errorf("key %q in partition %d's bounds", it.Key(), p)
				}
				n++
			}
			if err := it.Close(); err != nil {
				t.Fatal(err)
			}
			// customer, offset, outbox rows, outbox_seq.
			if want := 1 + 1 + int(p%3+1) + 1; n != want {
				t.Fatalf("%d rows in partition bounds, want %d", n, want)
			}
		})
	}
	if _, ok := readCustomer(t, s, 3, "c-1"); ok {
		t.Fatal("partition 3 sees another partition's customer")
	}
}

func TestKeyBounds(t *testing.T) {
	kinds := []byte{KindCustomer, KindOffset, KindTimer, KindOutbox, KindMeta}
	parts := []int32{0, 1, 255, 256, 65535, 1 << 24, math.MaxInt32 - 1, math.MaxInt32}
	rests := [][]byte{nil, {}, {0}, {0xff, 0xff, 0xff}, []byte("c-1")}
	in := func(k, lo, hi []byte) bool { return bytes.Compare(lo, k) <= 0 && bytes.Compare(k, hi) < 0 }
	for _, p := range parts {
		plo, phi := PartitionBounds(p)
		if bytes.Compare(plo, phi) >= 0 {
			t.Fatalf("PartitionBounds(%d) = [%x, %x), empty", p, plo, phi)
		}
		for _, kind := range kinds {
			lo, hi := Bounds(p, kind)
			if bytes.Compare(lo, hi) >= 0 {
				t.Fatalf("Bounds(%d, %c) = [%x, %x), empty", p, kind, lo, hi)
			}
			for _, rest := range rests {
				k := Key(p, kind, rest)
				if !in(k, lo, hi) {
					t.Errorf("Key(%d, %c, %x) = %x outside Bounds [%x, %x)", p, kind, rest, k, lo, hi)
				}
				if !in(k, plo, phi) {
					t.Errorf("Key(%d, %c, %x) outside PartitionBounds", p, kind, rest)
				}
				if got := KeyRest(k); !bytes.Equal(got, rest) {
					t.Errorf("KeyRest(Key(.., %x)) = %x", rest, got)
				}
				for _, other := range kinds {
					if other == kind {
						continue
					}
					olo, ohi := Bounds(p, other)
					if in(k, olo, ohi) {
						t.Errorf("Key(%d, %c) inside Bounds of kind %c", p, kind, other)
					}
				}
				for _, q := range []int64{int64(p) - 1, int64(p) + 1} {
					if q < 0 || q > math.MaxInt32 {
						continue
					}
					qlo, qhi := PartitionBounds(int32(q))
					if in(k, qlo, qhi) {
						t.Errorf("Key(%d, ..) inside PartitionBounds(%d)", p, q)
					}
				}
			}
		}
	}
	if got := Key(0x01020304, KindCustomer, []byte("id")); !bytes.Equal(got, []byte("p\x01\x02\x03\x04cid")) {
		t.Fatalf("Key layout = %q", got)
	}
	if KeyRest([]byte("p\x00\x00")) != nil {
		t.Fatal("KeyRest of a short key is not nil")
	}
}

func TestWriteOptions(t *testing.T) {
	s := openMem(t)
	if s.WriteOptions() != pebble.Sync {
		t.Fatal("default store does not sync its commits")
	}
	unsynced, err := Open("db", WithFS(vfs.NewMem()), WithSync(false), WithCacheSize(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer unsynced.Close()
	if unsynced.WriteOptions() != pebble.NoSync {
		t.Fatal("WithSync(false) store syncs")
	}
}

// BenchmarkStepReadModifyWrite measures one step per op: load a customer,
// modify it, set the input offset, commit. "sync" is the default store,
// which fsyncs every commit; "nosync" isolates the CPU cost.
func BenchmarkStepReadModifyWrite(b *testing.B) {
	for _, sync := range []bool{true, false} {
		name := "sync"
		if !sync {
			name = "nosync"
		}
		b.Run(name, func(b *testing.B) { benchStepReadModifyWrite(b, sync) })
	}
}

func benchStepReadModifyWrite(b *testing.B, sync bool) {
	s, err := Open(b.TempDir(), WithSync(sync))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	seed := benchCustomer()
	st := s.NewStep(0)
	const customers = 1000
	ids := make([]string, customers)
	for i := range ids {
		ids[i] = fmt.Sprintf("customer-%06d", i)
		c, err := st.Customer(ids[i])
		if err != nil {
			b.Fatal(err)
		}
		*c = seed
	}
	if err := st.Commit(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		st := s.NewStep(0)
		c, err := st.Customer(ids[i%customers])
		if err != nil {
			b.Fatal(err)
		}
		c.Events++
		c.AddRecent(Recent{EventID: "evt-bench", Type: "page_view", TS: int64(i)})
		if err := st.SetOffset("shop.clickstream", int64(i)); err != nil {
			b.Fatal(err)
		}
		if err := st.Commit(); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.StopTimer()
	var c Customer
	if ok, err := s.Customer(0, ids[0], &c); err != nil || !ok || c.Events <= seed.Events {
		b.Fatalf("benchmark steps were not applied: %v, %v, Events %d", ok, err, c.Events)
	}
}

func TestTuningResolve(t *testing.T) {
	got := Tuning{MemTableMB: 8, BloomBitsPerKey: -1}.resolve()
	want := Tuning{MemTableMB: 8, L0CompactionThreshold: 4, L0StopWritesThreshold: 24, MaxCompactions: 2, BloomBitsPerKey: -1, Compression: "snappy"}
	if got != want {
		t.Fatalf("resolve = %+v, want %+v", got, want)
	}
	if (Tuning{}).resolve() != DefaultTuning {
		t.Fatalf("zero tuning does not resolve to the defaults")
	}
	if _, err := Open(t.TempDir(), WithTuning(Tuning{Compression: "lz4"})); err == nil {
		t.Fatal("unknown compression accepted")
	}
	for _, c := range []string{"fastest", "none"} {
		s, err := Open(t.TempDir(), WithTuning(Tuning{Compression: c}))
		if err != nil {
			t.Fatalf("compression %s: %v", c, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// A store opens with any of them.
	s, err := Open(t.TempDir(), WithTuning(Tuning{MemTableMB: 1, L0StopWritesThreshold: 2, BloomBitsPerKey: -1}))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// TestBlockCacheHoldsBlocksBesideMemtables: Pebble charges its memtables
// to the block cache, so a cache no larger than them would hold no block
// and every read would go to the files. Open gives the memtables room of
// their own.
func TestBlockCacheHoldsBlocksBesideMemtables(t *testing.T) {
	s, err := Open("db", WithFS(vfs.NewMem()), WithSync(false), WithCacheSize(4<<20), WithTuning(Tuning{MemTableMB: 4}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	db := s.DB()
	val := make([]byte, 1000)
	key := func(i int) []byte { return Key(0, KindCustomer, fmt.Appendf(nil, "c-%06d", i)) }
	// 24 MB: the memtables grow to their full 4 MiB and several flush.
	for i := range 24000 {
		if err := db.Set(key(i), val, pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	read := func() (hits, misses int64) {
		before := db.Metrics().BlockCache
		for i := 0; i < 24000; i += 997 { // 25 keys, each in its own block
			v, closer, err := db.Get(key(i))
			if err != nil || len(v) != len(val) {
				t.Fatalf("get %d: %v", i, err)
			}
			closer.Close()
		}
		after := db.Metrics().BlockCache
		return after.Hits - before.Hits, after.Misses - before.Misses
	}
	read()
	if hits, misses := read(); misses > hits {
		t.Errorf("reading the same keys again: %d block cache hits, %d misses; the cache keeps nothing", hits, misses)
	}
}

// BenchmarkStepChangelog measures what mirroring costs a step in Pebble
// alone (no broker): steps of 30 customers, as at a moderate live rate,
// without sync, with and without WithChangelog; with it, each step also
// acknowledges the previous step's rows, as the worker does. Reported per
// customer written.
func BenchmarkStepChangelog(b *testing.B) {
	for _, mirror := range []bool{false, true} {
		b.Run(fmt.Sprintf("changelog=%v", mirror), func(b *testing.B) {
			s, err := Open(b.TempDir(), WithSync(false))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			seed := benchCustomer()
			const customers, perStep = 100_000, 30
			b.ReportAllocs()
			var prev []ChangelogRow
			i := 0
			for b.Loop() {
				st := s.NewStep(0)
				if mirror {
					st.WithChangelog()
					if err := st.AckChangelog(prev, Checkpoint{Offset: int64(i)}); err != nil {
						b.Fatal(err)
					}
				}
				for range perStep {
					c, err := st.Customer(fmt.Sprintf("customer-%06d", (i*7919)%customers))
					if err != nil {
						b.Fatal(err)
					}
					if c.Events == 0 {
						*c = seed
					}
					c.Events++
					i++
				}
				if err := st.SetOffset("shop.clickstream", int64(i)); err != nil {
					b.Fatal(err)
				}
				if err := st.Commit(); err != nil {
					b.Fatal(err)
				}
				prev = st.Mirrored()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(i), "ns/customer")
		})
	}
}

// TestStepPartsCarryNothingOver: a partition's steps reuse one another's
// batch, maps and records; nothing of a step reaches the next one. A new
// customer read after a step that wrote a full record starts empty, an
// aborted step's writes are not in the next commit, and a record kept by
// the cache or the store is the one the last commit wrote.
func TestStepPartsCarryNothingOver(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cache := NewCache(1 << 20)
	full := fullCustomer()
	st := s.NewStep(3).WithCache(cache)
	c, err := st.Customer("full")
	if err != nil {
		t.Fatal(err)
	}
	*c = full
	commit(t, st)

	// The next step of the partition takes the parts the first left.
	st = s.NewStep(3).WithCache(cache)
	for _, id := range []string{"forgotten", "new"} {
		if id == "forgotten" {
			st.DeleteCustomer(id) // read again, it starts empty without a read
		}
		fresh, err := st.Customer(id)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*fresh, Customer{Recent: fresh.Recent}) || len(fresh.Recent) != 0 {
			t.Fatalf("%s: the record holds %+v, want it empty", id, *fresh)
		}
		fresh.Events = 7
	}
	if err := st.SetOffset("shop.clickstream", 99); err != nil {
		t.Fatal(err)
	}
	st.Abort()

	st = s.NewStep(3).WithCache(cache)
	again, err := st.Customer("full")
	if err != nil {
		t.Fatal(err)
	}
	again.Events++
	commit(t, st)

	for _, id := range []string{"new", "forgotten"} {
		if _, ok := readCustomer(t, s, 3, id); ok {
			t.Errorf("the aborted step's customer %s was committed by the next step", id)
		}
	}
	if offs, err := s.Offsets(3); err != nil || len(offs) != 0 {
		t.Errorf("offsets after the aborted step: %v, %v; want none", offs, err)
	}
	got, ok := readCustomer(t, s, 3, "full")
	if !ok {
		t.Fatal("full customer missing")
	}
	got.flattenRecent()
	want := full
	want.Events++
	want.Recent = slices.Clone(full.Recent)
	if !reflect.DeepEqual(got, roundTrip(t, &want)) {
		t.Fatalf("after reused steps: %+v, want %+v", got, want)
	}
}
