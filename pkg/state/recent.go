package state

import (
	"encoding/binary"
	"hash/maphash"
	"slices"
)

// A customer's recent events are the largest part of a busy record, and
// every event reads and rewrites them: decoding the 32 into Recent values
// and encoding them again took 10.5 % of the engine's CPU at its maximum
// (docs/BENCHMARKS.md, session 15), before the collector's share of the
// pointers written. Version 5 writes them so that a step need not decode
// them: as their count, the byte length of the entries (4 bytes, little
// endian) and the entries, the first absolute (its id and time in full),
// each later one relative to the one before it (the length of the id
// prefix it shares, the rest, its type as version 4 writes it, its time
// as the difference, its SKU). A decoded customer keeps the entries as
// they are (recentEnc, a substring of the decoded copy of its record);
// SeenEvent scans them, AddRecent counts the oldest out (recentDrop) and
// adds new events to Recent, and AppendBinary rewrites the first entry
// kept as absolute, copies the rest and appends Recent relative to the
// last.

// recentIter walks encoded recent entries. The caller holds the id
// buffer that next rebuilds each entry's id in (kept out of the iterator,
// so that a buffer on the caller's stack stays there).
type recentIter struct {
	s   string // the entries not read yet
	ts  int64
	typ string // the type as encoded: a code byte, or 0 and the string
	sku string
	bad bool
}

// next reads one entry, rebuilding its id from the previous one's in id;
// it reports false at the end of s or at a corrupt entry (bad).
func (it *recentIter) next(id []byte) ([]byte, bool) {
	if len(it.s) == 0 || it.bad {
		return id, false
	}
	shared, ok := it.uvarint()
	if !ok || shared > uint64(len(id)) {
		return id, it.fail()
	}
	suffix, ok := it.string()
	if !ok {
		return id, it.fail()
	}
	id = append(id[:shared], suffix...)
	if len(it.s) == 0 {
		return id, it.fail()
	}
	switch code := int(it.s[0]); {
	case code == 0:
		start := it.s
		it.s = it.s[1:]
		if _, ok := it.string(); !ok {
			return id, it.fail()
		}
		it.typ = start[:len(start)-len(it.s)]
	case code <= len(recentTypes):
		it.typ, it.s = it.s[:1], it.s[1:]
	default:
		return id, it.fail()
	}
	delta, ok := it.varint()
	if !ok {
		return id, it.fail()
	}
	it.ts += delta
	if it.sku, ok = it.string(); !ok {
		return id, it.fail()
	}
	return id, true
}

func (it *recentIter) fail() bool {
	it.bad = true
	return false
}

func (it *recentIter) uvarint() (uint64, bool) {
	var x uint64
	var s uint
	for i := 0; i < len(it.s) && i < binary.MaxVarintLen64; i++ {
		b := it.s[i]
		if b < 0x80 {
			if i == binary.MaxVarintLen64-1 && b > 1 {
				return 0, false
			}
			it.s = it.s[i+1:]
			return x | uint64(b)<<s, true
		}
		x |= uint64(b&0x7f) << s
		s += 7
	}
	return 0, false
}

func (it *recentIter) varint() (int64, bool) {
	ux, ok := it.uvarint()
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x, ok
}

func (it *recentIter) string() (string, bool) {
	n, ok := it.uvarint()
	if !ok || n > uint64(len(it.s)) {
		return "", false
	}
	s := it.s[:n]
	it.s = it.s[n:]
	return s, true
}

// typeName is the event type an entry's encoded type names.
func typeName(enc string) string {
	if enc[0] == 0 {
		it := recentIter{s: enc[1:]}
		s, _ := it.string()
		return s
	}
	return string(recentTypes[enc[0]-1])
}

// recentLastMax is the longest last id a decoded customer keeps (longer
// ones are walked to again when the record is written).
const recentLastMax = 48

// idFilter is a Bloom filter of event ids (256 bits, two per id): with the
// 32 recent events, an id that is not among them passes it about once in
// twenty.
type idFilter [4]uint64

var idSeed = maphash.MakeSeed()

func idBits(h uint64) (a, b uint8) { return uint8(h), uint8(h >> 8) }

func (f *idFilter) add(id []byte) {
	a, b := idBits(maphash.Bytes(idSeed, id))
	f[a>>6] |= 1 << (a & 63)
	f[b>>6] |= 1 << (b & 63)
}

// mayHave reports false for an id never added.
func (f *idFilter) mayHave(id string) bool {
	a, b := idBits(maphash.String(idSeed, id))
	return f[a>>6]&(1<<(a&63)) != 0 && f[b>>6]&(1<<(b&63)) != 0
}

// checkRecent reports whether enc holds exactly n well-formed entries. Its
// walk fills in what the customer keeps of them besides (see recentLast).
func (c *Customer) checkRecent(enc string, n int) bool {
	var buf [MaxRecent * 32]byte
	id, ok := buf[:0], false
	it := recentIter{s: enc}
	for range n {
		if id, ok = it.next(id); !ok {
			return false
		}
		c.recentIDs.add(id)
	}
	if len(it.s) != 0 {
		return false
	}
	c.recentLastTS, c.recentLastLen = it.ts, len(id)
	copy(c.recentLast[:], id)
	return true
}

