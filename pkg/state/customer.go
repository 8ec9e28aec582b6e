package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
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
	maxPending = 64
)

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
	// Outcomes is the customer's recent trigger history: what fired, and what
	// qualified but was not emitted and why. It answers "why did (not) this
	// customer get a coupon".
	Outcomes []Outcome
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
			if it.Category != "" {
				c.Cart[i].Category = it.Category
			}
			return
		}
	}
	if len(c.Cart) >= MaxCartItems {
		c.Cart = slices.Delete(c.Cart, 0, 1)
	}
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

// AddRecent appends to the trajectory, keeping the newest MaxRecent.
func (c *Customer) AddRecent(r Recent) {
	if len(c.Recent) >= MaxRecent {
		c.Recent = slices.Delete(c.Recent, 0, len(c.Recent)-MaxRecent+1)
	}
	c.Recent = append(c.Recent, r)
}

// SeenEvent reports whether an event id is in the recent trajectory; it is
// how a producer's retry of the same event_id is recognised.
func (c *Customer) SeenEvent(id string) bool {
	for i := range c.Recent {
		if c.Recent[i].EventID == id {
			return true
		}
	}
	return false
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
	c.CategoryViews = append(c.CategoryViews, Count{Name: name, Count: 1})
}

// AddAlias links an anonymous id.
func (c *Customer) AddAlias(id string) {
	if id == "" || slices.Contains(c.Aliases, id) {
		return
	}
	if len(c.Aliases) >= MaxAliases {
		c.Aliases = slices.Delete(c.Aliases, 0, 1)
	}
	c.Aliases = append(c.Aliases, id)
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
// and UnmarshalBinary keeps decoding the old ones. Version 2 appends
// LastSentiment.
const (
	encodingV1 = 1
	encodingV2 = 2
)

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
	recent := newest(c.Recent, MaxRecent)
	views := newest(c.CategoryViews, MaxCategoryViews)
	aliases := newest(c.Aliases, MaxAliases)
	pending := newest(c.Pending, maxPending)
	outcomes := newest(c.Outcomes, MaxOutcomes)
	b = append(b, encodingV2)
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
	b = binary.AppendUvarint(b, uint64(len(recent)))
	for _, r := range recent {
		b = appendString(b, r.EventID)
		b = appendString(b, r.Type)
		b = binary.AppendVarint(b, r.TS)
		b = appendString(b, r.SKU)
	}
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
	return appendFloat(b, c.LastSentiment)
}

// UnmarshalBinary decodes a record written by AppendBinary (any version).
func (c *Customer) UnmarshalBinary(data []byte) error {
	*c = Customer{}
	if len(data) == 0 {
		return fmt.Errorf("%w: empty", ErrCorrupt)
	}
	version := data[0]
	if version != encodingV1 && version != encodingV2 {
		return fmt.Errorf("%w: unknown version %d", ErrCorrupt, data[0])
	}
	d := decoder{b: data[1:]}
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
	if n := d.count(MaxRecent); n > 0 {
		c.Recent = make([]Recent, n)
		for i := range c.Recent {
			c.Recent[i] = Recent{EventID: d.string(), Type: d.string(), TS: d.varint(), SKU: d.string()}
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
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
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
