package state

import (
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

func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	c := NewCache(2)
	a, b, d := &Customer{Events: 1}, &Customer{Events: 2}, &Customer{Events: 3}
	c.put("a", a)
	c.put("b", b)
	if got, _ := c.get("a"); got != a { // a is now the most recent
		t.Fatal("a not cached")
	}
	c.put("d", d)
	if _, ok := c.get("b"); ok {
		t.Error("b should have been evicted")
	}
	if _, ok := c.get("a"); !ok {
		t.Error("a evicted although used more recently than b")
	}
	if c.Len() != 2 {
		t.Errorf("len %d", c.Len())
	}
	if NewCache(0) != nil {
		t.Error("NewCache(0) must disable the cache")
	}
}

// TestStepCacheHoldsCommittedStateOnly: a committed record is served from
// the cache; changes of an aborted step never are.
func TestStepCacheHoldsCommittedStateOnly(t *testing.T) {
	s := memStore(t)
	cache := NewCache(10)
	st := s.NewStep(0).WithCache(cache)
	c, _ := st.Customer("c-1")
	c.Events = 5
	if err := st.Commit(); err != nil {
		t.Fatal(err)
	}
	if cache.Len() != 1 {
		t.Fatalf("cache holds %d after commit, want 1", cache.Len())
	}

	st = s.NewStep(0).WithCache(cache)
	c, _ = st.Customer("c-1")
	if c.Events != 5 {
		t.Fatalf("events %d, want 5", c.Events)
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
	var stored Customer
	if found, err := s.Customer(0, "c-1", &stored); err != nil || found {
		t.Errorf("deleted customer still stored: %v %v", found, err)
	}
}

// TestCacheOrderAndReuse exercises the recency list: re-puts, removals and
// evictions in a longer sequence, against a simple model.
func TestCacheOrderAndReuse(t *testing.T) {
	const max = 3
	c := NewCache(max)
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
	custs := map[string]*Customer{}
	for i, op := range []string{"+a", "+b", "+c", "?a", "+d", "+b", "-a", "+e", "?c", "+f", "+f", "-x", "?d", "+g", "-g", "+h"} {
		id := op[1:]
		switch op[0] {
		case '+':
			custs[id] = &Customer{Events: uint64(i)}
			c.put(id, custs[id])
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
			if ok != inModel || ok && got != custs[id] {
				t.Fatalf("step %d get(%s) = %v, %v; model %v", i, id, got, ok, model)
			}
			if ok {
				touch(id)
			}
		}
		if c.Len() != len(model) {
			t.Fatalf("step %d: len %d, model %v", i, c.Len(), model)
		}
		var order []string
		for e := c.head.next; e != &c.head; e = e.next {
			order = append(order, e.id)
		}
		if strings.Join(order, ",") != strings.Join(model, ",") {
			t.Fatalf("step %d (%s): order %v, model %v", i, op, order, model)
		}
	}
}

// BenchmarkCache is one step's use of the cache per op: a get, a hit or a
// miss, and the put after the commit; 20,000 customers over a cache of
// 10,000 (the default), so half the puts evict.
func BenchmarkCache(b *testing.B) {
	const customers, size = 20_000, 10_000
	ids := make([]string, customers)
	for i := range ids {
		ids[i] = "c-" + strconv.Itoa(i*7919%customers)
	}
	c := NewCache(size)
	cust := &Customer{}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		id := ids[i%customers]
		if i%3 == 0 {
			id = ids[(i/3)%(size/2)] // a hot set that stays cached
		}
		if _, ok := c.get(id); !ok {
			c.put(id, cust)
		}
		i++
	}
}
