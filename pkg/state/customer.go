package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/spur-crm/spur/pkg/event"
)

// Bounds on the per-customer record so that a hostile or very active customer
// cannot grow a record without limit.
const (
	MaxCartItems     = 100
	MaxRecent        = 32
	MaxCategoryViews = 32
	MaxAliases       = 8
	// MaxQuantity caps a cart line, as the event schema caps one event's
	// quantity, so merged lines stay within the trigger contract.
	MaxQuantity = 10000
	// maxPending bounds the armed timers (one per rule) that a record
	// decodes; it is far above the number of pipelines an instance runs.
	maxPending = 128
	// MaxBrandViews bounds the brands counted, as MaxCategoryViews does
	// categories.
	MaxBrandViews = 32
	// MaxViewed is how many distinct recently viewed products are kept for
	// price sensitivity.
	MaxViewed = 32
	// MaxTags bounds a customer's active tags.
	MaxTags = 32
	// MaxTagLength bounds a tag name, as the trigger contract does.
	MaxTagLength = 256
	// MaxCounterKeys bounds the keys (such as categories) one windowed
	// counter keeps per customer; MaxCounterEntries the entries per key.
	MaxCounterKeys    = 32
	MaxCounterEntries = 64
	// maxCounters bounds the counter rows (counter × key) a record decodes.
	maxCounters = 1024
)

// Viewed is a recently viewed product and whether the customer bought it
// since.
type Viewed struct {
	SKU    string
	Bought bool
}

// Tag is an active dynamic tag. It expires at ExpiresAt (a durable timer
// emits tag_removed then) unless a rule refreshes it.
type Tag struct {
	Name      string
	Rule      string // the rule that added or last refreshed it
	AddedAt   int64  // unix ms
	ExpiresAt int64  // unix ms
}

// CounterEntry is one increment of a windowed counter, at event time.
type CounterEntry struct {
	TS    int64 // unix ms
	Value float64
}

// Counter is the state of one windowed counter for one key (such as the
// category of product views): its entries within the window, oldest first.
type Counter struct {
	Name    string
	Key     string
	Entries []CounterEntry
}

// CartItem is one line of a customer's cart.
type CartItem struct {
	SKU      string
	Category string
	Price    float64
	Qty      int32
}

// Recent is one entry of the customer's behaviour trajectory.
type Recent struct {
	EventID string
	Type    string
	TS      int64 // unix ms
	SKU     string
}

// Count is a named counter, such as product views of one category.
type Count struct {
	Name  string
	Count uint32
}

// Pending is a timer a rule has armed for this customer. It mirrors the timer
// row so that a reset or cancel can delete the exact row.
type Pending struct {
	Rule     string
	Deadline int64 // unix ms
	Cause    string
}

// Customer is the state spur keeps for one subject (customer id, or anonymous
// id before login). The zero value is an unseen customer.
type Customer struct {
	FirstSeen     int64 // unix ms
	LastActivity  int64 // unix ms
	Events        uint64
	Cart          []CartItem
	CartUpdatedAt int64
	// Recent is the newest of the customer's recent events, oldest
	// first: all of them unless the record was decoded from version 5,
	// which keeps the older ones encoded (recent.go); RecentEvents
	// returns them all.
	Recent        []Recent
	CategoryViews []Count
	// Order history summary (RFM).
	Orders      uint32
	Spend       float64
	LastOrderAt int64
	// Latest feedback.
	LastRating     int32
	LastFeedbackAt int64
	// LastSentiment is the sentiment score, in [-1, 1], of the latest
	// feedback text (0 when neutral or none).
	LastSentiment float64
	// Anonymous ids linked by identify events.
	Aliases []string
	Pending []Pending
	// BrandViews counts product views per brand.
	BrandViews []Count
	// Viewed is the recently viewed distinct products, oldest first.
	Viewed []Viewed
	// Tags is the customer's active dynamic tags.
	Tags []Tag
	// Counters is the windowed counters the pipelines declare.
	Counters []Counter
	// TZOffset is the UTC offset, in minutes, of the customer's latest event
	// stamped with an explicit non-UTC offset; TZKnown says whether one was.
	TZOffset int32
	TZKnown  bool
	// Outcomes is the customer's recent trigger history: what fired, and what
	// qualified but was not emitted and why. It answers "why did (not) this
	// customer get a coupon".
	Outcomes []Outcome

	// recentEnc holds recentN recent events older than Recent, encoded
	// as version 5 writes them; the first recentDrop of them are no
	// longer recent (AddRecent counted them out).
	recentEnc  string
	recentN    int
	recentDrop int
	// What the decode's walk over recentEnc (checkRecent) learnt, so that
	// no later step walks it again for it: the last entry's time and id
	// (recentLastLen > len(recentLast): too long to keep), for AppendBinary
	// to write Recent relative to; and recentIDs, a filter of every
	// entry's id, for SeenEvent to tell an id that is not there without a
	// walk.
	recentLastTS  int64
	recentLastLen int
	recentLast    [recentLastMax]byte
	recentIDs     idFilter
}

