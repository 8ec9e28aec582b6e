package state

import (
	"strings"
	"unsafe"
)

// Cache holds the encoded records of one partition's recently used
// customers, bounded by bytes, so that a customer active in consecutive
// steps is read without a Pebble Get. A point read in an LSM that every
// event rewrites is costly: it searches the memtables and each level, and
// a compaction leaves the customer's block to be read from the file and
// decompressed again. The cache saves that, not the decode.
//
// It keeps encodings rather than decoded records on purpose: a decoded
// record is dozens of pointers for the garbage collector to trace, an
// encoding one []byte it never scans. (A cache of decoded records, tried
// first, cost more in collection than it saved: docs/BENCHMARKS.md,
// session 6.)
//
// It holds committed state only: a Step puts a record in as it writes it to
// the batch it commits, and takes its records out again if that commit
// fails. It belongs to the partition's worker and is not safe for
// concurrent use. Eviction is least recently used; the recency list is
// threaded through the entry slice by index (no pointers to trace), and a
// record rewritten at about its size reuses its buffer.
type Cache struct {
	max, used int
	maxEntry  int              // the largest entry kept: an eighth of max
	m         map[string]int32 // id → index in entries
	entries   []cacheEntry
	// head is the most recently used entry, tail the least; -1 when empty.
	head, tail int32
	free       []int32 // indexes of removed entries

	// Arrays of MaxRecent recent events that the partition's steps add
	// new events to (and decode a version-4 or older record's into), and
	// give back when they end (takeRecent, giveRecent): decoding made a
	// new Recent slice for every event's customer, the largest part of
	// what the engine allocated. At most recentMax are ever made, an
	// eighth of the cache's bytes.
	recentFree [][]Recent
	recentMade int
	recentMax  int
}

type cacheEntry struct {
	id         string
	val        []byte
	prev, next int32
}

// entryOverhead is what an entry costs beyond its id and encoding: its map
// slot and its element of entries, each with the room a growing map or
// slice keeps spare (measured with a heap profile: the cache's bound and
// its share of the heap agree within a few per cent).
const entryOverhead = 160

// NewCache returns a cache of about maxBytes; maxBytes <= 0 disables it
// (NewCache returns nil, which every method accepts).
func NewCache(maxBytes int) *Cache {
	if maxBytes <= 0 {
		return nil
	}
	return &Cache{max: maxBytes, maxEntry: maxBytes / 8, m: make(map[string]int32), head: -1, tail: -1,
		recentMax: max(64, maxBytes/8/recentArrayBytes)}
}

// recentArrayBytes is the size of one pooled Recent array.
const recentArrayBytes = MaxRecent * int(unsafe.Sizeof(Recent{}))

// takeRecent returns an empty slice with room for MaxRecent events for a
// step's record (Customer.unmarshal), or nil once recentMax arrays are out
// (the record then gets one of its own size).
func (c *Cache) takeRecent() []Recent {
	if c == nil {
		return nil
	}
	if n := len(c.recentFree); n > 0 {
		r := c.recentFree[n-1]
		c.recentFree = c.recentFree[:n-1]
		return r
	}
	if c.recentMade >= c.recentMax {
		return nil
	}
	c.recentMade++
	return make([]Recent, 0, MaxRecent)
}

// giveRecent takes back an array takeRecent gave, once nothing refers to
// it: the step that decoded into it has ended. It is cleared, so that it
// keeps no record's strings alive.
func (c *Cache) giveRecent(r []Recent) {
	if c == nil || cap(r) != MaxRecent || len(c.recentFree) >= c.recentMax {
		return
	}
	r = r[:MaxRecent]
	clear(r)
	c.recentFree = append(c.recentFree, r[:0])
}

// Len is the number of cached records.
func (c *Cache) Len() int {
	if c == nil {
		return 0
	}
	return len(c.m)
}

// Bytes is the cache's size as it counts it (ids, encodings and a fixed
// overhead per entry).
func (c *Cache) Bytes() int {
	if c == nil {
		return 0
	}
	return c.used
}

// get returns id's encoded record, valid until the next put or remove.
func (c *Cache) get(id string) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	i, ok := c.m[id]
	if !ok {
		return nil, false
	}
	c.toFront(i)
	return c.entries[i].val, true
}

// put stores a copy of enc as id's record.
func (c *Cache) put(id string, enc []byte) {
	if c == nil {
		return
	}
	size := len(id) + len(enc) + entryOverhead
	if size > c.maxEntry {
		// Too large to be worth the room: drop any older version.
		c.remove(id)
		return
	}
	if i, ok := c.m[id]; ok {
		e := &c.entries[i]
		c.used -= cap(e.val)
		e.val = fill(e.val, enc)
		c.used += cap(e.val)
		c.toFront(i)
		c.evict()
		return
	}
	var i int32
	if n := len(c.free); n > 0 {
		i = c.free[n-1]
		c.free = c.free[:n-1]
	} else {
		c.entries = append(c.entries, cacheEntry{})
		i = int32(len(c.entries) - 1)
	}
	e := &c.entries[i]
	// The id is often cut from an input record's value; a copy keeps the
	// cache from holding the whole value alive.
	e.id = strings.Clone(id)
	e.val = fill(e.val, enc)
	c.used += len(e.id) + cap(e.val) + entryOverhead
	c.m[e.id] = i
	c.linkFront(i)
	c.evict()
}

// fill copies enc into buf, reusing buf when it is large enough; a new
// buffer gets an eighth to spare, as a record grows by a few bytes an
// event, rounded up to 64 bytes as the allocator would round it anyway.
func fill(buf, enc []byte) []byte {
	if cap(buf) < len(enc) || cap(buf) > 2*len(enc)+64 {
		buf = make([]byte, len(enc), (len(enc)+len(enc)/8+63)&^63)
	}
	buf = buf[:len(enc)]
	copy(buf, enc)
	return buf
}

// evict drops least recently used entries until the cache is within its
// bound.
func (c *Cache) evict() {
	for c.used > c.max && c.tail >= 0 {
		c.drop(c.tail)
	}
}

func (c *Cache) remove(id string) {
	if c == nil {
		return
	}
	if i, ok := c.m[id]; ok {
		c.drop(i)
	}
}

// drop unlinks entry i and frees its slot for the next put.
func (c *Cache) drop(i int32) {
	e := &c.entries[i]
	c.unlink(i)
	delete(c.m, e.id)
	c.used -= len(e.id) + cap(e.val) + entryOverhead
	e.id, e.val = "", nil
	c.free = append(c.free, i)
}

func (c *Cache) toFront(i int32) {
	if c.head == i {
		return
	}
	c.unlink(i)
	c.linkFront(i)
}

func (c *Cache) unlink(i int32) {
	e := &c.entries[i]
	if e.prev >= 0 {
		c.entries[e.prev].next = e.next
	} else {
		c.head = e.next
	}
	if e.next >= 0 {
		c.entries[e.next].prev = e.prev
	} else {
		c.tail = e.prev
	}
	e.prev, e.next = -1, -1
}

func (c *Cache) linkFront(i int32) {
	e := &c.entries[i]
	e.prev, e.next = -1, c.head
	if c.head >= 0 {
		c.entries[c.head].prev = i
	}
	c.head = i
	if c.tail < 0 {
		c.tail = i
	}
}
