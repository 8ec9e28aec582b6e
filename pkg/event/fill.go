package event

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
)

// field is a set of the type-specific fields of Event, by JSON name. Decode
// copies a field into the Event only when the event's type defines it: the
// schema of another type does not check it, so its value cannot be trusted.
type field uint32

const (
	fSKU field = 1 << iota
	fCategory
	fBrand
	fPrice
	fQuantity
	fDwellMS
	fQuery
	fOrderID
	fItems
	fTotal
	fCurrency
	fRating
	fText
	fKind
)

// commonFields are the JSON names every type shares (the envelope of
// schemas/event.json).
var commonFields = []string{"event_id", "type", "ts", "customer_id", "anonymous_id", "channel"}

// fieldNames maps each field to its JSON name.
var fieldNames = map[field]string{
	fSKU:      "sku",
	fCategory: "category",
	fBrand:    "brand",
	fPrice:    "price",
	fQuantity: "quantity",
	fDwellMS:  "dwell_ms",
	fQuery:    "query",
	fOrderID:  "order_id",
	fItems:    "items",
	fTotal:    "total",
	fCurrency: "currency",
	fRating:   "rating",
	fText:     "text",
	fKind:     "kind",
}

// typeFields lists the fields each type defines beyond the common ones. It
// must match the "properties" of schemas/<type>.json; a test checks that.
var typeFields = map[Type]field{
	PageView:      0,
	ProductView:   fSKU | fCategory | fBrand | fPrice | fDwellMS,
	Search:        fQuery,
	CartAdd:       fSKU | fCategory | fBrand | fPrice | fQuantity,
	CartRemove:    fSKU | fCategory | fBrand | fPrice | fQuantity,
	CheckoutStart: 0,
	Order:         fOrderID | fItems | fTotal | fCurrency,
	Identify:      0,
	Feedback:      fRating | fText | fKind,
	Forget:        0,
}

// fill copies a validated object into ev. The schema has already checked
// every field fill reads, so the type assertions cannot fail unless a schema
// and this code disagree; fill then reports ReasonInvalidField rather than
// panicking or guessing.
func fill(obj map[string]any, typ Type, ev *Event) error {
	f := filler{}
	ev.Type = typ
	ev.EventID = f.str(obj, "event_id")
	ev.CustomerID = f.str(obj, "customer_id")
	ev.AnonymousID = f.str(obj, "anonymous_id")
	ev.Channel = f.str(obj, "channel")
	if ts := f.str(obj, "ts"); f.err == nil {
		var err error
		if ev.TS, ev.UTCOffsetMinutes, err = parseTS(ts); err != nil {
			return newError(ReasonInvalidField, "/ts: not an RFC 3339 time: "+err.Error())
		}
	}

	fields := typeFields[typ]
	if fields&fSKU != 0 {
		ev.SKU = f.str(obj, "sku")
	}
	if fields&fCategory != 0 {
		ev.Category = f.str(obj, "category")
	}
	if fields&fBrand != 0 {
		ev.Brand = f.str(obj, "brand")
	}
	if fields&fPrice != 0 {
		ev.Price = f.float(obj, "price")
	}
	if fields&fQuantity != 0 {
		ev.Quantity = int(f.int(obj, "quantity"))
	}
	if fields&fDwellMS != 0 {
		ev.DwellMS = f.int(obj, "dwell_ms")
	}
	if fields&fQuery != 0 {
		ev.Query = f.str(obj, "query")
	}
	if fields&fOrderID != 0 {
		ev.OrderID = f.str(obj, "order_id")
	}
	if fields&fItems != 0 {
		ev.Items = f.items(obj, "items")
	}
	if fields&fTotal != 0 {
		ev.Total = f.float(obj, "total")
	}
	if fields&fCurrency != 0 {
		ev.Currency = f.str(obj, "currency")
	}
	if fields&fRating != 0 {
		ev.Rating = int(f.int(obj, "rating"))
	}
	if fields&fText != 0 {
		ev.Text = f.str(obj, "text")
	}
	if fields&fKind != 0 {
		ev.Kind = f.str(obj, "kind")
	}
	if f.err != nil {
		return f.err
	}
	return nil
}