// Outcome is one entry of a customer's trigger history.
type Outcome struct {
	Rule      string
	TriggerID string
	At        int64 // qualifying moment, unix ms
	Result    string
}

// MaxOutcomes bounds the trigger history per customer.
const MaxOutcomes = 16

// AddOutcome appends to the trigger history, keeping the newest MaxOutcomes.
func (c *Customer) AddOutcome(o Outcome) {
	if len(c.Outcomes) >= MaxOutcomes {
		c.Outcomes = slices.Delete(c.Outcomes, 0, len(c.Outcomes)-MaxOutcomes+1)
	}
	c.Outcomes = append(c.Outcomes, o)
}

// CartValue is the sum of price × quantity over the cart.
func (c *Customer) CartValue() float64 {
	var v float64
	for _, it := range c.Cart {
		v += it.Price * float64(it.Qty)
	}
	return math.Round(v*100) / 100
}

// AddToCart adds qty of a sku, merging with an existing line.
func (c *Customer) AddToCart(it CartItem) {
	for i := range c.Cart {
		if c.Cart[i].SKU == it.SKU {
			c.Cart[i].Qty = min(c.Cart[i].Qty+it.Qty, MaxQuantity)
			c.Cart[i].Price = it.Price
			if it.Category != "" && it.Category != c.Cart[i].Category {
				c.Cart[i].Category = strings.Clone(it.Category)
			}
			return
		}
	}
	if len(c.Cart) >= MaxCartItems {
		c.Cart = slices.Delete(c.Cart, 0, 1)
	}
	it.SKU, it.Category = strings.Clone(it.SKU), strings.Clone(it.Category)
	c.Cart = append(c.Cart, it)
}

// RemoveFromCart removes qty of a sku (the whole line when qty <= 0 or when
// it reaches zero).
func (c *Customer) RemoveFromCart(sku string, qty int32) {
	for i := range c.Cart {
		if c.Cart[i].SKU != sku {
			continue
		}
		if qty > 0 && c.Cart[i].Qty > qty {
			c.Cart[i].Qty -= qty
			return
		}
		c.Cart = slices.Delete(c.Cart, i, i+1)
		return
	}
}

// stored is r as a record keeps it. Stored strings are copied: an event's
// strings share its whole input record, which a cached customer would
// otherwise keep alive. The id and the SKU share one copy (one
// allocation), as they share the entry; a concatenation with an empty
// string would not copy at all.
func (r Recent) stored() Recent {
	switch {
	case r.SKU == "":
		r.EventID = strings.Clone(r.EventID)
	case r.EventID == "":
		r.SKU = strings.Clone(r.SKU)
	default:
		both := r.EventID + r.SKU
		r.EventID, r.SKU = both[:len(r.EventID)], both[len(r.EventID):]
	}
	r.Type = knownType(r.Type)
	return r
}

// knownType returns the event type's constant when it is one (no copy),
// else a copy.
func knownType(t string) string {
	for _, k := range event.Types {
		if string(k) == t {
			return string(k)
		}
	}
	return strings.Clone(t)
}

// ViewCategory counts a product view in a category. When the table is full
// the least viewed category makes room.
func (c *Customer) ViewCategory(name string) {
	if name == "" {
		return
	}
	for i := range c.CategoryViews {
		if c.CategoryViews[i].Name == name {
			c.CategoryViews[i].Count++
			return
		}
	}
	if len(c.CategoryViews) >= MaxCategoryViews {
		min := 0
		for i := range c.CategoryViews {
			if c.CategoryViews[i].Count < c.CategoryViews[min].Count {
				min = i
			}
		}
		c.CategoryViews = slices.Delete(c.CategoryViews, min, min+1)
	}
	c.CategoryViews = append(c.CategoryViews, Count{Name: strings.Clone(name), Count: 1})
}

