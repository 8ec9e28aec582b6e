package state

import (
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
