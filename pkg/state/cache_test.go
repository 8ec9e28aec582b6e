package state

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func memStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open("db", WithFS(vfs.NewMem()), WithSync(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// entrySize is what the cache counts for an entry of a one-letter id and a
// 100-byte record, the size the tests below use.
const entrySize = 1 + 128 + entryOverhead

func rec(b byte) []byte { return bytes.Repeat([]byte{b}, 100) }

func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	c := NewCache(20 * entrySize)
	c.max = 2 * entrySize // room for two
	c.put("a", rec('a'))
	c.put("b", rec('b'))
	if got, _ := c.get("a"); !bytes.Equal(got, rec('a')) { // a is now the most recent
		t.Fatalf("a: %q", got)
	}
	c.put("d", rec('d'))
	if _, ok := c.get("b"); ok {
		t.Error("b should have been evicted")
	}
	if _, ok := c.get("a"); !ok {
		t.Error("a evicted although used more recently than b")
	}
	if c.Len() != 2 || c.Bytes() != 2*entrySize {
		t.Errorf("len %d, bytes %d; want 2, %d", c.Len(), c.Bytes(), 2*entrySize)
	}
	if NewCache(0) != nil {
		t.Error("NewCache(0) must disable the cache")
	}
}

// TestCachePutCopiesAndReusesItsBuffer: the cache keeps its own copy of a
// record, and a rewrite of about the same size reuses the entry's buffer.
func TestCachePutCopiesAndReusesItsBuffer(t *testing.T) {
	c := NewCache(1 << 20)
	enc := rec('x')
	c.put("a", enc)
	enc[0] = 'y' // the caller's buffer is reused for the next record
	got, _ := c.get("a")
	if got[0] != 'x' {
		t.Fatal("the cache kept the caller's buffer, not a copy")
	}
	first := &got[0]
	c.put("a", append(rec('z'), 'z', 'z')) // two bytes longer
	got, _ = c.get("a")
	if !bytes.Equal(got, append(rec('z'), 'z', 'z')) || &got[0] != first {
		t.Errorf("rewrite: %q, same buffer %v", got, &got[0] == first)
	}
	if c.Len() != 1 {
		t.Errorf("len %d after a rewrite", c.Len())
	}
}

// TestCacheSkipsOversizedRecords: a record larger than an eighth of the
// cache is not kept, and an older version of it is dropped, never served.
func TestCacheSkipsOversizedRecords(t *testing.T) {
	c := NewCache(8 * entrySize)
	c.put("a", rec('a'))
	c.put("a", bytes.Repeat([]byte{'A'}, 2*entrySize))
	if got, ok := c.get("a"); ok {
		t.Errorf("oversized record: the cache serves %d bytes", len(got))
	}
	if c.Len() != 0 || c.Bytes() != 0 {
		t.Errorf("len %d, bytes %d after the oversized put", c.Len(), c.Bytes())
	}
}

// committedCustomer returns a store and a cache in which a step has
// committed customer c-1 with 5 events.
func committedCustomer(t *testing.T) (*Store, *Cache) {
	t.Helper()
	s := memStore(t)
	cache := NewCache(1 << 20)
	st := s.NewStep(0).WithCache(cache)
	c, _ := st.Customer("c-1")
	c.Events = 5
	if err := st.Commit(); err != nil {
		t.Fatal(err)
	}
	return s, cache
}

// TestStepCacheHoldsCommittedStateOnly: a committed record is served from
// the cache; changes of an aborted step never are.
func TestStepCacheHoldsCommittedStateOnly(t *testing.T) {
	s, cache := committedCustomer(t)
	if cache.Len() != 1 {
		t.Fatalf("cache holds %d after commit, want 1", cache.Len())
	}
	// The committed record is read from the cache, not from Pebble: the
	// store no longer has it, the cache does.
	if err := s.DB().Delete(Key(0, KindCustomer, []byte("c-1")), nil); err != nil {
		t.Fatal(err)
	}
	st := s.NewStep(0).WithCache(cache)
	c, _ := st.Customer("c-1")
	if c.Events != 5 {
		t.Fatalf("events %d, want 5 from the cache", c.Events)
	}
	c.Events = 99 // never committed
	st.Abort()
	st = s.NewStep(0).WithCache(cache)
	c, _ = st.Customer("c-1")
	if c.Events != 5 {
		t.Fatalf("after an aborted step events %d, want the committed 5", c.Events)
	}
	st.DeleteCustomer("c-1")
	if err := st.Commit(); err != nil {
		t.Fatal(err)
	}
	if cache.Len() != 0 {
		t.Errorf("deleted customer still cached")
	}
	st = s.NewStep(0).WithCache(cache)
	if c, _ = st.Customer("c-1"); c.Events != 0 {
		t.Errorf("deleted customer read back with %d events", c.Events)
	}
	st.Abort()
}

// TestStepCacheDroppedOnFailedCommit: records a step put in the cache are
// taken out again when its batch does not commit. (A mirrored step whose
// batch holds a write the changelog cannot carry fails after the records
// are written.)
func TestStepCacheDroppedOnFailedCommit(t *testing.T) {
	s, cache := committedCustomer(t)
	st := s.NewStep(0).WithCache(cache).WithChangelog()
	c, _ := st.Customer("c-1")
	c.Events = 6
	if err := st.Batch().Merge(Key(0, KindCustomer, []byte("c-2")), []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	if err := st.Commit(); !errors.Is(err, ErrUnmirrorable) {
		t.Fatalf("commit: %v, want ErrUnmirrorable", err)
	}
	if _, ok := cache.get("c-1"); ok {
		t.Error("a record of the failed commit is still cached")
	}
	var stored Customer
	if _, err := s.Customer(0, "c-1", &stored); err != nil || stored.Events != 5 {
		t.Errorf("stored events %d (%v), want the committed 5", stored.Events, err)
	}
}

// TestCacheOrderAndReuse exercises the recency list: re-puts, removals and
// evictions in a longer sequence, against a simple model.
func TestCacheOrderAndReuse(t *testing.T) {
	const max = 3
	c := NewCache(8 * max * entrySize)
	c.max = max * entrySize
	var model []string // most recent first
	touch := func(id string) {
		for i, m := range model {
			if m == id {
				model = append(model[:i], model[i+1:]...)
				break
			}
		}
		model = append([]string{id}, model...)
	}
	vals := map[string][]byte{}
	for i, op := range []string{"+a", "+b", "+c", "?a", "+d", "+b", "-a", "+e", "?c", "+f", "+f", "-x", "?d", "+g", "-g", "+h"} {
		id := op[1:]
		switch op[0] {
		case '+':
			vals[id] = rec(byte('0' + i))
			c.put(id, vals[id])
			touch(id)
			if len(model) > max {
				model = model[:max]
			}
		case '-':
			c.remove(id)
			for j, m := range model {
				if m == id {
					model = append(model[:j], model[j+1:]...)
					break
				}
			}
		case '?':
			got, ok := c.get(id)
			inModel := false
			for _, m := range model {
				inModel = inModel || m == id
			}
			if ok != inModel || ok && !bytes.Equal(got, vals[id]) {
				t.Fatalf("step %d get(%s) = %q, %v; model %v", i, id, got, ok, model)
			}
			if ok {
				touch(id)
			}
		}
		if c.Len() != len(model) || c.Bytes() != len(model)*entrySize {
			t.Fatalf("step %d: len %d, bytes %d, model %v", i, c.Len(), c.Bytes(), model)
		}
		var order []string
		for e := c.head; e >= 0; e = c.entries[e].next {
			order = append(order, c.entries[e].id)
		}
		if strings.Join(order, ",") != strings.Join(model, ",") {
			t.Fatalf("step %d (%s): order %v, model %v", i, op, order, model)
		}
		var back []string
		for e := c.tail; e >= 0; e = c.entries[e].prev {
			back = append([]string{c.entries[e].id}, back...)
		}
		if strings.Join(back, ",") != strings.Join(model, ",") {
			t.Fatalf("step %d (%s): backwards %v, model %v", i, op, back, model)
		}
	}
	if len(c.entries) > max+1 {
		t.Errorf("%d entry slots for at most %d records: freed slots are not reused", len(c.entries), max)
	}
}

// BenchmarkCache is one step's use of the cache per op: a get, a hit or a
// miss, and the put of the committed record; 20,000 customers of 500-byte
// records over room for about 10,000, so half the puts of a miss evict.
func BenchmarkCache(b *testing.B) {
	const customers, size = 20_000, 10_000
	ids := make([]string, customers)
	for i := range ids {
		ids[i] = "c-" + strconv.Itoa(i*7919%customers)
	}
	enc := bytes.Repeat([]byte{1}, 500)
	c := NewCache(size * (576 + 8 + entryOverhead))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		id := ids[i%customers]
		if i%3 == 0 {
			id = ids[(i/3)%(size/2)] // a hot set that stays cached
		}
		c.get(id)
		c.put(id, enc)
		i++
	}
	b.ReportMetric(float64(c.Len()), "records")
}

// TestStepRecentArraysCirculate: a step decodes its records' recent events
// into arrays the cache lends it and takes back when the step ends, and a
// record decoded into a used array holds its own events only.
func TestStepRecentArraysCirculate(t *testing.T) {
	s := memStore(t)
	cache := NewCache(1 << 20)
	st := s.NewStep(0).WithCache(cache)
	a, err := st.Customer("a")
	if err != nil {
		t.Fatal(err)
	}
	if cap(a.Recent) != MaxRecent {
		t.Fatalf("a new customer's Recent has room for %d, want a pooled array of %d", cap(a.Recent), MaxRecent)
	}
	for i := range 5 {
		a.AddRecent(Recent{EventID: "a-" + strconv.Itoa(i), Type: "page_view", TS: int64(i)})
	}
	arr := &a.Recent[:1][0]
	b, _ := st.Customer("b")
	b.AddRecent(Recent{EventID: "b-0", Type: "cart_add", TS: 10, SKU: "s"})
	if err := st.Commit(); err != nil {
		t.Fatal(err)
	}
	if a.Recent != nil || b.Recent != nil {
		t.Fatal("a committed step's records still hold their arrays")
	}

	// The next step gets the arrays back: b (one event) decodes into one of
	// them, and must not see a's events that were there before.
	st = s.NewStep(0).WithCache(cache)
	b, _ = st.Customer("b")
	a, _ = st.Customer("a")
	if got := b.RecentEvents(); len(got) != 1 || got[0].EventID != "b-0" || got[0].SKU != "s" {
		t.Fatalf("b's recent events %+v, want b-0 alone", got)
	}
	if got := a.RecentEvents(); len(got) != 5 || got[4].EventID != "a-4" {
		t.Fatalf("a's recent events %+v, want a-0..a-4", got)
	}
	if &b.Recent[:1][0] != arr && &a.Recent[:1][0] != arr {
		t.Error("the step decoded into new arrays, not the ones the last step gave back")
	}
	if cache.recentMade != 2 {
		t.Errorf("%d arrays made for two customers in two steps, want 2", cache.recentMade)
	}
	st.DeleteCustomer("b") // forget gives its array back at once
	if b.Recent != nil || len(cache.recentFree) != 1 {
		t.Errorf("a forgotten customer kept its array (free %d)", len(cache.recentFree))
	}
	st.Abort()
	if len(cache.recentFree) != 2 {
		t.Errorf("after an aborted step %d arrays are free, want 2", len(cache.recentFree))
	}
	for _, r := range cache.recentFree {
		for _, e := range r[:MaxRecent] {
			if e != (Recent{}) {
				t.Fatalf("a free array still holds %+v", e)
			}
		}
	}
}

// TestRecentArraysBounded: no more arrays are made than the cache's bound;
// beyond it records get slices of their own.
func TestRecentArraysBounded(t *testing.T) {
	s := memStore(t)
	cache := NewCache(1 << 20)
	cache.recentMax = 3
	st := s.NewStep(0).WithCache(cache)
	for i := range 5 {
		c, _ := st.Customer("c-" + strconv.Itoa(i))
		c.AddRecent(Recent{EventID: "e", Type: "page_view"})
		if pooled := cap(c.Recent) == MaxRecent; pooled != (i < 3) {
			t.Errorf("customer %d: pooled %v, want %v", i, pooled, i < 3)
		}
	}
	if err := st.Commit(); err != nil {
		t.Fatal(err)
	}
	if cache.recentMade != 3 || len(cache.recentFree) != 3 {
		t.Errorf("made %d, free %d; want 3 and 3", cache.recentMade, len(cache.recentFree))
	}
	var none *Cache // a disabled cache lends nothing
	if none.takeRecent() != nil {
		t.Error("a nil cache lent an array")
	}
	none.giveRecent(make([]Recent, 0, MaxRecent))
}