// ViewBrand counts a product view of a brand.
func (c *Customer) ViewBrand(name string) { c.BrandViews = countIn(c.BrandViews, name, MaxBrandViews) }

func countIn(counts []Count, name string, limit int) []Count {
	if name == "" {
		return counts
	}
	for i := range counts {
		if counts[i].Name == name {
			counts[i].Count++
			return counts
		}
	}
	if len(counts) >= limit {
		least := 0
		for i := range counts {
			if counts[i].Count < counts[least].Count {
				least = i
			}
		}
		counts = slices.Delete(counts, least, least+1)
	}
	return append(counts, Count{Name: strings.Clone(name), Count: 1})
}

// ViewProduct records a product view for price sensitivity: the sku moves
// to the newest place (keeping whether it was bought).
func (c *Customer) ViewProduct(sku string) {
	if sku == "" {
		return
	}
	v := Viewed{SKU: strings.Clone(sku)}
	if i := slices.IndexFunc(c.Viewed, func(x Viewed) bool { return x.SKU == sku }); i >= 0 {
		v = c.Viewed[i]
		c.Viewed = slices.Delete(c.Viewed, i, i+1)
	}
	if len(c.Viewed) >= MaxViewed {
		c.Viewed = slices.Delete(c.Viewed, 0, len(c.Viewed)-MaxViewed+1)
	}
	c.Viewed = append(c.Viewed, v)
}

// Bought marks a recently viewed product bought.
func (c *Customer) Bought(sku string) {
	for i := range c.Viewed {
		if c.Viewed[i].SKU == sku {
			c.Viewed[i].Bought = true
		}
	}
}

// PriceSensitivity is the share of the recently viewed distinct products
// that the customer did not buy, in [0, 1]: a customer who browses much and
// buys little waits for a better price. It is 0 with fewer than 3 viewed.
func (c *Customer) PriceSensitivity() float64 {
	if len(c.Viewed) < 3 {
		return 0
	}
	n := 0
	for _, v := range c.Viewed {
		if !v.Bought {
			n++
		}
	}
	return math.Round(float64(n)/float64(len(c.Viewed))*1000) / 1000
}

// TagIndex returns the index of an active tag, or -1.
func (c *Customer) TagIndex(name string) int {
	return slices.IndexFunc(c.Tags, func(t Tag) bool { return t.Name == name })
}

// ActiveTags returns the names of the tags active at the moment at (unix ms).
func (c *Customer) ActiveTags(at int64) []string {
	out := make([]string, 0, len(c.Tags))
	for _, t := range c.Tags {
		if t.ExpiresAt > at {
			out = append(out, t.Name)
		}
	}
	return out
}

// CounterSum is the sum of a counter's entries for key (all keys when
// allKeys) within window before at (unix ms): entries in (at-window, at].
func (c *Customer) CounterSum(name, key string, allKeys bool, window, at int64) float64 {
	var sum float64
	for _, ct := range c.Counters {
		if ct.Name != name || (!allKeys && ct.Key != key) {
			continue
		}
		for _, e := range ct.Entries {
			if e.TS > at-window && e.TS <= at {
				sum += e.Value
			}
		}
	}
	return sum
}