// RecentEvents returns the customer's recent events, oldest first, in a
// slice of their own.
func (c *Customer) RecentEvents() []Recent {
	out := make([]Recent, 0, c.recentLen())
	it := recentIter{s: c.recentEnc}
	var id []byte
	for i, ok := 0, true; ; i++ {
		if id, ok = it.next(id); !ok {
			break
		}
		if i >= c.recentDrop {
			out = append(out, Recent{EventID: string(id), Type: typeName(it.typ), TS: it.ts, SKU: it.sku})
		}
	}
	return append(out, c.Recent...)
}

// recentLen is the number of the customer's recent events.
func (c *Customer) recentLen() int { return c.recentN - c.recentDrop + len(c.Recent) }

// AddRecent appends to the trajectory, keeping the newest MaxRecent.
func (c *Customer) AddRecent(r Recent) {
	if over := c.recentLen() - MaxRecent + 1; over > 0 {
		kept := c.recentN - c.recentDrop
		drop := min(over, kept)
		c.recentDrop += drop
		if over -= drop; over > 0 {
			c.Recent = slices.Delete(c.Recent, 0, min(over, len(c.Recent)))
		}
	}
	c.Recent = append(c.Recent, r.stored())
}

// SeenEvent reports whether an event id is in the recent trajectory; it is
// how a producer's retry of the same event_id is recognised.
func (c *Customer) SeenEvent(id string) bool {
	for i := range c.Recent {
		if c.Recent[i].EventID == id {
			return true
		}
	}
	if c.recentN == c.recentDrop || !c.recentIDs.mayHave(id) {
		return false
	}
	var buf [MaxRecent * 32]byte
	cur, ok := buf[:0], false
	it := recentIter{s: c.recentEnc}
	for i := 0; ; i++ {
		if cur, ok = it.next(cur); !ok {
			return false
		}
		if i >= c.recentDrop && string(cur) == id {
			return true
		}
	}
}

// appendRecent appends version 5's recent list: the encoded entries kept,
// then Recent, MaxRecent at most (the newest).
func (c *Customer) appendRecent(b []byte) []byte {
	recent := newest(c.Recent, MaxRecent)
	skip := c.recentDrop
	if over := c.recentN - skip + len(recent) - MaxRecent; over > 0 {
		skip += over // only a Recent set directly can overflow
	}
	kept := max(c.recentN-skip, 0)
	b = binary.AppendUvarint(b, uint64(kept+len(recent)))
	mark := len(b)
	b = append(b, 0, 0, 0, 0)
	var buf [MaxRecent * 32]byte
	id := buf[:0]
	it := recentIter{s: c.recentEnc}
	if kept > 0 {
		// The entries were checked when the record was decoded.
		for range skip + 1 {
			id, _ = it.next(id)
		}
		// The first entry kept, in full: its predecessor is gone.
		b = binary.AppendUvarint(b, 0)
		b = binary.AppendUvarint(b, uint64(len(id)))
		b = append(b, id...)
		b = append(b, it.typ...)
		b = binary.AppendVarint(b, it.ts)
		b = appendString(b, it.sku)
		// The rest as they are, each relative to the one before it; the
		// last one's id and time are Recent's base.
		rest := it.s
		switch {
		case len(recent) == 0:
		case c.recentLastLen <= len(c.recentLast):
			id = append(id[:0], c.recentLast[:c.recentLastLen]...)
			it.ts = c.recentLastTS
		default:
			for ok := true; ok; {
				id, ok = it.next(id)
			}
		}
		b = append(b, rest...)
	}
	prevID, prevTS := "", it.ts
	for i, r := range recent {
		var shared int
		if i == 0 {
			shared = sharedPrefix(id, r.EventID)
		} else {
			shared = commonPrefix(prevID, r.EventID)
		}
		b = binary.AppendUvarint(b, uint64(shared))
		b = appendString(b, r.EventID[shared:])
		b = appendType(b, r.Type)
		b = binary.AppendVarint(b, r.TS-prevTS) // wraps; so does the sum that decodes it
		b = appendString(b, r.SKU)
		prevID, prevTS = r.EventID, r.TS
	}
	binary.LittleEndian.PutUint32(b[mark:], uint32(len(b)-mark-4))
	return b
}

// sharedPrefix is the length of the longest common prefix of a and b.
func sharedPrefix(a []byte, b string) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// decodeRecent reads version 5's recent list: n entries kept encoded.
func (d *decoder) decodeRecent(c *Customer, n int) {
	if len(d.b) < 4 {
		d.fail("recent length")
		return
	}
	l := uint64(binary.LittleEndian.Uint32(d.b))
	d.b = d.b[4:]
	if l > uint64(len(d.b)) {
		d.fail("recent events")
		return
	}
	start := len(d.s) - len(d.b)
	enc := d.s[start : start+int(l)]
	d.b = d.b[l:]
	if !c.checkRecent(enc, n) {
		d.fail("recent events")
		return
	}
	c.recentEnc, c.recentN, c.recentDrop = enc, n, 0
}
