package state

import "container/list"

// Cache is a bounded LRU of decoded customer records of one partition, so
// that a customer active in consecutive steps is decoded once rather than
// read from Pebble and decoded in every step. It holds committed state only:
// a Step puts its records in after a successful commit and drops them when
// the step is abandoned. It belongs to the partition's worker and is not
// safe for concurrent use.
type Cache struct {
	max int
	ll  *list.List
	m   map[string]*list.Element
}

type cacheEntry struct {
	id string
	c  *Customer
}

// NewCache returns a cache of at most max records; max <= 0 disables it
// (NewCache returns nil, which every method accepts).
func NewCache(max int) *Cache {
	if max <= 0 {
		return nil
	}
	return &Cache{max: max, ll: list.New(), m: make(map[string]*list.Element, max)}
}

// Len is the number of cached records.
func (c *Cache) Len() int {
	if c == nil {
		return 0
	}
	return c.ll.Len()
}

func (c *Cache) get(id string) (*Customer, bool) {
	if c == nil {
		return nil, false
	}
	e, ok := c.m[id]
	if !ok {
		return nil, false
	}
	c.ll.MoveToFront(e)
	return e.Value.(*cacheEntry).c, true
}

func (c *Cache) put(id string, cust *Customer) {
	if c == nil {
		return
	}
	if e, ok := c.m[id]; ok {
		e.Value.(*cacheEntry).c = cust
		c.ll.MoveToFront(e)
		return
	}
	c.m[id] = c.ll.PushFront(&cacheEntry{id: id, c: cust})
	if c.ll.Len() > c.max {
		last := c.ll.Back()
		c.ll.Remove(last)
		delete(c.m, last.Value.(*cacheEntry).id)
	}
}

func (c *Cache) remove(id string) {
	if c == nil {
		return
	}
	if e, ok := c.m[id]; ok {
		c.ll.Remove(e)
		delete(c.m, id)
	}
}