// AddToCounter adds an entry to a counter's key at ts, dropping that key's
// entries older than the window before ts. Memory stays bounded: a key keeps
// at most MaxCounterEntries (the two oldest are merged, at the newer of the
// two times, so a count never drops early) and a counter at most
// MaxCounterKeys keys (the key seen least recently makes room).
func (c *Customer) AddToCounter(name, key string, ts int64, value float64, window int64) {
	i := slices.IndexFunc(c.Counters, func(ct Counter) bool { return ct.Name == name && ct.Key == key })
	if i < 0 {
		keys, oldest, oldestAt := 0, -1, int64(math.MaxInt64)
		for j, ct := range c.Counters {
			if ct.Name != name {
				continue
			}
			keys++
			last := int64(math.MinInt64)
			if n := len(ct.Entries); n > 0 {
				last = ct.Entries[n-1].TS
			}
			if last < oldestAt {
				oldest, oldestAt = j, last
			}
		}
		if keys >= MaxCounterKeys && oldest >= 0 {
			c.Counters = slices.Delete(c.Counters, oldest, oldest+1)
		}
		c.Counters = append(c.Counters, Counter{Name: name, Key: strings.Clone(key)})
		i = len(c.Counters) - 1
	}
	ct := &c.Counters[i]
	// Entries stay in time order; events mostly arrive in order.
	at := len(ct.Entries)
	for at > 0 && ct.Entries[at-1].TS > ts {
		at--
	}
	ct.Entries = slices.Insert(ct.Entries, at, CounterEntry{TS: ts, Value: value})
	newest := ct.Entries[len(ct.Entries)-1].TS
	drop := 0
	for drop < len(ct.Entries) && ct.Entries[drop].TS <= newest-window {
		drop++
	}
	ct.Entries = slices.Delete(ct.Entries, 0, drop)
	for len(ct.Entries) > MaxCounterEntries {
		ct.Entries[1].Value += ct.Entries[0].Value
		ct.Entries = slices.Delete(ct.Entries, 0, 1)
	}
}

// KeepCounters drops the counters whose name keep rejects (a pipeline that
// declared them was removed).
func (c *Customer) KeepCounters(keep func(name string) bool) {
	c.Counters = slices.DeleteFunc(c.Counters, func(ct Counter) bool { return !keep(ct.Name) })
}

// AddAlias links an anonymous id.
func (c *Customer) AddAlias(id string) {
	if id == "" || slices.Contains(c.Aliases, id) {
		return
	}
	if len(c.Aliases) >= MaxAliases {
		c.Aliases = slices.Delete(c.Aliases, 0, 1)
	}
	c.Aliases = append(c.Aliases, strings.Clone(id))
}

// PendingFor returns the armed timer of a rule, if any.
func (c *Customer) PendingFor(rule string) (Pending, bool) {
	for _, p := range c.Pending {
		if p.Rule == rule {
			return p, true
		}
	}
	return Pending{}, false
}

// SetPending arms (or re-arms) a rule's timer.
func (c *Customer) SetPending(p Pending) {
	p.Cause = strings.Clone(p.Cause)
	for i := range c.Pending {
		if c.Pending[i].Rule == p.Rule {
			c.Pending[i] = p
			return
		}
	}
	c.Pending = append(c.Pending, p)
}

// ClearPending disarms a rule's timer.
func (c *Customer) ClearPending(rule string) {
	c.Pending = slices.DeleteFunc(c.Pending, func(p Pending) bool { return p.Rule == rule })
}

// Versions of the customer record encoding. A new version gets a new number
// and UnmarshalBinary keeps decoding the old ones (an older spur cannot read
// a newer version). Version 2 appends LastSentiment; version 3 appends brand
// views, viewed products, tags, windowed counters and the time zone offset.
// Version 4 writes the same fields in fewer bytes, because every event
// rewrites its customer's whole record and Pebble's writes (WAL, memtable,
// flushes, compactions) grow with its size: a recent event's id as the
// length of the prefix it shares with the previous one's and the rest, its
// type as one byte, its time as the difference from the previous one's (the
// first from LastActivity); a counter entry's time as the difference from the
// previous entry's and a whole value as a varint. The 136,402 records of a
// benchmark run's state took 355 bytes on average in version 4, against 610
// in version 3 (830 against 1,509 with 32 recent events). Version 5 writes
// the recent events so that a step can keep them encoded (recent.go).
const (
	encodingV1 = 1
	encodingV2 = 2
	encodingV3 = 3
	encodingV4 = 4
	encodingV5 = 5
)

// recentTypes are the event types version 4 writes as one byte: the type's
// index + 1 (0: the type follows as a string). Append only: the codes are
// stored.
var recentTypes = [...]event.Type{
	event.PageView, event.ProductView, event.Search, event.CartAdd, event.CartRemove,
	event.CheckoutStart, event.Order, event.Identify, event.Feedback, event.Forget,
}

