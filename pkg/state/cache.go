package state

import "strings"

// Cache is a bounded LRU of decoded customer records of one partition, so
// that a customer active in consecutive steps is decoded once rather than
// read from Pebble and decoded in every step. It holds committed state only:
// a Step puts its records in after a successful commit and drops them when
// the step is abandoned. It belongs to the partition's worker and is not
// safe for concurrent use.
//
// The recency list is intrusive and a full cache reuses the entry it
// evicts, so that a put allocates at most the copy of its id: the cache
// sits on the path of every step.
type Cache struct {
	max int
	m   map[string]*cacheEntry
	// head is the sentinel of the recency list: head.next is the most
	// recently used entry, head.prev the least.
	head cacheEntry
}

type cacheEntry struct {
	id         string
	c          *Customer
	prev, next *cacheEntry
}

// NewCache returns a cache of at most max records; max <= 0 disables it
// (NewCache returns nil, which every method accepts).
func NewCache(max int) *Cache {
	if max <= 0 {
		return nil
	}
	c := &Cache{max: max, m: make(map[string]*cacheEntry, max)}
	c.head.prev, c.head.next = &c.head, &c.head
	return c
}

// Len is the number of cached records.
func (c *Cache) Len() int {
	if c == nil {
		return 0
	}
	return len(c.m)
}

func (c *Cache) get(id string) (*Customer, bool) {
	if c == nil {
		return nil, false
	}
	e, ok := c.m[id]
	if !ok {
		return nil, false
	}
	c.toFront(e)
	return e.c, true
}

func (c *Cache) put(id string, cust *Customer) {
	if c == nil {
		return
	}
	if e, ok := c.m[id]; ok {
		e.c = cust
		c.toFront(e)
		return
	}
	var e *cacheEntry
	if len(c.m) >= c.max {
		// Reuse the least recently used entry.
		e = c.head.prev
		c.unlink(e)
		delete(c.m, e.id)
	} else {
		e = new(cacheEntry)
	}
	// The id is often cut from an input record's value; a copy keeps the
	// cache from holding the whole value alive.
	*e = cacheEntry{id: strings.Clone(id), c: cust}
	c.m[e.id] = e
	c.linkFront(e)
}

func (c *Cache) remove(id string) {
	if c == nil {
		return
	}
	if e, ok := c.m[id]; ok {
		c.unlink(e)
		delete(c.m, id)
	}
}

func (c *Cache) toFront(e *cacheEntry) {
	if c.head.next == e {
		return
	}
	c.unlink(e)
	c.linkFront(e)
}

func (c *Cache) unlink(e *cacheEntry) {
	e.prev.next = e.next
	e.next.prev = e.prev
	e.prev, e.next = nil, nil
}

func (c *Cache) linkFront(e *cacheEntry) {
	e.prev, e.next = &c.head, c.head.next
	c.head.next.prev = e
	c.head.next = e
}