// filler reads typed values out of a parsed object, remembering the first
// mismatch so that fill can read every field and check once.
type filler struct {
	err *DecodeError
	// list and index locate the array element being read, for error
	// pointers; list is "" at the top level. The pointer is built only on
	// failure, so that reading costs no allocation.
	list  string
	index int
}

func (f *filler) fail(name, want string) {
	if f.err != nil {
		return
	}
	ptr := "/" + escapeToken(name)
	if f.list != "" {
		ptr = "/" + escapeToken(f.list) + "/" + strconv.Itoa(f.index) + ptr
	}
	f.err = newError(ReasonInvalidField, ptr+": want "+want+" (schema and decoder disagree)")
}

// str returns obj[name] as a string; absent is "".
func (f *filler) str(obj map[string]any, name string) string {
	v, ok := obj[name]
	if !ok {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		f.fail(name, "string")
	}
	return s
}

// float returns obj[name] as a float64; absent is 0.
func (f *filler) float(obj map[string]any, name string) float64 {
	v, ok := obj[name]
	if !ok {
		return 0
	}
	n, ok := v.(json.Number)
	if !ok {
		f.fail(name, "number")
		return 0
	}
	x, ok := floatLit(string(n))
	if !ok {
		f.fail(name, "finite number")
		return 0
	}
	return x
}

// floatLit converts a number literal the schema has accepted as a number.
func floatLit(s string) (float64, bool) {
	x, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(x, 0) {
		return 0, false
	}
	return x, true
}

// maxExactInt is the largest integer a float64 holds exactly.
const maxExactInt = 1 << 53

// int returns obj[name] as an int64; absent is 0. JSON Schema counts 2.0 and
// 2e0 as integers, so those are accepted too.
func (f *filler) int(obj map[string]any, name string) int64 {
	v, ok := obj[name]
	if !ok {
		return 0
	}
	n, ok := v.(json.Number)
	if !ok {
		f.fail(name, "integer")
		return 0
	}
	i, ok := intLit(string(n))
	if !ok {
		f.fail(name, "integer")
		return 0
	}
	return i
}

// intLit converts a number literal the schema has accepted as an integer,
// which may be written 2.0 or 2e0.
func intLit(s string) (int64, bool) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i, true
	}
	x, err := strconv.ParseFloat(s, 64)
	if err != nil || x != math.Trunc(x) || math.Abs(x) > maxExactInt {
		return 0, false
	}
	return int64(x), true
}

// items returns obj[name] as order lines; absent is nil.
func (f *filler) items(obj map[string]any, name string) []Item {
	v, ok := obj[name]
	if !ok {
		return nil
	}
	arr, ok := v.([]any)
	if !ok {
		f.fail(name, "array")
		return nil
	}
	items := make([]Item, len(arr))
	for i, e := range arr {
		m, ok := e.(map[string]any)
		if !ok {
			if f.err == nil {
				f.err = newError(ReasonInvalidField, "/"+escapeToken(name)+"/"+strconv.Itoa(i)+": want object (schema and decoder disagree)")
			}
			continue
		}
		f.list, f.index = name, i
		items[i] = Item{
			SKU:      f.str(m, "sku"),
			Category: f.str(m, "category"),
			Brand:    f.str(m, "brand"),
			Price:    f.float(m, "price"),
			Quantity: int(f.int(m, "quantity")),
		}
	}
	f.list = ""
	return items
}

// parseTS parses a ts the schema has accepted. UTC makes equal instants
// compare equal with == and keeps the producer's offset out of state keys;
// the offset is returned apart, in minutes, as the customer's local time.
func parseTS(s string) (time.Time, int, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, 0, err
	}
	_, off := t.Zone()
	return t.UTC(), off / 60, nil
}