// ErrCorrupt is returned for a record that cannot be decoded.
var ErrCorrupt = errors.New("state: corrupt customer record")

// AppendBinary appends the versioned encoding of c to b. The encoding is
// hand-written (varints, length-prefixed strings) because it sits on the hot
// path of every event: no reflection.
//
// A list longer than its bound (set directly rather than through the Add*
// methods) is written as its newest bound entries: UnmarshalBinary rejects
// longer lists, and a record that cannot be decoded would stop its
// partition's worker.
func (c *Customer) AppendBinary(b []byte) []byte {
	cart := newest(c.Cart, MaxCartItems)
	views := newest(c.CategoryViews, MaxCategoryViews)
	aliases := newest(c.Aliases, MaxAliases)
	pending := newest(c.Pending, maxPending)
	outcomes := newest(c.Outcomes, MaxOutcomes)
	b = append(b, encodingV5)
	b = binary.AppendVarint(b, c.FirstSeen)
	b = binary.AppendVarint(b, c.LastActivity)
	b = binary.AppendUvarint(b, c.Events)
	b = binary.AppendUvarint(b, uint64(len(cart)))
	for _, it := range cart {
		b = appendString(b, it.SKU)
		b = appendString(b, it.Category)
		b = appendFloat(b, it.Price)
		b = binary.AppendVarint(b, int64(it.Qty))
	}
	b = binary.AppendVarint(b, c.CartUpdatedAt)
	b = c.appendRecent(b)
	b = binary.AppendUvarint(b, uint64(len(views)))
	for _, v := range views {
		b = appendString(b, v.Name)
		b = binary.AppendUvarint(b, uint64(v.Count))
	}
	b = binary.AppendUvarint(b, uint64(c.Orders))
	b = appendFloat(b, c.Spend)
	b = binary.AppendVarint(b, c.LastOrderAt)
	b = binary.AppendVarint(b, int64(c.LastRating))
	b = binary.AppendVarint(b, c.LastFeedbackAt)
	b = binary.AppendUvarint(b, uint64(len(aliases)))
	for _, a := range aliases {
		b = appendString(b, a)
	}
	b = binary.AppendUvarint(b, uint64(len(pending)))
	for _, p := range pending {
		b = appendString(b, p.Rule)
		b = binary.AppendVarint(b, p.Deadline)
		b = appendString(b, p.Cause)
	}
	b = binary.AppendUvarint(b, uint64(len(outcomes)))
	for _, o := range outcomes {
		b = appendString(b, o.Rule)
		b = appendString(b, o.TriggerID)
		b = binary.AppendVarint(b, o.At)
		b = appendString(b, o.Result)
	}
	b = appendFloat(b, c.LastSentiment)
	brands := newest(c.BrandViews, MaxBrandViews)
	b = binary.AppendUvarint(b, uint64(len(brands)))
	for _, v := range brands {
		b = appendString(b, v.Name)
		b = binary.AppendUvarint(b, uint64(v.Count))
	}
	viewed := newest(c.Viewed, MaxViewed)
	b = binary.AppendUvarint(b, uint64(len(viewed)))
	for _, v := range viewed {
		b = appendString(b, v.SKU)
		b = appendBool(b, v.Bought)
	}
	tags := newest(c.Tags, MaxTags)
	b = binary.AppendUvarint(b, uint64(len(tags)))
	for _, t := range tags {
		b = appendString(b, t.Name)
		b = appendString(b, t.Rule)
		b = binary.AppendVarint(b, t.AddedAt)
		b = binary.AppendVarint(b, t.ExpiresAt)
	}
	counters := newest(c.Counters, maxCounters)
	b = binary.AppendUvarint(b, uint64(len(counters)))
	for _, ct := range counters {
		b = appendString(b, ct.Name)
		b = appendString(b, ct.Key)
		entries := newest(ct.Entries, MaxCounterEntries)
		b = binary.AppendUvarint(b, uint64(len(entries)))
		var prev int64
		for _, e := range entries {
			b = binary.AppendVarint(b, e.TS-prev)
			b = appendNumber(b, e.Value)
			prev = e.TS
		}
	}
	b = binary.AppendVarint(b, int64(c.TZOffset))
	return appendBool(b, c.TZKnown)
}

// commonPrefix is the length of the longest common prefix of a and b.
func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// appendType appends an event type's code (version 4).
func appendType(b []byte, t string) []byte {
	for i, k := range recentTypes {
		if string(k) == t {
			return append(b, byte(i+1))
		}
	}
	return appendString(append(b, 0), t)
}

// appendNumber appends f as a varint of twice its value when it is whole
// and exact in a float64 (counts, whole amounts), else as 1 and its bits
// (version 4).
func appendNumber(b []byte, f float64) []byte {
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 && !(f == 0 && math.Signbit(f)) {
		return binary.AppendVarint(b, int64(f)<<1)
	}
	return appendFloat(binary.AppendVarint(b, 1), f)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// UnmarshalBinary decodes a record written by AppendBinary (any version).
func (c *Customer) UnmarshalBinary(data []byte) error {
	return c.unmarshal(data, nil)
}

// unmarshal is UnmarshalBinary decoding the recent events into recent's
// array when it has room (a Step's pooled arrays); c.Recent is then recent,
// even when the record has none.
func (c *Customer) unmarshal(data []byte, recent []Recent) error {
	*c = Customer{Recent: recent[:0]}
	if len(data) == 0 {
		return fmt.Errorf("%w: empty", ErrCorrupt)
	}
	version := data[0]
	if version < encodingV1 || version > encodingV5 {
		return fmt.Errorf("%w: unknown version %d", ErrCorrupt, data[0])
	}
	d := decoder{b: data[1:]}
	// One copy of the record backs every string decoded from it: one
	// allocation instead of one per string (a hundred for a busy
	// customer). The strings then keep the whole record alive, which is
	// at most one record's size per customer.
	d.s = string(d.b)
	c.FirstSeen = d.varint()
	c.LastActivity = d.varint()
	c.Events = d.uvarint()
	if n := d.count(MaxCartItems); n > 0 {
		c.Cart = make([]CartItem, n)
		for i := range c.Cart {
			c.Cart[i] = CartItem{SKU: d.string(), Category: d.string(), Price: d.float(), Qty: int32(d.varint())}
		}
	}
	c.CartUpdatedAt = d.varint()
	if n := d.count(MaxRecent); version >= encodingV5 {
		d.decodeRecent(c, n)
	} else if n > 0 {
		// Room for the one event a step usually adds: AddRecent's append
		// otherwise copied the slice into one twice its size, every event
		// (an eighth of the bytes the engine allocated).
		if cap(recent) >= n {
			c.Recent = recent[:n]
		} else {
			c.Recent = make([]Recent, n, min(n+1, MaxRecent))
		}
		if version >= encodingV4 {
			d.recent(c.Recent, c.LastActivity)
		} else {
			for i := range c.Recent {
				c.Recent[i] = Recent{EventID: d.string(), Type: d.string(), TS: d.varint(), SKU: d.string()}
			}
		}
	}
	if n := d.count(MaxCategoryViews); n > 0 {
		c.CategoryViews = make([]Count, n)
		for i := range c.CategoryViews {
			c.CategoryViews[i] = Count{Name: d.string(), Count: uint32(d.uvarint())}
		}
	}
	c.Orders = uint32(d.uvarint())
	c.Spend = d.float()
	c.LastOrderAt = d.varint()
	c.LastRating = int32(d.varint())
	c.LastFeedbackAt = d.varint()
	if n := d.count(MaxAliases); n > 0 {
		c.Aliases = make([]string, n)
		for i := range c.Aliases {
			c.Aliases[i] = d.string()
		}
	}
	if n := d.count(maxPending); n > 0 {
		c.Pending = make([]Pending, n)
		for i := range c.Pending {
			c.Pending[i] = Pending{Rule: d.string(), Deadline: d.varint(), Cause: d.string()}
		}
	}
	if n := d.count(MaxOutcomes); n > 0 {
		c.Outcomes = make([]Outcome, n)
		for i := range c.Outcomes {
			c.Outcomes[i] = Outcome{Rule: d.string(), TriggerID: d.string(), At: d.varint(), Result: d.string()}
		}
	}
	if version >= encodingV2 {
		c.LastSentiment = d.float()
	}
	if version >= encodingV3 {
		if n := d.count(MaxBrandViews); n > 0 {
			c.BrandViews = make([]Count, n)
			for i := range c.BrandViews {
				c.BrandViews[i] = Count{Name: d.string(), Count: uint32(d.uvarint())}
			}
		}
		if n := d.count(MaxViewed); n > 0 {
			c.Viewed = make([]Viewed, n)
			for i := range c.Viewed {
				c.Viewed[i] = Viewed{SKU: d.string(), Bought: d.bool()}
			}
		}
		if n := d.count(MaxTags); n > 0 {
			c.Tags = make([]Tag, n)
			for i := range c.Tags {
				c.Tags[i] = Tag{Name: d.string(), Rule: d.string(), AddedAt: d.varint(), ExpiresAt: d.varint()}
			}
		}
		if n := d.count(maxCounters); n > 0 {
			c.Counters = make([]Counter, n)
			for i := range c.Counters {
				ct := Counter{Name: d.string(), Key: d.string()}
				if m := d.count(MaxCounterEntries); m > 0 {
					ct.Entries = make([]CounterEntry, m)
					var prev int64
					for j := range ct.Entries {
						if version >= encodingV4 {
							prev += d.varint()
							ct.Entries[j] = CounterEntry{TS: prev, Value: d.number()}
						} else {
							ct.Entries[j] = CounterEntry{TS: d.varint(), Value: d.float()}
						}
					}
				}
				c.Counters[i] = ct
			}
		}
		c.TZOffset = int32(d.varint())
		c.TZKnown = d.bool()
	}
	if d.err != nil {
		return d.err
	}
	return nil
}

// newest returns the last max elements of s.
func newest[T any](s []T, max int) []T {
	if len(s) > max {
		return s[len(s)-max:]
	}
	return s
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendFloat(b []byte, f float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
}

// decoder reads the encoding; the first error sticks and later reads return
// zero values, so callers check err once.
type decoder struct {
	b   []byte
	s   string // the bytes b started as, which strings are cut from
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated %s", ErrCorrupt, what)
	}
	d.b = nil
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) count(max int) int {
	n := d.uvarint()
	if n > uint64(max) {
		d.fail("count")
		return 0
	}
	return int(n)
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("string")
		return ""
	}
	if n == 0 {
		return ""
	}
	start := len(d.s) - len(d.b)
	d.b = d.b[n:]
	return d.s[start : start+int(n)]
}

// recent decodes version 4's recent events into r. Event ids are built
// from shared prefixes, so they cannot be cut from the record: they share a
// string of their own, built on the stack (every event decodes its
// customer, so an allocation here is one per event).
func (d *decoder) recent(r []Recent, prevTS int64) {
	var buf [MaxRecent * 32]byte
	ids := buf[:0]
	var ends [MaxRecent]int
	prevStart := 0
	for i := range r {
		shared := d.uvarint()
		if shared > uint64(len(ids)-prevStart) {
			d.fail("event id prefix")
			return
		}
		start := len(ids)
		ids = append(ids, ids[prevStart:prevStart+int(shared)]...)
		ids = append(ids, d.string()...)
		ends[i], prevStart = len(ids), start
		r[i].Type = d.eventType()
		prevTS += d.varint()
		r[i].TS = prevTS
		r[i].SKU = d.string()
	}
	s, start := string(ids), 0
	for i := range r {
		r[i].EventID, start = s[start:ends[i]], ends[i]
	}
}

func (d *decoder) eventType() string {
	if len(d.b) < 1 {
		d.fail("type")
		return ""
	}
	code := int(d.b[0])
	d.b = d.b[1:]
	switch {
	case code == 0:
		return d.string()
	case code <= len(recentTypes):
		return string(recentTypes[code-1])
	}
	d.fail("type")
	return ""
}

// number decodes appendNumber.
func (d *decoder) number() float64 {
	switch v := d.varint(); {
	case v&1 == 0:
		return float64(v >> 1)
	case v == 1:
		return d.float()
	}
	d.fail("number")
	return 0
}

func (d *decoder) bool() bool {
	if len(d.b) < 1 {
		d.fail("bool")
		return false
	}
	v := d.b[0] != 0
	d.b = d.b[1:]
	return v
}

func (d *decoder) float() float64 {
	if len(d.b) < 8 {
		d.fail("float")
		return 0
	}
	f := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return f
}
